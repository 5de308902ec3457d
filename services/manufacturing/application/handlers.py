"""Manufacturing handlers: chain of identity from collection to release."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from contracts import isbt128
import uuid

from contracts.commands import (
    BookSlot,
    CancelSlotBooking,
    RecordApheresisCollection,
    RecordCustodyStep,
    RecordOosRiskAssessment,
    RecordProductRelease,
    RecordQaDisposition,
    RecordQcResults,
    RecordSponsorNotified,
    RegisterProductUnits,
    RequestExceptionalRelease,
    SetProductSpecification,
    SetSlotCapacity,
)
from contracts.events import TemperatureReading
from contracts.errors import Unauthenticated
from contracts.envelope import EventEnvelope
from contracts.events import PatientRegistered, ProductInfused, SubjectEnrolled
from services.kernel.acting import ActingPrincipal, imports_records, roles_for
from services.kernel.aggregate import rebuild
from services.kernel.streams import Streams, reads
from services.manufacturing.application.ports import Enrolment, Enrolments, Organisations, Person, Persons
from services.manufacturing.domain.custody import QC_ROLES, Acting, RoleNotPermitted, transition_of
from services.manufacturing.domain.model import (
    DISPOSERS,
    LABELLERS,
    READERS,
    ChainOfIdentity,
    SubjectNotEnrolled,
    coi_stream,
)
from services.manufacturing.domain.release import QUALIFIED, REQUESTERS, ProductSpecification, spec_stream
from services.manufacturing.domain.slots import PLANNERS, SlotDay, slot_stream
from services.kernel.clinical_dates import start_of_day


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_collection(cmd: RecordApheresisCollection, streams: Streams, enrolments: Enrolments,
                            persons: Persons) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    donor_known = cmd.donor_id is None or await persons.centre_of_person(cmd.donor_id) is not None
    new = chain.collect(cmd, await enrolments.centre_of(cmd.subject_id), donor_known=donor_known,
                        enrolled_on=await enrolments.enrolled_on(cmd.subject_id))
    await streams.append(coi_stream(cmd.coi_id), version, new, occurred_at=cmd.collected_at,
                         subject_id=cmd.subject_id, centre_id=cmd.centre_id)


async def issue_coi(subject_id: str, centre_id: str, fin: str, sequence: int, at: datetime,
                    streams: Streams) -> str:
    """Issue COI `sequence` of `fin` in `at`'s year for the subject's starting material
    (docs/identifiers.md). Called over HTTP (entrypoints/http.py), not from the broker."""
    coi = str(isbt128.issue(fin, at.year, sequence))
    events, version = await streams.load(coi_stream(coi))
    await streams.append(coi_stream(coi), version, rebuild(ChainOfIdentity(coi), events).issue(subject_id, centre_id, at),
                         occurred_at=at, subject_id=subject_id, centre_id=centre_id)
    return coi


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_release(cmd: RecordProductRelease, streams: Streams, principal: ActingPrincipal | None) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    await streams.append(coi_stream(cmd.coi_id), version, chain.release(cmd, imported=imports_records(principal)),
                         occurred_at=cmd.released_at, subject_id=cmd.subject_id)


async def load_chain(streams: Streams, coi: str) -> tuple[ChainOfIdentity, int]:
    """The chain of identity `coi` as its stream left it, and the stream's version."""
    events, version = await streams.load(coi_stream(coi))
    return rebuild(ChainOfIdentity(coi), events), version


async def acting_for(principal: ActingPrincipal | None, org_id: str, organisations: Organisations,
                  allowed: frozenset) -> Acting:
    """For which organisation, of which kind, and in which role the principal acts."""
    if principal is None:
        raise Unauthenticated("a custody record needs an authenticated principal")
    kind = await organisations.kind_of(org_id)
    if kind is None:
        raise RoleNotPermitted(f"{org_id} is not an organisation of the network")
    roles = roles_for(principal, org_id)
    role = next((r for r in sorted(roles) if r in allowed), None)
    if role is None:
        held = ", ".join(sorted(roles)) or "no role"
        raise RoleNotPermitted(f"{principal.principal_id} holds {held} for {org_id}; this is recorded by "
                               f"{', '.join(sorted(allowed))}")
    return Acting(org_id, kind, role)


