"""Manufacturing handlers: chain of identity from collection to release."""

from __future__ import annotations

from datetime import datetime

from contracts import isbt128
from contracts.commands import RecordApheresisCollection, RecordCustodyStep, RecordProductRelease, RegisterProductUnits
from contracts.errors import Unauthenticated
from contracts.events import SubjectEnrolled
from services.kernel.acting import ActingPrincipal, roles_for
from services.kernel.aggregate import rebuild
from services.kernel.streams import Streams, reads
from services.manufacturing.application.ports import Enrolment, Enrolments, Organisations
from services.manufacturing.domain.custody import BY_STEP, Acting, RoleNotPermitted
from services.manufacturing.domain.model import LABELLERS, ChainOfIdentity, coi_stream


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_collection(cmd: RecordApheresisCollection, streams: Streams, enrolments: Enrolments) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    new = chain.collect(cmd, await enrolments.centre_of(cmd.subject_id))
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
async def record_release(cmd: RecordProductRelease, streams: Streams) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    await streams.append(coi_stream(cmd.coi_id), version, chain.release(cmd), occurred_at=cmd.released_at,
                         subject_id=cmd.subject_id)


async def _acting(principal: ActingPrincipal | None, org_id: str, organisations: Organisations,
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


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def register_units(cmd: RegisterProductUnits, streams: Streams, principal: ActingPrincipal | None,
                         organisations: Organisations) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    acting = await _acting(principal, cmd.org_id, organisations, LABELLERS)
    await streams.append(coi_stream(cmd.coi_id), version, chain.register_units(cmd, acting),
                         occurred_at=cmd.registered_at, subject_id=chain.subject_id)


@reads(lambda cmd: [coi_stream(isbt128.coi_of_unit(cmd.unit_id))])
async def record_custody_step(cmd: RecordCustodyStep, streams: Streams, principal: ActingPrincipal | None,
                              organisations: Organisations) -> None:
    coi = isbt128.coi_of_unit(cmd.unit_id)
    events, version = await streams.load(coi_stream(coi))
    chain = rebuild(ChainOfIdentity(coi), events)
    acting = await _acting(principal, cmd.org_id, organisations, BY_STEP[cmd.step].roles)
    destination_kind = (await organisations.kind_of(cmd.destination_org_id)
                        if cmd.destination_org_id is not None else None)
    await streams.append(coi_stream(coi), version, chain.custody_step(cmd, acting, destination_kind),
                         occurred_at=cmd.at, subject_id=chain.subject_id)


async def on_subjects_enrolled(events: list[SubjectEnrolled], enrolments: Enrolments) -> None:
    await enrolments.add_many([Enrolment(e.subject_id, e.programme_id, e.centre_id, e.enrolled_on) for e in events])
