"""Enrollment command handlers: load, decide, append."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from contracts.commands import (
    EnrollSubject,
    EraseIdentity,
    PublishProgramme,
    RegisterCentre,
    RegisterPatient,
    ScreenCandidate,
)
from services.clinical.eligibility import age_in_completed_years
from contracts.events import DltEvaluated, DoseLevelAssigned, EscalationDecided, PatientRegistered
from services.enrollment.application.ports import Identities
from services.enrollment.domain.model import (
    Centre,
    IdentityConflict,
    Subject,
    UnknownCentre,
    age_at_enrolment,
    centre_stream,
    check_registration,
    check_same_person,
    subject_stream,
)
from services.enrollment.domain.escalation import Escalation, design_of, escalation_stream
from services.enrollment.domain.programmes import InvalidScreening, Programme, programme_stream, rules_of
from services.kernel.acting import ActingPrincipal, imports_records
from services.kernel.aggregate import rebuild
from services.kernel.clinical_dates import start_of_day
from services.kernel.streams import Streams, reads


def new_subject_id() -> str:
    # Random, so the id says nothing about the person; the link stays in enrollment's schema.
    return "S-" + secrets.token_hex(6).upper()


@reads(lambda cmd: [centre_stream(cmd.centre_id)])
async def register_centre(cmd: RegisterCentre, streams: Streams) -> None:
    events, version = await streams.load(centre_stream(cmd.centre_id))
    centre = rebuild(Centre(cmd.centre_id), events)
    await streams.append(centre_stream(cmd.centre_id), version, centre.register(cmd),
                         occurred_at=datetime.now(timezone.utc), centre_id=cmd.centre_id)


async def register_patient(cmd: RegisterPatient, streams: Streams, identities: Identities,
                           now: datetime | None = None) -> tuple[str, bool]:
    """Returns (subject_id, created). Registering the same person (record number, names and
    date of birth) twice at one centre returns the subject already issued rather than a
    second pseudonym for one person; the same record number with another name or date of
    birth is refused, an identity conflict (issue 12 item 5), as is a date of birth in the
    future (`now`: the service's clock)."""
    check_registration(cmd, now or datetime.now(timezone.utc))
    existing = await identities.find(cmd.centre_id, cmd.hospital_record_number)
    if existing:
        kept = await identities.get(existing)
        if kept is None:  # found by its number, yet nothing to compare with: never matched blind
            raise IdentityConflict(f"the hospital record number is already registered at {cmd.centre_id} for "
                                   f"subject {existing}, whose identifiers cannot be read to compare",
                                   subject_id=existing)
        check_same_person(cmd, existing, kept.family_name, kept.given_name, kept.date_of_birth)
        return existing, False
    events, _ = await streams.load(centre_stream(cmd.centre_id))
    centre = rebuild(Centre(cmd.centre_id), events)
    if not centre.registered:
        raise UnknownCentre(f"centre {cmd.centre_id} is not registered")
    subject_id = new_subject_id()
    await identities.add(subject_id, cmd.centre_id, cmd.hospital_record_number, cmd.family_name,
                         cmd.given_name, cmd.date_of_birth)
    await streams.append(subject_stream(subject_id), 0,
                         [PatientRegistered(subject_id=subject_id, centre_id=cmd.centre_id,
                                            time_zone=centre.time_zone)],
                         occurred_at=start_of_day(cmd.registered_on), subject_id=subject_id, centre_id=cmd.centre_id)
    return subject_id, True


@reads(lambda cmd: [programme_stream(cmd.definition.programme_id)])
async def publish_programme(cmd: PublishProgramme, streams: Streams) -> None:
    """The definition's next version, in force from now (the service's clock: the log says
    which version was in force when)."""
    stream = programme_stream(cmd.definition.programme_id)
    events, version = await streams.load(stream)
    now = datetime.now(timezone.utc)
    await streams.append(stream, version, rebuild(Programme(cmd.definition.programme_id), events).publish(cmd, now),
                         occurred_at=now)


@reads(lambda cmd: [subject_stream(cmd.subject_id), centre_stream(cmd.centre_id), programme_stream(cmd.programme_id),
                    escalation_stream(cmd.programme_id)])
async def enroll_subject(cmd: EnrollSubject, streams: Streams, principal: ActingPrincipal | None,
                         identities: Identities) -> None:
    """In a programme with a dose escalation, the design assigns the subject's level in the
    same transaction (domain/escalation.py): the programme's escalation stream is the one
    place two enrolments contend for a cohort's last place."""
    subject_events, version = await streams.load(subject_stream(cmd.subject_id))
    centre_events, _ = await streams.load(centre_stream(cmd.centre_id))
    programme_events, _ = await streams.load(programme_stream(cmd.programme_id))
    subject = rebuild(Subject(cmd.subject_id), subject_events)
    centre, programme = rebuild(Centre(cmd.centre_id), centre_events), rebuild(Programme(cmd.programme_id),
                                                                                   programme_events)
    imported = imports_records(principal)
    subject.check_can_enroll(cmd, centre, programme)
    subject.check_screened(cmd, programme, imported)
    definition = programme.current.definition  # type: ignore[union-attr]
    design = design_of(programme.current, rules_of(definition).escalation) if definition.escalation else None  # type: ignore[arg-type]
    assigned = None
    if design is not None:
        escalation_events, escalation_version = await streams.load(escalation_stream(cmd.programme_id))
        assigned = rebuild(Escalation(cmd.programme_id), escalation_events).assign(cmd, design)
        await streams.append(escalation_stream(cmd.programme_id), escalation_version, [assigned],
                             occurred_at=start_of_day(cmd.enrolled_on), subject_id=cmd.subject_id,
                             centre_id=cmd.centre_id)
    identity = await identities.get(cmd.subject_id)
    age = age_at_enrolment(identity.date_of_birth, cmd.enrolled_on) if identity is not None else None
    new = subject.enroll(cmd, centre, programme, imported, assigned, design.dlt_window_days if design else None, age)
    await streams.append(subject_stream(cmd.subject_id), version, new, occurred_at=start_of_day(cmd.enrolled_on),
                         subject_id=cmd.subject_id, centre_id=cmd.centre_id)


async def on_dlt_evaluated(event: DltEvaluated, streams: Streams) -> None:
    """A subject's DLT evaluation is a new decision of its programme's design, recorded with
    the counts it was taken on; the MTD and the recommended level when the design stops."""
    escalation_events, version = await streams.load(escalation_stream(event.programme_id))
    escalation = rebuild(Escalation(event.programme_id), escalation_events)
    assigned = next((e for e in escalation_events if isinstance(e, DoseLevelAssigned)
                     and e.subject_id == event.subject_id), None)
    if assigned is None:
        return  # not assigned by this escalation (an import): nothing for the design
    programme_events, _ = await streams.load(programme_stream(event.programme_id))
    published = next(e for e in rebuild(Programme(event.programme_id), programme_events).versions
                     if e.version == assigned.programme_version)
    design = design_of(published, rules_of(published.definition).escalation)
    new = escalation.evaluate(event, design)  # type: ignore[arg-type]
    at, stream = start_of_day(event.evaluated_on), escalation_stream(event.programme_id)
    for i, decided in enumerate(new):  # the decision is the subject's; a declaration is the programme's
        await streams.append(stream, version + i, [decided], occurred_at=at,
                             subject_id=event.subject_id if isinstance(decided, EscalationDecided) else None)


async def subject_centre(subject_id: str, streams: Streams) -> str | None:
    """The centre a subject is registered at (whose data it is), or None if it is not."""
    events, _ = await streams.load(subject_stream(subject_id))
    return rebuild(Subject(subject_id), events).centre_id


@reads(lambda cmd: [subject_stream(cmd.subject_id)])
async def erase_identity(cmd: EraseIdentity, streams: Streams, identities: Identities) -> datetime:
    """Delete the person's identifiers and key material and record the erasure, in one
    transaction; no earlier event is touched. Returns when it was erased."""
    events, version = await streams.load(subject_stream(cmd.subject_id))
    subject = rebuild(Subject(cmd.subject_id), events)
    erased_at = datetime.now(timezone.utc)
    new = subject.erase_identity(cmd, erased_at)
    await identities.erase(cmd.subject_id)
    await streams.append(subject_stream(cmd.subject_id), version, new, occurred_at=erased_at,
                         subject_id=cmd.subject_id, centre_id=subject.centre_id)
    return erased_at


async def screen_candidate(cmd: ScreenCandidate, streams: Streams, identities: Identities) -> list:
    """A screening over HTTP (entrypoints/http.py): the age on the day from the date of birth
    kept here (never published), the facts judged by the programme's criteria; the event."""
    subject_events, version = await streams.load(subject_stream(cmd.subject_id))
    programme_events, _ = await streams.load(programme_stream(cmd.programme_id))
    identity = await identities.get(cmd.subject_id)
    age = None
    if identity is not None:
        if identity.date_of_birth > cmd.screened_on:
            raise InvalidScreening(f"screened on {cmd.screened_on.isoformat()}, before the date of birth")
        age = age_in_completed_years(identity.date_of_birth, cmd.screened_on)
    new = rebuild(Subject(cmd.subject_id), subject_events).screen(
        cmd, rebuild(Programme(cmd.programme_id), programme_events), age)
    await streams.append(subject_stream(cmd.subject_id), version, new, occurred_at=start_of_day(cmd.screened_on),
                         subject_id=cmd.subject_id, centre_id=cmd.centre_id)
    return new
