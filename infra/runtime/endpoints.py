"""HTTP endpoints as data: each route of a service is declared once, with who may call it,
and everything about it is derived from that declaration: the Starlette route, the one edge
that authenticates and authorises every request (`infra.runtime.edge`), the OpenAPI
document (`infra.runtime.openapi`) and the generated access test
(tests/e2e/test_access_matrix.py), so they cannot disagree.

An endpoint's `Access` says how it is guarded:
- `PUBLIC`: no credential (only /health, which load balancers and `celltrail up` poll);
- `SIGNED_IN`: any authenticated principal (/whoami, /openapi.json);
- `to(action, locate)`: one resource, found by `locate` from the request (a subject's
  centre, say); the policy decides the action on it (403 when it refuses);
- `listing(action)`: many resources at once; the principal must hold the action somewhere
  (403 if nowhere), and the handler keeps only the items the policy lets it see
  (`Call.may`), so centre staff list only their own centre's subjects;
- `SIGNS`: signing a record, authenticated here, decided by the policy's signing table in
  the handler (it needs the password again and the record's content first).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from infra.runtime.access.policy import NETWORK_RESOURCE, Action, Resource, decide
from infra.runtime.access.principals import Principal

if TYPE_CHECKING:
    from infra.runtime.host import Runtime


class NotFound(Exception):
    """What the request names does not exist: 404 (not a refusal)."""

    def __init__(self, message: str, *, code: str = "NOT_FOUND") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Located:
    """The resource a request is about, and what was loaded to find it (handed to the
    handler so it need not load it again)."""

    resource: Resource
    found: Any = None


Locator = Callable[[Request, "Runtime"], Awaitable[Located]]


async def the_network(request: Request, rt: "Runtime") -> Located:
    """The resource of administrative and operational endpoints: the network's."""
    return Located(NETWORK_RESOURCE)


class Guard(StrEnum):
    PUBLIC = "public"
    SIGNED_IN = "signed_in"
    RESOURCE = "resource"
    LISTING = "listing"
    SIGNING = "signing"


@dataclass(frozen=True)
class Access:
    guard: Guard
    action: Action | None = None
    locate: Locator | None = None

    @property
    def authenticated(self) -> bool:
        return self.guard is not Guard.PUBLIC


PUBLIC = Access(Guard.PUBLIC)
SIGNED_IN = Access(Guard.SIGNED_IN)
# Signing a record (infra/runtime/signing.py): any authenticated caller may ask; who may sign
# what, with which meaning, is the policy's signing table (`decide_signature`), which the
# handler applies after re-authentication, answering 401/403/409 with its own codes.
SIGNS = Access(Guard.SIGNING)


def to(action: Action, locate: Locator = the_network) -> Access:
    return Access(Guard.RESOURCE, action, locate)


def listing(action: Action) -> Access:
    return Access(Guard.LISTING, action)


@dataclass(frozen=True)
class Call:
    """One authorised request as a handler sees it."""

    request: Request
    principal: Principal | None
    located: Located | None = None

    @property
    def actor(self) -> str:
        """Who the records this call makes name as their actor: the authenticated principal,
        never anything the caller writes (issue 8 item 4; 21 CFR 11.10(e))."""
        if self.principal is None:
            raise RuntimeError("a public endpoint records nothing in anyone's name")
        return self.principal.principal_id

    def may(self, action: Action, resource: Resource) -> bool:
        """The policy's answer for one item of a listing."""
        return self.principal is not None and decide(self.principal, action, resource).allowed


Handler = Callable[[Call], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One route: `make(runtime)` returns its handler once the service has started."""

    method: str
    path: str
    access: Access
    make: Callable[["Runtime"], Handler]
    summary: str
    # OpenAPI: the request body's model (or a JSON Schema), and the answers besides 401/403
    body: type[BaseModel] | Mapping[str, Any] | None = None
    answers: Mapping[int, str] = field(default_factory=lambda: {200: "OK"})
    # Takes an `Idempotency-Key` header: a resubmission is answered as the first request was,
    # and changes nothing (infra/runtime/edge.py, infra/runtime/idempotency.py). For routes
    # that submit a command; not for one whose body holds a secret (a password, a token).
    idempotent: bool = False

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{([^}:]+)", self.path)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"
