"""Enrollment aggregates: centres and subjects. Pure: decide from past events, return new ones."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from contracts.base import EventPayload
from contracts.commands import EnrollSubject, EraseIdentity, RegisterCentre, RegisterPatient, ScreenCandidate
from contracts.errors import CommandRefused
from contracts.events import (
    CandidateScreened,
    CentreRegistered,
    DoseLevelAssigned,
    EligibilityFailure,
    IdentityErased,
    PatientRegistered,
    SubjectEnrolled,
)
from services.enrollment.domain.programmes import Programme, UnknownProgramme, screen
from services.clinical.eligibility import age_in_completed_years
from services.kernel.aggregate import Aggregate

# The programmes are published definitions (domain/programmes.py, issue 10), one stream each.


class CentreAlreadyRegistered(CommandRefused):
    code = "CENTRE_ALREADY_REGISTERED"


class UnknownCentre(CommandRefused):
    code = "UNKNOWN_CENTRE"


class UnknownSubject(CommandRefused):
    code = "UNKNOWN_SUBJECT"


class AlreadyEnrolled(CommandRefused):
    code = "ALREADY_ENROLLED"


class WrongCentre(CommandRefused):
    code = "SUBJECT_REGISTERED_AT_ANOTHER_CENTRE"


class IdentityAlreadyErased(CommandRefused):
    code = "IDENTITY_ALREADY_ERASED"


def centre_stream(centre_id: str) -> str:
    return f"centre-{centre_id}"


def subject_stream(subject_id: str) -> str:
    return f"subject-{subject_id}"


@dataclass
class Centre(Aggregate):
    centre_id: str
    registered: bool = False
    time_zone: str | None = None  # IANA; None: the offset recorded with each time stands for it

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, CentreRegistered):
            self.registered, self.time_zone = True, event.time_zone

    def register(self, cmd: RegisterCentre) -> list[EventPayload]:
        if self.registered:
            raise CentreAlreadyRegistered(f"centre {cmd.centre_id} is already registered")
        return [CentreRegistered(centre_id=cmd.centre_id, name=cmd.name, country=cmd.country,
                                 time_zone=cmd.time_zone)]


class EnrolledBeforeBirth(CommandRefused):
    code = "ENROLLED_BEFORE_BIRTH"


class DateOfBirthInFuture(CommandRefused):
    code = "DATE_OF_BIRTH_IN_FUTURE"


class IdentityConflict(CommandRefused):
    """A record number the centre already registered, sent with another name or date of
    birth: two people under one number, or a typing error in either. Refused, never matched
    to the subject kept (issue 12 item 5); someone must look at the record."""

    code = "IDENTITY_CONFLICT"

    def __init__(self, reason: str, *, subject_id: str) -> None:
        super().__init__(reason)
        self.subject_id = subject_id  # the subject the record number is kept for


# The date of birth, the names and the record number are direct identifiers: no refusal
# repeats them (a refusal is recorded and logged, docs/design.md "Identity"), it says which
# one is at fault and the values that are not identifiers.

# The furthest ahead any place's calendar is of UTC (UTC+14, Kiribati's Line Islands): a
# date of birth up to that day may be today somewhere.
_AHEAD_OF_UTC = timedelta(hours=14)


def latest_today(now: datetime) -> date:
    """The latest calendar date it is anywhere at `now`."""
    return (now.astimezone(timezone.utc) + _AHEAD_OF_UTC).date()


def check_registration(cmd: RegisterPatient, now: datetime) -> None:
    """A registration's date of birth is plausible: the person is born by today wherever the
    centre is. (A registration dated before the birth is not refused here: the enrolment is,
    `ENROLLED_BEFORE_BIRTH`.)"""
    today = latest_today(now)
    if cmd.date_of_birth > today:
        raise DateOfBirthInFuture(f"the date of birth is after today ({today.isoformat()} at the latest, anywhere):"
                                  " a date of birth cannot be in the future (the date itself is not repeated here)")


def _name_key(name: str) -> str:
    """A name as registrations compare it: Unicode NFC, case folded, runs of spaces as one."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_same_person(cmd: RegisterPatient, subject_id: str, family_name: str, given_name: str,
                      date_of_birth: date) -> None:
    """The record number `cmd` names is already kept at its centre for `subject_id`, with
    these identifiers: the same person only if the names (letter case and spacing aside) and
    the date of birth are the same; otherwise an identity conflict."""
    differing = [what for what, same in (
        ("family name", _name_key(cmd.family_name) == _name_key(family_name)),
        ("given name", _name_key(cmd.given_name) == _name_key(given_name)),
        ("date of birth", cmd.date_of_birth == date_of_birth)) if not same]
    if differing:
        raise IdentityConflict(
            f"the hospital record number is already registered at {cmd.centre_id} for subject {subject_id} with "
            f"another {_listed(differing)}: an identity conflict, refused rather than matched (the identifiers "
            "are not repeated here); check the record number and the identifiers against the hospital record",
            subject_id=subject_id)


