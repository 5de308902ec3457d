"""Infusion HTTP API: the bedside gate (issue 9 item 5, docs/custody.md "Bedside").

`POST /bedside-checks`: the bag's label and the patient's wristband (and, optionally, the
volume prepared, checked against the bag's cell-dose prescription), scanned at the bedside
by two distinct people, both qualified to verify at that patient's centre: the caller (its
credential) and a second verifier (`second_verifier_token`, their own bearer token, checked
here as the caller's is). The answer is go, or no-go with every reason, at once, from the
service's own view of the units; either way it is recorded as `infusion.BedsideCheckRecorded`
(the caller its actor), and only a go, the unit's latest check, lets `RecordInfusion` name it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from contracts.events import BedsideCheckRecorded, NoGoReason
from contracts.ids import SubjectId, UnitId
from infra.runtime.access.http import Unauthenticated
from infra.runtime.access.policy import Action, Resource, decide
from infra.runtime.endpoints import Call, Endpoint, Handler, Located, NotFound, to
from infra.runtime.eventstore import ConcurrencyConflictError, Metadata
from infra.runtime.http import parse_body
from infra.runtime.streams import PgStreams
from infra.runtime.subjects import PgSubjectCentres
from contracts import isbt128
from contracts.events import ProductInfused
from contracts.registry import parse_event
from services.infusion.adapters.fhir import dispense
from services.infusion.adapters.policies import PgTreatments
from services.infusion.adapters.units import PgUnits
from services.infusion.domain.bedside import bedside_stream, flagged, judge
from services.infusion.domain.dosing import readiness
from services.infusion.domain.model import InfusionHistory, infusion_stream
from services.kernel.aggregate import rebuild

if TYPE_CHECKING:
    from infra.runtime.host import Runtime


class BedsideCheckRequest(BaseModel):
    """What was scanned at the bedside, and the second verifier's credential."""

    model_config = ConfigDict(extra="forbid")
    unit_id: UnitId  # the bag's label, compact or as printed
    subject_id: SubjectId  # the patient's wristband
    second_verifier_token: str = Field(min_length=1, max_length=4096)
    # the volume prepared for infusion, checked against the bag's cell-dose prescription
    # (None: the prescribed volume)
    volume_ml: float | None = Field(default=None, gt=0, le=5000)


async def locate_patient(request, rt: "Runtime") -> Located:
    body = await parse_body(request, BedsideCheckRequest)
    async with rt.pool.acquire() as conn:
        centre = await PgSubjectCentres(conn, "infusion").centre_of(body.subject_id)
    if centre is None:
        raise NotFound(f"subject {body.subject_id} is not enrolled", code="SUBJECT_NOT_ENROLLED")
    return Located(Resource(centre_id=centre), (body, centre))


