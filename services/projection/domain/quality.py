"""What the subject view knows of each unit's quality and release, and of the sponsor's
notifications (issue 9 item 4; services/manufacturing/domain/release.py decides them).

A unit's quality-control results (`manufacturing.QcResultsRecorded`), its certification by
the qualified person's signature (`manufacturing.ReleaseCertified`) and the steps of an
exceptional release (EU GMP Part IV 11.5: request, risk assessment, acceptance) arrive from
one topic but, in a rebuild, folded with the others in any order; each is kept as a fact
and every choice between two facts of one kind is made by a total order (time first), so
the same events give the same record whatever their arrival:

- of two QC results of a unit, the later test stands;
- a certification carries the limits of use the release was certified with, which stand
  over those of the QC results whichever came first; of two certifications, the first;
- the exceptional release is at its latest step (a new request restarts it, as it does in
  manufacturing's chain of identity);
- a sponsor notification raised for a COI is open until a notification of that COI at or
  after it (`SponsorNotified` closes the COI's open task).

Pure: functions of records and events, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from contracts import events as ev
from services.kernel.values import evolve

# The steps of an exceptional release in the order they are taken: of two at one instant,
# the later step is where it is.
EXCEPTIONAL_STEPS = ("requested", "assessed", "accepted")


def _at(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _key(*values: object) -> tuple[tuple[bool, object], ...]:
    """A total order over values that may be None (None first)."""
    return tuple((v is not None, v) for v in values)


@dataclass(frozen=True)
class UnitQuality:
    """One unit's quality-control results and release, as far as they are known."""

    unit_id: str
    tested_at: str | None = None  # UTC: its QC results
    specification_version: int | None = None  # the specification they were judged by
    within_specification: bool | None = None  # None: no results yet
    failed: tuple[str, ...] = ()  # the attributes out of specification
    expires_at: str | None = None  # UTC: the end of its shelf life
    use_within_minutes: int | None = None  # from thawing or preparation to infusion
    certified_at: str | None = None  # UTC: the qualified person's signature released it
    certified_out_of_specification: bool = False  # released on the exceptional-release path
    exceptional_release: str | None = None  # its latest step, one of EXCEPTIONAL_STEPS
    exceptional_release_at: str | None = None  # UTC

    @property
    def out_of_specification(self) -> bool:
        return self.within_specification is False or self.certified_out_of_specification

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "failed": list(self.failed)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "UnitQuality":
        return cls(**{**d, "failed": tuple(d.get("failed", ()))})


def tested(q: UnitQuality, event: ev.QcResultsRecorded) -> UnitQuality:
    """`q` with the QC results of `event`, if they are the unit's latest."""
    at, failed = _at(event.tested_at), tuple(event.failed)
    if q.tested_at is not None and _key(at, event.specification_version, event.within_specification, failed) \
            <= _key(q.tested_at, q.specification_version, q.within_specification, q.failed):
        return q
    changes: dict[str, Any] = {"tested_at": at, "specification_version": event.specification_version,
                               "within_specification": event.within_specification, "failed": failed}
    if q.certified_at is None:  # the certification's limits stand over the results'
        changes |= {"expires_at": event.expires_at and _at(event.expires_at),
                    "use_within_minutes": event.use_within_minutes}
    return evolve(q, **changes)


def certified(q: UnitQuality, unit: ev.CertifiedUnit, signed_at: datetime) -> UnitQuality:
    """`q` released by the certification signed at `signed_at`, if it is the unit's first."""
    at, expires = _at(signed_at), unit.expires_at and _at(unit.expires_at)
    if q.certified_at is not None and _key(at, unit.out_of_specification, expires, unit.use_within_minutes) \
            >= _key(q.certified_at, q.certified_out_of_specification, q.expires_at, q.use_within_minutes):
        return q
    return evolve(q, certified_at=at, certified_out_of_specification=unit.out_of_specification,
                  expires_at=expires, use_within_minutes=unit.use_within_minutes)


def exceptional(q: UnitQuality, step: str, at: datetime) -> UnitQuality:
    """`q` with an exceptional-release step, if it is the latest."""
    moment = _at(at)
    if q.exceptional_release is not None and (moment, EXCEPTIONAL_STEPS.index(step)) <= (
            q.exceptional_release_at, EXCEPTIONAL_STEPS.index(q.exceptional_release)):
        return q
    return evolve(q, exceptional_release=step, exceptional_release_at=moment)


@dataclass(frozen=True)
class SponsorNotification:
    """A task raised by an exceptional release: tell the sponsor (EU GMP Part IV 11.5)."""

    coi_id: str
    raised_at: str  # UTC
    facility_id: str
    unit_ids: tuple[str, ...]
    failed: tuple[str, ...] = ()
    programme_id: str | None = None

    @classmethod
    def of(cls, event: ev.SponsorNotificationRaised) -> "SponsorNotification":
        return cls(event.coi_id, _at(event.raised_at), event.facility_id, tuple(event.unit_ids),
                   tuple(event.failed), event.programme_id)

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "unit_ids": list(self.unit_ids), "failed": list(self.failed)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "SponsorNotification":
        return cls(d["coi_id"], d["raised_at"], d["facility_id"], tuple(d["unit_ids"]), tuple(d.get("failed", ())),
                   d.get("programme_id"))


def closing(task: SponsorNotification, notified: tuple[tuple[str, str, str], ...]) -> tuple[str, str] | None:
    """The notification that closed `task` ((notified_at, reference): the first of its COI at
    or after it was raised), or None while it is open."""
    return min(((at, ref) for coi, at, ref in notified if coi == task.coi_id and at >= task.raised_at), default=None)
