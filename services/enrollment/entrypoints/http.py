"""Enrollment HTTP API: patient registration is accepted here and nowhere else, because it
carries direct identifiers that must never reach a Kafka topic."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts.commands import RegisterPatient
from contracts.errors import CommandRefused
from infra.runtime.eventstore import Metadata
from infra.runtime.host import Runtime
from infra.runtime.http import BadRequest, parse_body, refused
from infra.runtime.streams import PgStreams
from services.enrollment.adapters.identities import PgIdentities
from services.enrollment.application import handlers
from services.enrollment.application.ports import IdentityAlreadyRecorded


def routes(rt: Runtime) -> list[Route]:
    async def register_patient(request: Request) -> JSONResponse:
        try:
            cmd = await parse_body(request, RegisterPatient)
        except BadRequest as bad:
            return bad.response
        actor = request.headers.get("x-celltrail-actor", "enrollment-api")
        meta = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=actor)
        for attempt in (1, 2):
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    subject_id, created = await handlers.register_patient(
                        cmd, PgStreams(conn, rt.store, meta), PgIdentities(conn))
                break
            except CommandRefused as exc:
                return refused(exc)
            except IdentityAlreadyRecorded:
                if attempt == 2:
                    raise
                # A concurrent registration of the same record number won: the second
                # attempt finds its subject id instead of issuing a second pseudonym.
        return JSONResponse({"subject_id": subject_id, "created": created}, status_code=201 if created else 200)

    return [Route("/patients", register_patient, methods=["POST"])]