def check(rt: "Runtime") -> Handler:
    async def handle(call: Call) -> JSONResponse:
        body, centre = call.located.found
        try:
            second = await rt.authenticator.authenticate(Headers({"authorization": f"Bearer {body.second_verifier_token}"}))
        except Unauthenticated as exc:
            return JSONResponse({"error": f"second verifier: {exc}", "code": "SECOND_VERIFIER_UNAUTHENTICATED"},
                                status_code=422)
        if second.principal_id == call.actor:
            return JSONResponse({"error": "the second verifier must be another person than the first",
                                 "code": "SAME_VERIFIER"}, status_code=422)
        decision = decide(second, Action.VERIFY_AT_BEDSIDE, Resource(centre_id=centre))
        if not decision.allowed:
            return JSONResponse({"error": f"second verifier: {decision.reason}", "code": "SECOND_VERIFIER_FORBIDDEN"},
                                status_code=422)
        at = datetime.now(timezone.utc)
        meta = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=call.actor)
        for _ in range(5):
            async with rt.pool.acquire() as conn, conn.transaction():
                streams = PgStreams(conn, rt.store, meta)
                events, _ = await streams.load(infusion_stream(body.subject_id))
                history = rebuild(InfusionHistory(body.subject_id), events)
                unit = await PgUnits(conn).get(body.unit_id)
                reasons = judge(unit, unit_id=body.unit_id, subject_id=body.subject_id, subject_centre=centre,
                                infused=body.unit_id in history.infused_units, at=at)
                reasons += readiness(history, await PgTreatments(conn).of(body.subject_id), body.unit_id, at,
                                     body.volume_ml)
                event = BedsideCheckRecorded(
                    check_id=uuid.uuid4(), unit_id=body.unit_id, coi_id=body.unit_id[:14], subject_id=body.subject_id,
                    centre_id=centre, verified_by=[call.actor, second.principal_id], go=not reasons,
                    reasons=[NoGoReason(code=r.code, reason=r.reason) for r in reasons], checked_at=at,
                    out_of_specification=not reasons and flagged(unit))
                _, version = await streams.load(bedside_stream(body.unit_id))
                try:
                    await streams.append(bedside_stream(body.unit_id), version, [event], occurred_at=at,
                                         subject_id=body.subject_id, centre_id=centre)
                except ConcurrencyConflictError:
                    continue  # another check of this bag at the same moment: judge again
            return JSONResponse({"check_id": str(event.check_id), "go": event.go, "unit_id": event.unit_id,
                                 "subject_id": event.subject_id, "verified_by": event.verified_by,
                                 "reasons": [r.model_dump() for r in event.reasons], "checked_at": at.isoformat(),
                                 "out_of_specification": event.out_of_specification},
                                status_code=201)
        return JSONResponse({"error": "the bag is being checked concurrently; scan again", "code": "CONCURRENT_CHANGE"},
                            status_code=409)
    return handle


async def locate_infusion(request, rt: "Runtime") -> Located:
    try:
        unit_id = isbt128.normalise_unit(request.path_params["unit_id"])
    except isbt128.IdentifierError as exc:
        raise NotFound(str(exc), code="UNKNOWN_UNIT") from None
    async with rt.pool.acquire() as conn:
        unit = await PgUnits(conn).get(unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} is not known to infusion", code="UNKNOWN_UNIT")
        centre = await PgSubjectCentres(conn, "infusion").centre_of(unit.subject_id)
        infusions = [(e, parse_event(e)) for e in await rt.store.load(conn, infusion_stream(unit.subject_id))]
        checks = [parse_event(e) for e in await rt.store.load(conn, bedside_stream(unit_id))]
    found = next(((env, p) for env, p in infusions if isinstance(p, ProductInfused) and p.unit_id == unit_id), None)
    if found is None:
        raise NotFound(f"unit {unit_id} was not infused", code="NOT_INFUSED")
    return Located(Resource(centre_id=centre), (found, centre, checks))


def infusion_as_fhir(rt: "Runtime") -> Handler:
    async def handle(call: Call) -> JSONResponse:
        (env, infused), centre, checks = call.located.found
        check = next((c for c in checks if isinstance(c, BedsideCheckRecorded)
                      and c.check_id == infused.bedside_check_id), None)
        return JSONResponse(dispense(infused, event_id=str(env.event_id), actor=env.actor, centre_id=centre,
                                     check=check), media_type="application/fhir+json")
    return handle


ENDPOINTS = (
    Endpoint("GET", "/infusions/{unit_id}/fhir", to(Action.READ_PRODUCT, locate_infusion), infusion_as_fhir,
             "A unit's infusion as an HL7 FHIR R5 BiologicallyDerivedProductDispense: the bag, the patient "
             "(pseudonymous), who infused it, when, where and the bedside check",
             answers={200: "the resource (application/fhir+json)", 404: "no such unit, or not infused"}),
    Endpoint("POST", "/bedside-checks", to(Action.VERIFY_AT_BEDSIDE, locate_patient), check,
             "Go or no-go, at once, for a bag's label and a patient's wristband scanned by two qualified people; "
             "recorded either way", body=BedsideCheckRequest,
             answers={201: "checked: go (`out_of_specification`: a bag released out of specification on the "
                           "exceptional-release path), or no-go with every reason", 404: "subject not enrolled",
                      422: "invalid request, or the second verifier is missing, the same person or not qualified"}),
)
