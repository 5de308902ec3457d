"""Manufacturing HTTP API: its records and their electronic signatures (a release is
approved by a qualified person's signature, EU GMP Annex 16 §1; 21 CFR 11.50), and the
issuing of chain-of-identity ids (issue 9 item 1, docs/identifiers.md)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse

from contracts import isbt128
from contracts.errors import CommandRefused
from contracts.events import ExcursionDetected, TemperatureReading
from contracts.ids import CentreId, SubjectId, UnitId
from infra.runtime.access.policy import Action, Resource
from infra.runtime.access.store import PgAccessStore
from infra.runtime.endpoints import Call, Endpoint, Handler, Located, NotFound, to
from infra.runtime.eventstore import ConcurrencyConflictError, Metadata
from infra.runtime.http import parse_body, refused
from infra.runtime.signing import signature_endpoints
from infra.runtime.streams import PgStreams
from services.manufacturing.adapters.cois import next_sequence
from services.manufacturing.adapters.enrolments import PgEnrolments
from services.manufacturing.adapters.records import record_resource
from contracts.registry import parse_event
from services.kernel.aggregate import rebuild
from services.manufacturing.adapters.fhir import biologically_derived_product
from services.manufacturing.adapters.organisations import PgOrganisations
from services.manufacturing.domain.model import ChainOfIdentity, coi_stream
from contracts.commands import RecordCustodyStep
from contracts.envelope import CommandEnvelope
from services.manufacturing.application.handlers import issue_coi, record_custody_step, record_readings
from services.manufacturing.domain.model import CoiAlreadyIssued
from services.manufacturing.application.signatures import on_record_signed
from infra.runtime.eventstore import EventStore
from infra.runtime.signing import StoredRecord
from contracts.events import RecordSigned

if TYPE_CHECKING:
    from infra.runtime.host import Runtime


class CoiRequest(BaseModel):
    """Issue a COI for this subject's starting material, under the FIN of its centre."""

    model_config = ConfigDict(extra="forbid")
    subject_id: SubjectId


async def locate_subject(request: Request, rt: "Runtime") -> Located:
    body = await parse_body(request, CoiRequest)
    async with rt.pool.acquire() as conn:
        centre = await PgEnrolments(conn).centre_of(body.subject_id)
    if centre is None:
        raise NotFound(f"subject {body.subject_id} is not enrolled", code="SUBJECT_NOT_ENROLLED")
    return Located(Resource(centre_id=centre), (body.subject_id, centre))


def issue(rt: "Runtime") -> Handler:
    async def handle(call: Call) -> JSONResponse:
        subject_id, centre = call.located.found
        async with rt.pool.acquire() as conn:
            fin = await PgAccessStore(conn).fin_of(centre)
        if fin is None:
            return JSONResponse({"error": f"centre {centre} has no ISBT 128 facility identification number to issue "
                                          "COIs under (celltrail access org add ... --fin)", "code": "NO_FIN"},
                                status_code=409)
        at = datetime.now(timezone.utc)
        meta = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=call.actor)
        for _ in range(10):
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    coi = await issue_coi(subject_id, centre, fin, await next_sequence(conn, fin, at.year), at,
                                          PgStreams(conn, rt.store, meta))
            # Two issuers drew one sequence: the second finds the COI's stream written (it
            # committed between the draw and the load) or collides on its first version;
            # either way it draws the next.
            except (ConcurrencyConflictError, CoiAlreadyIssued):
                continue
            return JSONResponse({"coi_id": coi, "label": isbt128.parse(coi).eye_readable, "subject_id": subject_id,
                                 "centre_id": centre}, status_code=201)
        return JSONResponse({"error": "COIs are being issued concurrently; try again", "code": "CONCURRENT_CHANGE"},
                            status_code=409)
    return handle


class ReadingsRequest(BaseModel):
    """A temperature logger's readings for units in one shipment or storage location, loaded by
    `org_id` (which holds them, or to which they were shipped)."""

    model_config = ConfigDict(extra="forbid")
    unit_ids: list[UnitId] = Field(min_length=1, max_length=500)
    logger_id: str = Field(min_length=1, max_length=80)
    org_id: CentreId
    location: str = Field(min_length=1, max_length=120)
    readings: list[TemperatureReading] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _in_time_order(self) -> "ReadingsRequest":
        for n, (before, after) in enumerate(zip(self.readings, self.readings[1:]), start=1):
            if after.at <= before.at:
                raise ValueError(f"readings[{n}] at {after.at.isoformat()} does not follow readings[{n - 1}] at "
                                 f"{before.at.isoformat()}: readings go in time order, one per instant")
        return self


async def locate_organisation(request: Request, rt: "Runtime") -> Located:
    body = await parse_body(request, ReadingsRequest)
    return Located(Resource(centre_id=body.org_id, facility_id=body.org_id), body)


def load_readings(rt: "Runtime") -> Handler:
    async def handle(call: Call) -> JSONResponse:
        body: ReadingsRequest = call.located.found
        meta = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=call.actor)
        for _ in range(10):
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    events = await record_readings(body.unit_ids, body.logger_id, body.org_id, body.location,
                                                   body.readings, PgStreams(conn, rt.store, meta), call.principal,
                                                   PgOrganisations(conn))
                break
            except CommandRefused as exc:
                return refused(exc)
            except ConcurrencyConflictError:
                continue  # a unit's COI changed between its load and the append: read it again
        else:
            return JSONResponse({"error": "the units are changing too fast; load the file again",
                                 "code": "CONCURRENT_CHANGE"}, status_code=409)
        found = [e for e in events if isinstance(e, ExcursionDetected)]
        return JSONResponse({"readings": len(body.readings), "units": list(dict.fromkeys(body.unit_ids)),
                             "excursions": [e.model_dump(mode="json") for e in found],
                             "quarantined": sorted({e.unit_id for e in found})}, status_code=201)
    return handle


