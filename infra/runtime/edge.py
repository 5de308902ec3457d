"""The HTTP edge: the one place every request to every service is authenticated,
authorised and, when refused, recorded.

For each request to a declared endpoint (`infra.runtime.endpoints`):
1. authenticate, unless the endpoint is public: no or a bad credential is 401;
2. ask the policy whether the principal holds the endpoint's action anywhere, find the
   resource the request is about (a subject's centre, a registration's centre), and ask
   the policy again for that resource: 403 when either refuses (whoever holds the action
   nowhere gets 403 whatever the request names; 404 or 422 only to those who could be
   allowed); a path or query parameter that is not printable text (a NUL, any control
   character: `contracts.base.describe_unprintable`) is refused there too, 422 naming the
   parameter, before any of it reaches SQL;
3. run the handler with the authenticated principal as the actor of what it records; for
   an endpoint declared `idempotent`, a request with an `Idempotency-Key` header is answered
   as the first request with that key was, changing nothing (`_keyed`,
   infra/runtime/idempotency.py).

Every refusal, the edge's (401, 403) and the handler's (a domain refusal such as
RegisterPatient for an unknown centre, invalid input), is written to `access.refusals`
before it is answered (issue 8 item 7; 21 CFR 11.10(e); EU GMP Annex 11 §12.4). A 404 is
not a refusal. If the record cannot be written the request fails (500), so no refusal goes
unrecorded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from contracts.base import describe_unprintable
from infra.runtime.access.http import Forbidden, Unauthenticated, forbidden, unauthenticated
from infra.runtime.access.policy import decide, decide_anywhere
from infra.runtime.access.principals import Principal
from infra.runtime.access.refusals import PgRefusals, Refusal, credential_presented
from infra.runtime.endpoints import Call, Endpoint, Handler, Located, NotFound
from infra.runtime import idempotency
from infra.runtime.http import BadRequest
from infra.runtime.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, fingerprint, valid_key

if TYPE_CHECKING:
    from infra.runtime.host import Runtime

log = logging.getLogger(__name__)


def is_refusal(status: int) -> bool:
    """A request turned down: every 4xx but 404 (nothing there) and 405 (no such route)."""
    return 400 <= status < 500 and status not in (404, 405)


@dataclass
class _Attempt:
    """What is known of a request so far: who, and what about (for the refusal's record)."""

    principal: Principal | None = None
    located: Located | None = None


def check_parameters(request: Request) -> None:
    """Every path and query parameter is printable text (issue 12 item 6: a NUL in a
    subject id or a programme was a 500 from PostgreSQL), else 422 naming each at fault."""
    found = [(f"path parameter {name}", why) for name, value in request.path_params.items()
             if isinstance(value, str) and (why := describe_unprintable(value))]
    for name, value in request.query_params.multi_items():
        if (why := describe_unprintable(name)) is not None:
            found.append((f"query parameter name {name!r}", why))
        elif (why := describe_unprintable(value)) is not None:
            found.append((f"query parameter {name}", why))
    if found:
        raise BadRequest(JSONResponse({"error": "invalid request: " + "; ".join(f"{where}: {why}" for where, why in found),
                                       "code": "INVALID_PARAMETER",
                                       "details": [{"field": where, "error": why} for where, why in found]},
                                      status_code=422))


async def _authorise(endpoint: Endpoint, rt: "Runtime", request: Request, attempt: _Attempt) -> None:
    action, locate, principal = endpoint.access.action, endpoint.access.locate, attempt.principal
    if action is None or principal is None:
        check_parameters(request)
        return
    anywhere = decide_anywhere(principal, action)
    if locate is not None:
        try:
            check_parameters(request)
            attempt.located = await locate(request, rt)
        except (NotFound, BadRequest):
            if not anywhere.allowed:
                raise Forbidden(anywhere) from None
            raise
    if not anywhere.allowed:
        raise Forbidden(anywhere)
    if locate is None:
        check_parameters(request)
    if attempt.located is not None:
        decision = decide(principal, action, attempt.located.resource)
        if not decision.allowed:
            raise Forbidden(decision)


async def serve(endpoint: Endpoint, handler: Handler, rt: "Runtime", request: Request) -> Response:
    attempt = _Attempt()
    try:
        if endpoint.access.authenticated:
            attempt.principal = await rt.authenticator.authenticate(request.headers)
        await _authorise(endpoint, rt, request, attempt)
        call = Call(request, attempt.principal, attempt.located)
        key = request.headers.get(IDEMPOTENCY_HEADER) if endpoint.idempotent else None
        response = await (handler(call) if key is None else _keyed(endpoint, handler, rt, call, key))
    except Unauthenticated as exc:
        response = unauthenticated(exc)
    except Forbidden as exc:
        response = forbidden(exc)
    except NotFound as exc:
        response = JSONResponse({"error": str(exc), "code": exc.code}, status_code=404)
    except BadRequest as bad:
        response = bad.response
    if is_refusal(response.status_code):
        await _record(rt, endpoint, request, response, attempt.principal, attempt.located)
    return response


async def _keyed(endpoint: Endpoint, handler: Handler, rt: "Runtime", call: Call, key: str) -> Response:
    """The handler's answer, kept under `key`; or the answer kept for it already."""
    if not valid_key(key):
        return JSONResponse({"error": f"the {IDEMPOTENCY_HEADER} header must be 1 to 200 printable ASCII "
                                      f"characters without spaces", "code": "INVALID_IDEMPOTENCY_KEY"}, status_code=400)
    request = call.request
    print_ = fingerprint(endpoint.key, request.url.path, call.actor, await request.body())
    async with rt.pool.acquire() as conn:
        known = await idempotency.claim(conn, rt.service, key, endpoint.key, print_, call.actor)
    if known is not None:
        if known.fingerprint != print_:
            return JSONResponse({"error": f"idempotency key {key!r} was used for another request; a new request "
                                          "needs a new key", "code": "IDEMPOTENCY_KEY_REUSED"}, status_code=422)
        if known.outcome == "in_progress":
            return JSONResponse({"error": f"a request with idempotency key {key!r} is still being answered; "
                                          "try again shortly", "code": "IDEMPOTENCY_KEY_IN_USE"},
                                status_code=409, headers={"Retry-After": "1"})
        return Response(known.http_body, status_code=known.http_status or 200, media_type="application/json",
                        headers={REPLAYED_HEADER: "true"})
    try:
        response = await handler(call)
    except BaseException:
        async with rt.pool.acquire() as conn:
            await idempotency.release(conn, rt.service, key)
        raise
    async with rt.pool.acquire() as conn:
        if 200 <= response.status_code < 300 or response.status_code == 409:
            refusal = _code_and_reason(response) if response.status_code == 409 else None
            await idempotency.answer(conn, rt.service, key, response.status_code, bytes(response.body),
                                     refused=refusal)
        else:  # not an outcome of the command (an invalid request): the key may be used again
            await idempotency.release(conn, rt.service, key)
    return response


def _body(response: Response) -> dict:
    try:
        body = json.loads(bytes(response.body))
    except (ValueError, AttributeError):
        return {}
    return body if isinstance(body, dict) else {}


def _code_and_reason(response: Response) -> tuple[str, str]:
    body = _body(response)
    code = body.get("code") or ("INVALID_REQUEST" if response.status_code in (400, 422) else str(response.status_code))
    reason = str(body.get("error") or f"HTTP {response.status_code}")
    if body.get("details"):
        reason += ": " + "; ".join(f"{d.get('field')}: {d.get('error')}" for d in body["details"])
    return str(code), reason


async def _record(rt: "Runtime", endpoint: Endpoint, request: Request, response: Response,
                  principal: Principal | None, located: Located | None) -> None:
    code, reason = _code_and_reason(response)
    resource = located.resource if located else None
    refusal = Refusal(service=rt.service, method=request.method, route=endpoint.path, path=request.url.path,
                      status=response.status_code, code=code, reason=reason,
                      principal_id=principal.principal_id if principal else None,
                      credential=credential_presented(request.headers),
                      subject_id=request.path_params.get("subject_id") or _body(response).get("subject_id"),
                      centre_id=resource.centre_id if resource else None,
                      facility_id=resource.facility_id if resource else None)
    async with rt.pool.acquire() as conn:
        await PgRefusals(conn).record(refusal)
    log.info("refused %s %s (%s %s) for %s: %s", request.method, request.url.path, response.status_code, code,
             refusal.principal_id or f"anonymous ({refusal.credential})", reason)