# HIPAA Safe Harbor (45 CFR 164.514(b)(2)(i)(C)): ages over 89 are aggregated into one
# category, "90 or older", wherever an age leaves enrollment.
AGE_CEILING = 90


def age_at_enrolment(date_of_birth: date, enrolled_on: date) -> int:
    """The age in completed years on the day of enrolment, 90 standing for 90 or older."""
    if date_of_birth > enrolled_on:
        raise EnrolledBeforeBirth(f"enrolled on {enrolled_on.isoformat()}, before the date of birth")
    return min(age_in_completed_years(date_of_birth, enrolled_on), AGE_CEILING)


class NotScreened(CommandRefused):
    code = "NOT_SCREENED"


class NotEligible(CommandRefused):
    code = "NOT_ELIGIBLE"


class ScreeningOutdated(CommandRefused):
    code = "SCREENING_OUTDATED"


@dataclass
class Subject(Aggregate):
    subject_id: str
    centre_id: str | None = None
    programmes: set[str] = field(default_factory=set)
    identity_erased: bool = False
    screenings: dict[str, CandidateScreened] = field(default_factory=dict)  # the latest, per programme

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, PatientRegistered):
            self.centre_id = event.centre_id
        elif isinstance(event, CandidateScreened):
            self.screenings[event.programme_id] = event
        elif isinstance(event, SubjectEnrolled):
            self.programmes.add(event.programme_id)
        elif isinstance(event, IdentityErased):
            self.identity_erased = True

    def erase_identity(self, cmd: EraseIdentity, erased_at: datetime) -> list[EventPayload]:
        """The pseudonym stays, with every event recorded under it; only the link to the person
        goes (docs/design.md, "Identity")."""
        self.check_can_erase_identity(cmd)
        return [IdentityErased(subject_id=cmd.subject_id, reason=cmd.reason, erased_at=erased_at)]

    def check_can_erase_identity(self, cmd: EraseIdentity) -> None:
        if self.centre_id is None:
            raise UnknownSubject(f"subject {cmd.subject_id} is not registered")
        if self.identity_erased:
            raise IdentityAlreadyErased(f"the identity of subject {cmd.subject_id} is already erased")

    def screen(self, cmd: ScreenCandidate, programme: Programme, age_years: int | None) -> list[EventPayload]:
        """Judged by the programme's current eligibility criteria (domain/programmes.py)."""
        if self.centre_id is None:
            raise UnknownSubject(f"subject {cmd.subject_id} is not registered")
        if self.centre_id != cmd.centre_id:
            raise WrongCentre(f"subject {cmd.subject_id} is registered at {self.centre_id}, not {cmd.centre_id}")
        if programme.current is None:
            raise UnknownProgramme(f"programme {cmd.programme_id} has no published definition "
                                   "(`celltrail programmes publish FILE`)")
        result = screen(programme.current.definition, cmd.facts, age_years)
        return [CandidateScreened(subject_id=cmd.subject_id, programme_id=cmd.programme_id,
                                  programme_version=programme.current.version, centre_id=cmd.centre_id,
                                  screened_on=cmd.screened_on, age_years=age_years, facts=cmd.facts,
                                  eligible=result.eligible,
                                  failures=[EligibilityFailure(criterion=f.criterion.value, reason=f.reason)
                                            for f in result.failures])]

    def enroll(self, cmd: EnrollSubject, centre: Centre, programme: Programme, imported: bool = False,
               assigned: DoseLevelAssigned | None = None, dlt_window_days: int | None = None,
               age_years: int | None = None) -> list[EventPayload]:
        """Under the programme's current version, which the subject keeps (issue 10 item 1),
        once screened eligible against it (item 2). `imported`: a record of an enrolment made
        elsewhere (the data loader), whose screening CellTrail does not hold. `assigned`: the
        dose level the programme's escalation design gave the subject (item 3), with the
        programme's DLT window."""
        self.check_can_enroll(cmd, centre, programme)
        self.check_screened(cmd, programme, imported)
        return [SubjectEnrolled(subject_id=cmd.subject_id, programme_id=cmd.programme_id,
                                centre_id=cmd.centre_id, enrolled_on=cmd.enrolled_on,
                                programme_version=programme.current.version,  # type: ignore[union-attr]
                                second_infusion=programme.current.definition.second_infusion,  # type: ignore[union-attr]
                                dosing=programme.current.definition.dosing(),  # type: ignore[union-attr]
                                dose_level=assigned.dose_level if assigned is not None else None,
                                dlt_window_days=dlt_window_days if assigned is not None else None,
                                dlt_rule=programme.current.definition.escalation.dlt_rule  # type: ignore[union-attr]
                                if assigned is not None and programme.current.definition.escalation else None,  # type: ignore[union-attr]
                                response=programme.current.definition.response,  # type: ignore[union-attr]
                                age_years=age_years)]

    def check_screened(self, cmd: EnrollSubject, programme: Programme, imported: bool) -> None:
        screening = self.screenings.get(cmd.programme_id)
        if screening is None:
            if imported:
                return
            raise NotScreened(f"subject {cmd.subject_id} was not screened for {cmd.programme_id} "
                              "(POST /screenings): a candidate is enrolled once found eligible")
        if not screening.eligible:
            raise NotEligible(f"subject {cmd.subject_id} is not eligible for {cmd.programme_id} (screened "
                              f"{screening.screened_on.isoformat()}): "
                              + "; ".join(f"{f.criterion}: {f.reason}" for f in screening.failures))
        current = programme.current.version if programme.current else None
        if screening.programme_version != current:
            raise ScreeningOutdated(f"subject {cmd.subject_id} was screened against version "
                                    f"{screening.programme_version} of {cmd.programme_id}; version {current} is "
                                    "in force now: screen again")

    def check_can_enroll(self, cmd: EnrollSubject, centre: Centre, programme: Programme) -> None:
        if self.centre_id is None:
            raise UnknownSubject(f"subject {cmd.subject_id} is not registered")
        if not centre.registered:
            raise UnknownCentre(f"centre {cmd.centre_id} is not registered")
        if self.centre_id != cmd.centre_id:
            raise WrongCentre(f"subject {cmd.subject_id} is registered at {self.centre_id}, not {cmd.centre_id}")
        if programme.current is None:
            raise UnknownProgramme(f"programme {cmd.programme_id} has no published definition "
                                   "(`celltrail programmes publish FILE`)")
        if cmd.programme_id in self.programmes:
            raise AlreadyEnrolled(f"subject {cmd.subject_id} is already enrolled in {cmd.programme_id}")