async def decide_on_chain(coi: str, org_id: str, allowed: frozenset, at: datetime, streams: Streams,
                          principal: ActingPrincipal | None, organisations: Organisations,
                          decide: Callable[[ChainOfIdentity, Acting], list]) -> None:
    """The common shape of a command for an organisation about one chain of identity: load the
    chain, find the role the principal acts in for the organisation, append what it decides."""
    chain, version = await load_chain(streams, coi)
    acting = await acting_for(principal, org_id, organisations, allowed)
    await streams.append(coi_stream(coi), version, decide(chain, acting), occurred_at=at, subject_id=chain.subject_id)


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def register_units(cmd: RegisterProductUnits, streams: Streams, principal: ActingPrincipal | None,
                         organisations: Organisations) -> None:
    await decide_on_chain(cmd.coi_id, cmd.org_id, LABELLERS, cmd.registered_at, streams, principal, organisations,
                          lambda chain, acting: chain.register_units(cmd, acting))


@reads(lambda cmd: [coi_stream(isbt128.coi_of_unit(cmd.unit_id))])
async def record_custody_step(cmd: RecordCustodyStep, streams: Streams, principal: ActingPrincipal | None,
                              organisations: Organisations) -> None:
    coi = isbt128.coi_of_unit(cmd.unit_id)
    chain, version = await load_chain(streams, coi)
    acting = await acting_for(principal, cmd.org_id, organisations, transition_of(cmd.step).roles)
    destination_kind = (await organisations.kind_of(cmd.destination_org_id)
                        if cmd.destination_org_id is not None else None)
    await streams.append(coi_stream(coi), version, chain.custody_step(cmd, acting, destination_kind),
                         occurred_at=cmd.at, subject_id=chain.subject_id)


@reads(lambda cmd: [spec_stream(cmd.programme_id, cmd.org_id)])
async def set_product_specification(cmd: SetProductSpecification, streams: Streams,
                                    principal: ActingPrincipal | None, organisations: Organisations) -> None:
    stream = spec_stream(cmd.programme_id, cmd.org_id)
    events, version = await streams.load(stream)
    spec = rebuild(ProductSpecification(cmd.programme_id, cmd.org_id), events)
    acting = await acting_for(principal, cmd.org_id, organisations, QUALIFIED)
    await streams.append(stream, version, spec.set(cmd, acting), occurred_at=cmd.set_at)


@reads(lambda cmd: [coi_stream(isbt128.coi_of_unit(cmd.unit_id))])
async def record_qc_results(cmd: RecordQcResults, streams: Streams, principal: ActingPrincipal | None,
                            organisations: Organisations, enrolments: Enrolments) -> None:
    """Judged against the specification of the subject's programme at the facility testing it."""
    coi = isbt128.coi_of_unit(cmd.unit_id)
    chain, version = await load_chain(streams, coi)
    acting = await acting_for(principal, cmd.org_id, organisations, QC_ROLES)
    programme = await enrolments.programme_of(chain.subject_id) if chain.subject_id else None
    limits = None
    if programme is not None:
        spec_events, _ = await streams.load(spec_stream(programme, cmd.org_id))
        limits = rebuild(ProductSpecification(programme, cmd.org_id), spec_events).in_force(cmd.tested_at)
    await streams.append(coi_stream(coi), version, chain.record_qc(cmd, acting, programme, limits),
                         occurred_at=cmd.tested_at, subject_id=chain.subject_id)


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def request_exceptional_release(cmd: RequestExceptionalRelease, streams: Streams,
                                      principal: ActingPrincipal | None, organisations: Organisations) -> None:
    await decide_on_chain(cmd.coi_id, cmd.org_id, REQUESTERS, cmd.requested_at, streams, principal, organisations,
                          lambda chain, acting: chain.request_exceptional_release(cmd, acting))


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_oos_risk_assessment(cmd: RecordOosRiskAssessment, streams: Streams,
                                     principal: ActingPrincipal | None, organisations: Organisations) -> None:
    await decide_on_chain(cmd.coi_id, cmd.org_id, QUALIFIED, cmd.assessed_at, streams, principal, organisations,
                          lambda chain, acting: chain.assess_risk(cmd, acting, uuid.uuid4()))


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_sponsor_notified(cmd: RecordSponsorNotified, streams: Streams,
                                  principal: ActingPrincipal | None, organisations: Organisations) -> None:
    await decide_on_chain(cmd.coi_id, cmd.org_id, QUALIFIED, cmd.notified_at, streams, principal, organisations,
                          lambda chain, acting: chain.sponsor_notified(cmd, acting))


