"""Enrollment HTTP API: patient registration is accepted here and nowhere else, because it
carries direct identifiers that must never reach a Kafka topic; so is the erasure of those
identifiers. Both are written by centre staff of the subject's centre (the policy's
`write_subject` and `erase_identifiers`); the actor of what they record is the
authenticated principal."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import asyncpg
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from contracts.base import from_json
from contracts.commands import EraseIdentity, RegisterPatient, ScreenCandidate
from contracts.errors import CommandRefused
from infra.runtime.access.policy import Action, Resource
from infra.runtime.endpoints import Call, Endpoint, Handler, Located, NotFound, to
from infra.runtime.eventstore import ConcurrencyConflictError, Metadata
from infra.runtime.host import Runtime
from infra.runtime.http import BadRequest, parse_body, refused
from infra.runtime.settings import Settings
from infra.runtime.streams import PgStreams
from services.enrollment.application import handlers
from services.enrollment.application.ports import Identities, IdentityAlreadyRecorded
from services.enrollment.domain.model import IdentityConflict

IdentitiesOf = Callable[[Settings], Callable[[asyncpg.Connection], Identities]]


def _meta(call: Call) -> Metadata:
    return Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=call.actor)


async def registration_centre(request: Request, rt: Runtime) -> Located:
    """A registration is about the centre its body names."""
    cmd = await parse_body(request, RegisterPatient)
    return Located(Resource(centre_id=cmd.centre_id), cmd)


async def subject_centre(request: Request, rt: Runtime) -> Located:
    subject_id = request.path_params["subject_id"]
    async with rt.pool.acquire() as conn:
        meta = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=rt.service)  # a read: never appended
        centre_id = await handlers.subject_centre(subject_id, PgStreams(conn, rt.store, meta))
    if centre_id is None:
        raise NotFound(f"no subject {subject_id}")
    return Located(Resource(centre_id=centre_id))


async def screening_centre(request: Request, rt: Runtime) -> Located:
    """A screening is about the subject's centre, which the body must name (the domain checks it)."""
    cmd = await parse_body(request, ScreenCandidate)
    return Located(Resource(centre_id=cmd.centre_id), cmd)


def _erasure(request_body: bytes, subject_id: str) -> EraseIdentity:
    try:
        body = json.loads(request_body or b"{}")
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        return from_json(EraseIdentity, {**body, "subject_id": subject_id})
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        raise BadRequest(JSONResponse({"error": "invalid request", "details": errors}, status_code=422)) from None
    except ValueError as exc:
        raise BadRequest(JSONResponse({"error": f"body is not a JSON object: {exc}"}, status_code=400)) from None


def endpoints(identities_of: IdentitiesOf) -> tuple[Endpoint, ...]:
    def register_patient(rt: Runtime) -> Handler:
        identities = identities_of(rt.settings)

        async def handle(call: Call) -> JSONResponse:
            cmd: RegisterPatient = call.located.found
            meta = _meta(call)
            for attempt in (1, 2):
                try:
                    async with rt.pool.acquire() as conn, conn.transaction():
                        subject_id, created = await handlers.register_patient(
                            cmd, PgStreams(conn, rt.store, meta), identities(conn))
                    break
                except IdentityConflict as exc:  # the subject named, so the refusal's record names it
                    return JSONResponse({"error": exc.reason, "code": exc.code, "subject_id": exc.subject_id},
                                        status_code=409)
                except CommandRefused as exc:
                    return refused(exc)
                except IdentityAlreadyRecorded:
                    if attempt == 2:
                        raise
                    # A concurrent registration of the same record number won: the second
                    # attempt finds its subject id instead of issuing a second pseudonym (or
                    # refuses an identity conflict, if that was another person).
            return JSONResponse({"subject_id": subject_id, "created": created}, status_code=201 if created else 200)
        return handle

    def erase_identity(rt: Runtime) -> Handler:
        identities = identities_of(rt.settings)

        async def handle(call: Call) -> JSONResponse:
            """POST /patients/{subject_id}/erasure {"reason": "..."}: the identifiers go, the events stay."""
            cmd = _erasure(await call.request.body(), call.request.path_params["subject_id"])
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    erased_at = await handlers.erase_identity(cmd, PgStreams(conn, rt.store, _meta(call)),
                                                              identities(conn))
            except CommandRefused as exc:
                return refused(exc)
            except ConcurrencyConflictError:
                return JSONResponse({"error": f"subject {cmd.subject_id} changed meanwhile; try again",
                                     "code": "CONCURRENT_CHANGE"}, status_code=409)
            return JSONResponse({"subject_id": cmd.subject_id, "erased_at": erased_at.isoformat()})
        return handle

    def screen_candidate(rt: Runtime) -> Handler:
        identities = identities_of(rt.settings)

        async def handle(call: Call) -> JSONResponse:
            """POST /screenings: the candidate judged at once; 201 with the result either way."""
            cmd: ScreenCandidate = call.located.found
            for _ in range(3):
                try:
                    async with rt.pool.acquire() as conn, conn.transaction():
                        [screened] = await handlers.screen_candidate(cmd, PgStreams(conn, rt.store, _meta(call)),
                                                                     identities(conn))
                    break
                except CommandRefused as exc:
                    return refused(exc)
                except ConcurrencyConflictError:
                    continue  # the subject changed meanwhile: judge again on what it left
            else:
                return JSONResponse({"error": f"subject {cmd.subject_id} is changing too fast; screen again",
                                     "code": "CONCURRENT_CHANGE"}, status_code=409)
            return JSONResponse(screened.model_dump(mode="json"), status_code=201)
        return handle

    reason = EraseIdentity.model_json_schema()["properties"]["reason"]
    return (
        Endpoint("POST", "/patients", to(Action.WRITE_SUBJECT, registration_centre), register_patient,
                 "Register a patient at a centre: the identifiers stay in enrollment, a pseudonymous subject id "
                 "is returned", body=RegisterPatient,
                 answers={200: "the same person (record number, names, date of birth) already registered: "
                               "the same subject id", 201: "registered",
                          409: "refused by the domain (an unknown centre, a date of birth in the future, the record "
                               "number registered with another name or date of birth: IDENTITY_CONFLICT)",
                          422: "invalid request"},
                 idempotent=True),
        Endpoint("POST", "/screenings", to(Action.WRITE_SUBJECT, screening_centre), screen_candidate,
                 "Screen a registered subject for a programme: the facts judged by its current eligibility "
                 "criteria, every failed criterion with its reason (issue 10 item 2)", body=ScreenCandidate,
                 answers={201: "screened: eligible, or every failed criterion",
                          409: "refused (unknown subject or programme, another centre, invalid facts)",
                          422: "invalid request"},
                 idempotent=True),
        Endpoint("POST", "/patients/{subject_id}/erasure", to(Action.ERASE_IDENTIFIERS, subject_centre),
                 erase_identity, "Erase a person's identifiers and key; every event stays under the pseudonym",
                 body={"type": "object", "required": ["reason"], "properties": {"reason": reason}},
                 answers={200: "erased", 404: "no such subject", 409: "refused (e.g. already erased)",
                          422: "invalid request"},
                 idempotent=True),
    )
