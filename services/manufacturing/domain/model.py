"""Chain of identity: one COI id binds starting material, product and subject for life.

The COI id is printed on the apheresis bag at collection (ISBT 128 practice: assigned by
the collecting facility) and must match at every later step; a mismatch is refused, never
corrected or warned about (FACT-JACIE Immune Effector Cell standards, chain of identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.base import EventPayload
from contracts.commands import RecordApheresisCollection, RecordProductRelease
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import ApheresisCollected, CoiIssued, ProductReleased
from services.kernel.aggregate import Aggregate


class SubjectNotEnrolled(CommandRefused):
    code = "SUBJECT_NOT_ENROLLED"


class CoiAlreadyIssued(CommandRefused):
    code = "COI_ALREADY_ISSUED"


class UnknownCoi(CommandRefused):
    code = "UNKNOWN_COI"


class AlreadyReleased(CommandRefused):
    code = "PRODUCT_ALREADY_RELEASED"


class ReleaseBeforeCollection(CommandRefused):
    code = "RELEASE_BEFORE_COLLECTION"


def coi_stream(coi_id: str) -> str:
    return f"coi-{coi_id}"


@dataclass
class ChainOfIdentity(Aggregate):
    coi_id: str
    subject_id: str | None = None
    collected_at: datetime | None = None
    released: bool = False
    issued_to: str | None = None  # the subject CellTrail issued this COI for, if it did

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, CoiIssued):
            self.issued_to = event.subject_id
        elif isinstance(event, ApheresisCollected):
            self.subject_id, self.collected_at = event.subject_id, event.collected_at
        elif isinstance(event, ProductReleased):
            self.released = True

    def issue(self, subject_id: str, centre_id: str, at: datetime) -> list[EventPayload]:
        """A COI id drawn for `subject_id` (its stream must be new: two issuers drawing the
        same sequence collide on the stream's first version, and one draws again)."""
        if self.issued_to is not None or self.subject_id is not None:
            raise CoiAlreadyIssued(f"COI {self.coi_id} was already issued")
        return [CoiIssued(coi_id=self.coi_id, subject_id=subject_id, centre_id=centre_id, issued_at=at)]

    def collect(self, cmd: RecordApheresisCollection, enrolled_centre: str | None) -> list[EventPayload]:
        if self.subject_id is not None:
            raise CoiAlreadyIssued(f"COI {cmd.coi_id} was already issued to a collection")
        if self.issued_to is not None and self.issued_to != cmd.subject_id:
            raise ChainOfIdentityMismatch(
                f"COI {cmd.coi_id} was issued for subject {self.issued_to}, not {cmd.subject_id}: "
                "the bag is labelled for another patient")
        if enrolled_centre is None:
            raise SubjectNotEnrolled(f"subject {cmd.subject_id} is not enrolled in any programme")
        if enrolled_centre != cmd.centre_id:
            raise SubjectNotEnrolled(
                f"subject {cmd.subject_id} is enrolled at {enrolled_centre}, not at collecting centre {cmd.centre_id}")
        return [ApheresisCollected(coi_id=cmd.coi_id, subject_id=cmd.subject_id, centre_id=cmd.centre_id,
                                   collected_at=cmd.collected_at)]

    def release(self, cmd: RecordProductRelease) -> list[EventPayload]:
        if self.subject_id is None:
            raise UnknownCoi(f"COI {cmd.coi_id} has no recorded apheresis collection")
        if cmd.subject_id != self.subject_id:
            raise ChainOfIdentityMismatch(
                f"COI {cmd.coi_id} belongs to subject {self.subject_id}, but the release names {cmd.subject_id}")
        if self.released:
            raise AlreadyReleased(f"product for COI {cmd.coi_id} is already released")
        if self.collected_at and cmd.released_at < self.collected_at:
            raise ReleaseBeforeCollection(
                f"release at {cmd.released_at.isoformat()} precedes collection at {self.collected_at.isoformat()}")
        return [ProductReleased(**cmd.model_dump())]
