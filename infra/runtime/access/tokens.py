"""Bearer tokens: JWTs (RFC 7519) signed with Ed25519 (EdDSA, RFC 8037), by PyJWT.

Asymmetric on purpose: the issuer (`celltrail access token`, later a login endpoint) holds
the private key (CELLTRAIL_TOKEN_KEY); the services hold only the public key
(CELLTRAIL_TOKEN_PUBLIC_KEY), so a compromised service can verify tokens but not mint them.
There is no default key: `celltrail up` generates one into its home (mode 0600), tests make
their own.

Claims: `sub` (principal id), `kind`, `orgs` (the memberships when issued; informational:
`authenticate` reloads them, so a revocation takes effect at once), `iat`, `nbf`, `exp`,
`jti` (random), `iss` and `aud` ("celltrail"). Verification accepts only EdDSA (so neither
`alg: none` nor an HMAC made with the public key passes), and requires every claim above.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from infra.runtime.access.principals import Principal

AUDIENCE = ISSUER = "celltrail"
ALGORITHM = "EdDSA"
DEFAULT_TTL = timedelta(minutes=15)
LEEWAY = timedelta(seconds=10)  # clock skew between issuer and verifier
REQUIRED = ["sub", "iat", "nbf", "exp", "jti", "iss", "aud"]


class InvalidToken(Exception):
    """Not a token this system issued, or no longer valid; the message says which."""


class TokenKeyError(ValueError):
    """A configured key is not an Ed25519 key in PEM."""


def generate_signing_key() -> str:
    """A new Ed25519 private key, PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _private(pem: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise TokenKeyError(f"the token signing key is not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise TokenKeyError("the token signing key must be an Ed25519 key")
    return key


def public_key_pem(private_pem: str) -> str:
    return _private(private_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    token_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: datetime


class TokenIssuer:
    def __init__(self, private_pem: str, *, ttl: timedelta = DEFAULT_TTL) -> None:
        self._key = _private(private_pem)
        self.ttl = ttl

    def issue(self, principal: Principal, *, now: datetime | None = None) -> IssuedToken:
        now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
        token_id, expires = uuid.uuid4().hex, now + self.ttl
        claims = {"sub": principal.principal_id, "kind": principal.kind.value,
                  "orgs": [m.to_json() for m in principal.memberships],
                  "iat": now, "nbf": now, "exp": expires, "jti": token_id, "iss": ISSUER, "aud": AUDIENCE}
        return IssuedToken(jwt.encode(claims, self._key, algorithm=ALGORITHM), token_id, expires)


class TokenVerifier:
    def __init__(self, public_pem: str) -> None:
        try:
            key = serialization.load_pem_public_key(public_pem.encode())
        except (ValueError, TypeError) as exc:
            raise TokenKeyError(f"the token public key is not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise TokenKeyError("the token public key must be an Ed25519 key")
        self._key = key

    def verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                                leeway=LEEWAY, options={"require": REQUIRED})
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid ({exc})") from None
        if not isinstance(claims["sub"], str) or not isinstance(claims["jti"], str):
            raise InvalidToken("the token's sub and jti must be strings")
        return TokenClaims(claims["sub"], claims["jti"], datetime.fromtimestamp(claims["iat"], timezone.utc),
                           datetime.fromtimestamp(claims["exp"], timezone.utc))
