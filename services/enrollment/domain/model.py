"""Enrollment aggregates: centres and subjects. Pure: decide from past events, return new ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.base import EventPayload
from contracts.commands import EnrollSubject, EraseIdentity, RegisterCentre
from contracts.errors import CommandRefused
from contracts.events import CentreRegistered, IdentityErased, PatientRegistered, SubjectEnrolled
from services.kernel.aggregate import Aggregate

# The programmes our first users run (../shared/seeds). Later issues make this a
# registered, versioned catalogue with each programme's eligibility criteria.
PROGRAMMES: dict[str, str] = {
    "CARCIK-CD19-P2": "Phase II CAR-CIK CD19, residual-disease-driven second infusion, r/r BCP-ALL (seed 000)",
    "NK-PHALL-P1": "Phase I autologous expanded NK cells, Ph+ ALL in CHR with MRD (seed 001)",
    "CART-BALL-RR": "Centre CAR-T programme, relapsed/refractory B-ALL (seed 002)",
    "CART-CD19-AUTOIMMUNE": "CD19 CAR-T in refractory autoimmune disease (seed 003)",
}


class CentreAlreadyRegistered(CommandRefused):
    code = "CENTRE_ALREADY_REGISTERED"


class UnknownCentre(CommandRefused):
    code = "UNKNOWN_CENTRE"


class UnknownSubject(CommandRefused):
    code = "UNKNOWN_SUBJECT"


class UnknownProgramme(CommandRefused):
    code = "UNKNOWN_PROGRAMME"


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

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, CentreRegistered):
            self.registered = True

    def register(self, cmd: RegisterCentre) -> list[EventPayload]:
        if self.registered:
            raise CentreAlreadyRegistered(f"centre {cmd.centre_id} is already registered")
        return [CentreRegistered(centre_id=cmd.centre_id, name=cmd.name, country=cmd.country)]


@dataclass
class Subject(Aggregate):
    subject_id: str
    centre_id: str | None = None
    programmes: set[str] = field(default_factory=set)
    identity_erased: bool = False

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, PatientRegistered):
            self.centre_id = event.centre_id
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

    def enroll(self, cmd: EnrollSubject, centre: Centre) -> list[EventPayload]:
        self.check_can_enroll(cmd, centre)
        return [SubjectEnrolled(subject_id=cmd.subject_id, programme_id=cmd.programme_id,
                                centre_id=cmd.centre_id, enrolled_on=cmd.enrolled_on)]

    def check_can_enroll(self, cmd: EnrollSubject, centre: Centre) -> None:
        if self.centre_id is None:
            raise UnknownSubject(f"subject {cmd.subject_id} is not registered")
        if not centre.registered:
            raise UnknownCentre(f"centre {cmd.centre_id} is not registered")
        if self.centre_id != cmd.centre_id:
            raise WrongCentre(f"subject {cmd.subject_id} is registered at {self.centre_id}, not {cmd.centre_id}")
        if cmd.programme_id not in PROGRAMMES:
            raise UnknownProgramme(f"programme {cmd.programme_id} is not in the catalogue: {sorted(PROGRAMMES)}")
        if cmd.programme_id in self.programmes:
            raise AlreadyEnrolled(f"subject {cmd.subject_id} is already enrolled in {cmd.programme_id}")
