"""Enrollment HTTP API: patient registration is accepted here and nowhere else, because it
carries direct identifiers that must never reach a Kafka topic; so is the erasure of those
identifiers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import asyncpg
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts.commands import EraseIdentity, RegisterPatient
from contracts.errors import CommandRefused
from infra.runtime.eventstore import ConcurrencyConflictError, Metadata
from infra.runtime.host import Runtime
from infra.runtime.http import BadRequest, parse_body, refused
from infra.runtime.streams import PgStreams
from services.enrollment.application import handlers
from services.enrollment.application.ports import Identities, IdentityAlreadyRecorded


def _meta(request: Request) -> Metadata:
    return Metadata(correlation_id=uuid.uuid4(), causation_id=None,
                    actor=request.headers.get("x-celltrail-actor", "enrollment-api"))


def routes(rt: Runtime, identities: Callable[[asyncpg.Connection], Identities]) -> list[Route]:
    async def register_patient(request: Request) -> JSONResponse:
        try:
            cmd = await parse_body(request, RegisterPatient)
        except BadRequest as bad:
            return bad.response
        meta = _meta(request)
        for attempt in (1, 2):
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    subject_id, created = await handlers.register_patient(
                        cmd, PgStreams(conn, rt.store, meta), identities(conn))
                break
            except CommandRefused as exc:
                return refused(exc)
            except IdentityAlreadyRecorded:
                if attempt == 2:
                    raise
                # A concurrent registration of the same record number won: the second
                # attempt finds its subject id instead of issuing a second pseudonym.
        return JSONResponse({"subject_id": subject_id, "created": created}, status_code=201 if created else 200)

    async def erase_identity(request: Request) -> JSONResponse:
        """POST /patients/{subject_id}/erasure {"reason": "..."}: the identifiers go, the events stay."""
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            cmd = EraseIdentity(**{**body, "subject_id": request.path_params["subject_id"]})
        except ValidationError as exc:
            errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
            return JSONResponse({"error": "invalid request", "details": errors}, status_code=422)
        except ValueError as exc:
            return JSONResponse({"error": f"body is not a JSON object: {exc}"}, status_code=400)
        try:
            async with rt.pool.acquire() as conn, conn.transaction():
                erased_at = await handlers.erase_identity(cmd, PgStreams(conn, rt.store, _meta(request)),
                                                          identities(conn))
        except CommandRefused as exc:
            return refused(exc)
        except ConcurrencyConflictError:
            return JSONResponse({"error": f"subject {cmd.subject_id} changed meanwhile; try again",
                                 "code": "CONCURRENT_CHANGE"}, status_code=409)
        return JSONResponse({"subject_id": cmd.subject_id, "erased_at": erased_at.isoformat()})

    return [Route("/patients", register_patient, methods=["POST"]),
            Route("/patients/{subject_id}/erasure", erase_identity, methods=["POST"])]