@reads(lambda cmd: [coi_stream(isbt128.coi_of_unit(cmd.unit_id))])
async def record_qa_disposition(cmd: RecordQaDisposition, streams: Streams, principal: ActingPrincipal | None,
                                organisations: Organisations) -> None:
    await decide_on_chain(isbt128.coi_of_unit(cmd.unit_id), cmd.org_id, DISPOSERS, cmd.decided_at, streams, principal,
                          organisations, lambda chain, acting: chain.dispose(cmd, acting))


async def record_readings(unit_ids: list[str], logger_id: str, org_id: str, location: str,
                          readings: list[TemperatureReading], streams: Streams, principal: ActingPrincipal | None,
                          organisations: Organisations) -> list:
    """A logger's readings for units (of one or several COIs: a shipment), and the excursions
    they show; called over HTTP (entrypoints/http.py), in one transaction. Returns the events."""
    acting = await acting_for(principal, org_id, organisations, READERS)
    by_coi: dict[str, list[str]] = {}
    for unit_id in dict.fromkeys(unit_ids):
        by_coi.setdefault(isbt128.coi_of_unit(unit_id), []).append(unit_id)
    recorded = []
    for coi, units in by_coi.items():
        chain, version = await load_chain(streams, coi)
        new = chain.record_readings(units, logger_id, location, readings, acting)
        await streams.append(coi_stream(coi), version, new, occurred_at=readings[-1].at, subject_id=chain.subject_id)
        recorded += new
    return recorded


@reads(lambda cmd: [slot_stream(cmd.org_id, cmd.kind, cmd.on)])
async def set_slot_capacity(cmd: SetSlotCapacity, streams: Streams, principal: ActingPrincipal | None,
                            organisations: Organisations) -> None:
    stream = slot_stream(cmd.org_id, cmd.kind, cmd.on)
    events, version = await streams.load(stream)
    day = rebuild(SlotDay(cmd.org_id, cmd.kind, cmd.on), events)
    acting = await acting_for(principal, cmd.org_id, organisations, PLANNERS[cmd.kind])
    await streams.append(stream, version, day.set_capacity(cmd, acting), occurred_at=start_of_day(cmd.on))


@reads(lambda cmd: [slot_stream(cmd.slot_org_id, cmd.kind, cmd.on)])
async def book_slot(cmd: BookSlot, streams: Streams, organisations: Organisations, enrolments: Enrolments) -> None:
    if await enrolments.centre_of(cmd.subject_id) is None:
        raise SubjectNotEnrolled(f"subject {cmd.subject_id} is not enrolled in any programme")
    stream = slot_stream(cmd.slot_org_id, cmd.kind, cmd.on)
    events, version = await streams.load(stream)
    day = rebuild(SlotDay(cmd.slot_org_id, cmd.kind, cmd.on), events)
    await streams.append(stream, version, day.book(cmd, await organisations.kind_of(cmd.slot_org_id)),
                         occurred_at=start_of_day(cmd.on), subject_id=cmd.subject_id)


@reads(lambda cmd: [slot_stream(cmd.slot_org_id, cmd.kind, cmd.on)])
async def cancel_slot_booking(cmd: CancelSlotBooking, streams: Streams) -> None:
    stream = slot_stream(cmd.slot_org_id, cmd.kind, cmd.on)
    events, version = await streams.load(stream)
    day = rebuild(SlotDay(cmd.slot_org_id, cmd.kind, cmd.on), events)
    await streams.append(stream, version, day.cancel(cmd), occurred_at=start_of_day(cmd.on), subject_id=cmd.subject_id)


async def on_product_infused(event: ProductInfused, env: EventEnvelope, streams: Streams) -> None:
    """A bag infused (infusion's record): its custody ends in manufacturing too."""
    if event.unit_id is None:
        return  # a product recorded before units: infused by its COI alone
    coi = isbt128.coi_of_unit(event.unit_id)
    chain, version = await load_chain(streams, coi)
    new = chain.infused(event.unit_id, event.subject_id, event.infused_at, env.event_id)
    if new:
        await streams.append(coi_stream(coi), version, new, occurred_at=event.infused_at, subject_id=event.subject_id)


async def on_subjects_enrolled(events: list[SubjectEnrolled], enrolments: Enrolments) -> None:
    await enrolments.add_many([Enrolment(e.subject_id, e.programme_id, e.centre_id, e.enrolled_on) for e in events])


async def on_patients_registered(events: list[PatientRegistered], persons: Persons) -> None:
    """The people registered in the network, whom a donor-derived collection may name as donor."""
    await persons.add_many([Person(e.subject_id, e.centre_id) for e in events])