async def locate_unit(request: Request, rt: "Runtime") -> Located:
    text = request.path_params["unit_id"]
    try:
        coi, division = isbt128.parse_unit(text)
    except isbt128.IdentifierError as exc:
        raise NotFound(str(exc), code="UNKNOWN_UNIT") from None
    async with rt.pool.acquire() as conn:
        events = [parse_event(e) for e in await rt.store.load(conn, coi_stream(coi))]
    chain = rebuild(ChainOfIdentity(coi), events)
    if coi + division not in chain.units:
        raise NotFound(f"unit {coi + division} was never collected or labelled", code="UNKNOWN_UNIT")
    return Located(Resource(centre_id=chain.centre_id, facility_id=chain.facility_id), (chain, coi + division))


def unit_as_fhir(rt: "Runtime") -> Handler:
    async def handle(call: Call) -> JSONResponse:
        chain, unit_id = call.located.found
        return JSONResponse(biologically_derived_product(chain, unit_id, now=datetime.now(timezone.utc)),
                            media_type="application/fhir+json")
    return handle


async def locate_step(request: Request, rt: "Runtime") -> Located:
    body = await parse_body(request, RecordCustodyStep)
    return Located(Resource(centre_id=body.org_id, facility_id=body.org_id), body)


def custody_step(rt: "Runtime") -> Handler:
    """A custody step reported over HTTP (a facility's or a courier's system without the
    broker, issue 9 item 7): the same handler as on the command topic, at once; a refusal is
    409 with its code (and recorded in access.refusals)."""
    async def handle(call: Call) -> JSONResponse:
        cmd: RecordCustodyStep = call.located.found
        env = CommandEnvelope.wrap(cmd, actor=call.actor)
        meta = Metadata(correlation_id=env.correlation_id, causation_id=env.command_id, actor=call.actor)
        for _ in range(10):
            try:
                async with rt.pool.acquire() as conn, conn.transaction():
                    streams = PgStreams(conn, rt.store, meta)
                    await record_custody_step(cmd, streams, call.principal, PgOrganisations(conn))
                    events, _ = await streams.load(coi_stream(isbt128.coi_of_unit(cmd.unit_id)))
                break
            except CommandRefused as exc:
                return refused(exc)
            except ConcurrencyConflictError:
                continue  # another step of the same COI meanwhile: judge again on what it left
        else:
            return JSONResponse({"error": "the unit is changing too fast; report the step again",
                                 "code": "CONCURRENT_CHANGE"}, status_code=409)
        return JSONResponse({"command_id": str(env.command_id), "recorded": events[-1].model_dump(mode="json")},
                            status_code=201)
    return handle


async def after_sign(conn, store: EventStore, record: StoredRecord, signed: RecordSigned, meta: Metadata) -> None:
    """A signature of a chain-of-identity record: what it puts into effect (a QP's approval
    certifies a release; the physician's approval of a risk assessment accepts an
    exceptional release), in the signature's transaction."""
    await on_record_signed(record.event_type, record.payload, record.event_id, signed, PgStreams(conn, store, meta))


ENDPOINTS = (
    Endpoint("POST", "/custody-steps", to(Action.RECORD_CUSTODY, locate_step), custody_step,
             "Report a custody step of a unit (the RecordCustodyStep command, applied at once): for the organisation "
             "named, which must hold the unit; refused with the custody table's reason code", body=RecordCustodyStep,
             answers={201: "recorded: the manufacturing.CustodyStepRecorded event",
                      409: "refused by the custody table (docs/custody.md), with its code",
                      422: "invalid request (a mistyped unit id or label)"},
             idempotent=True),
    Endpoint("GET", "/units/{unit_id}/fhir", to(Action.READ_PRODUCT, locate_unit), unit_as_fhir,
             "A unit (bag) as an HL7 FHIR R5 BiologicallyDerivedProduct: its COI, division, collection, processing "
             "facility, storage temperature and custody state; pseudonymous ids only",
             answers={200: "the resource (application/fhir+json)", 404: "no such unit"}),
    Endpoint("POST", "/temperature-readings", to(Action.RECORD_CUSTODY, locate_organisation), load_readings,
             "Load a temperature logger's readings for units in a shipment or storage location; every excursion "
             "is recorded and quarantines its unit", body=ReadingsRequest,
             answers={201: "loaded: the excursions found and the units quarantined",
                      409: "refused: an unknown unit, or one the organisation does not hold",
                      422: "invalid request (readings out of time order, a mistyped unit id)"},
             idempotent=True),
    *signature_endpoints(record_resource, Action.READ_PRODUCT, after_sign),
    Endpoint("POST", "/cois", to(Action.WRITE_SUBJECT, locate_subject), issue,
             "Issue a chain-of-identity id (ISBT 128-shaped) for a subject's starting material, under its centre's "
             "facility identification number", body=CoiRequest,
             answers={201: "issued: the COI and its label form", 404: "subject not enrolled",
                      409: "the centre has no FIN", 422: "invalid request"},
             idempotent=True),
)
