"""Authentication at the HTTP edge, and the 401 / 403 answers.

A request names its caller with one credential: `Authorization: Bearer <JWT>` (people and
systems, see `tokens`) or `X-API-Key: ctk_...` (systems, see `credentials`). Either way the
principal and its memberships are loaded from the `access` schema on every request, so a
revoked role or a disabled principal or key is refused at once, not when a token expires.
A missing, malformed, forged or expired credential, an unknown or disabled key or principal
are all 401 (RFC 6750 §3; the body says which); a valid caller whom the policy refuses is
403 (`forbidden`).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import asyncpg
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from infra.runtime.access.credentials import parse_api_key, verify_api_key
from infra.runtime.access.policy import Action, Decision, Resource, decide
from infra.runtime.access.principals import Principal
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import InvalidToken, TokenVerifier

API_KEY_HEADER = "X-API-Key"
REALM = "celltrail"

# OpenAPI 3.1 `components.securitySchemes` and the `security` requirement (either scheme)
# every endpoint but /health carries (infra/runtime/openapi.py).
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "A CellTrail token (EdDSA-signed JWT, aud 'celltrail'): `celltrail access token`."},
    "apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
               "description": "A system's API key, `ctk_<key id>_<secret>`: `celltrail access apikey`."},
}
SECURITY = [{"bearerAuth": []}, {"apiKey": []}]


class Unauthenticated(Exception):
    """No credential, or one that does not name an enabled principal: 401."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing  # no credential at all: the challenge carries no error code


class Forbidden(Exception):
    """An authenticated principal the policy refuses: 403."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


class Directory(Protocol):
    """Where principals and API-key hashes are looked up."""

    async def principal(self, principal_id: str) -> Principal | None: ...

    async def api_key(self, key_id: str) -> tuple[str, str] | None: ...


class PgDirectory:
    """The `access` schema through a pool, one short connection per lookup."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def principal(self, principal_id: str) -> Principal | None:
        async with self.pool.acquire() as conn:
            return await PgAccessStore(conn).principal(principal_id)

    async def api_key(self, key_id: str) -> tuple[str, str] | None:
        async with self.pool.acquire() as conn:
            return await PgAccessStore(conn).api_key(key_id)


class Authenticator:
    def __init__(self, directory: Directory, verifier: TokenVerifier | None) -> None:
        self.directory = directory
        self.verifier = verifier  # None: no public key configured, so no token is accepted

    async def authenticate(self, headers: Headers) -> Principal:
        authorization, api_key = headers.get("authorization"), headers.get(API_KEY_HEADER)
        if authorization and api_key:
            raise Unauthenticated("give one credential: a bearer token or an API key, not both")
        if api_key:
            return await self._by_api_key(api_key)
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the Authorization header must read `Bearer <token>`")
            return await self._by_token(token.strip())
        raise Unauthenticated(f"no credential: send `Authorization: Bearer <token>` or `{API_KEY_HEADER}`",
                              missing=True)

    async def _by_token(self, token: str) -> Principal:
        if self.verifier is None:
            raise Unauthenticated("this service accepts no tokens: CELLTRAIL_TOKEN_PUBLIC_KEY is not set")
        try:
            claims = self.verifier.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from None
        return await self._enabled(claims.subject)

    async def _by_api_key(self, presented: str) -> Principal:
        parsed = parse_api_key(presented.strip())
        if parsed is None:
            raise Unauthenticated("the API key is malformed")
        key_id, secret = parsed
        found = await self.directory.api_key(key_id)
        # argon2 takes tens of milliseconds of CPU: off the event loop
        if found is None or not await asyncio.to_thread(verify_api_key, found[1], secret):
            raise Unauthenticated("unknown, disabled or wrong API key")
        return await self._enabled(found[0])

    async def _enabled(self, principal_id: str) -> Principal:
        principal = await self.directory.principal(principal_id)
        if principal is None:
            raise Unauthenticated(f"principal {principal_id} is unknown or disabled")
        return principal


def authorize(principal: Principal, action: Action, resource: Resource) -> Decision:
    """The policy's decision; raises Forbidden when it refuses."""
    decision = decide(principal, action, resource)
    if not decision.allowed:
        raise Forbidden(decision)
    return decision


def unauthenticated(exc: Unauthenticated) -> JSONResponse:
    """RFC 6750 §3: the challenge names `invalid_token` only when a credential was given."""
    challenge = f'Bearer realm="{REALM}"' + ("" if exc.missing else ', error="invalid_token"')
    return JSONResponse({"error": str(exc), "code": "UNAUTHENTICATED"}, status_code=401,
                        headers={"WWW-Authenticate": challenge})


def forbidden(exc: Forbidden) -> JSONResponse:
    return JSONResponse({"error": exc.decision.reason, "code": "FORBIDDEN"}, status_code=403)
