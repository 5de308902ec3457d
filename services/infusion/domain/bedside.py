"""The bedside gate (issue 9, item 5): go or no-go for one bag and one patient, at once, from
the infusion service's own view of the units (learnt from manufacturing's events), with
every reason for a no-go, never only the first.

Sources: FACT-JACIE International Standards (8th ed.) D7 and D8: before administration, two
qualified persons verify the identity of the recipient and of the product, the product's
release and its integrity; 21 CFR 1271.290 (tracking to the recipient); the product
labelling of ISBT 128 (the bag's unit identifier, docs/identifiers.md).

The gate judges at a given time (the check's, or the infusion's), never at the clock's, so the
same facts always give the same answer: a unit expires at the end of the shelf life its
specification gives, and a thawed (or prepared) bag once its thaw-to-infusion limit has run
(EU GMP Part IV 11.5 and the product labelling; FACT-JACIE 8th ed. D7, D8: the product's
integrity and expiry are verified before administration).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.custody import CustodyState
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import BedsideCheckRecorded

S = CustodyState


@dataclass(frozen=True)
class UnitView:
    """A unit as infusion knows it: whose it is, where, in which state, and its limits of use."""

    unit_id: str
    coi_id: str
    subject_id: str
    state: CustodyState
    holder: str
    out_of_specification: bool = False
    quarantined: bool = False  # a temperature excursion awaits quality assurance
    # its limits of use, from its QC results or its certified release (None: none given)
    expires_at: datetime | None = None  # the end of its shelf life
    use_within_minutes: int | None = None  # from its preparation (thaw) to the end of its infusion
    prepared_at: datetime | None = None  # when it was thawed or prepared (custody step `prepared`)
    # released although out of specification, on the exceptional-release path (EU GMP Part IV
    # 11.5): it may be infused, flagged; an out-of-specification unit not so released may not
    released_out_of_specification: bool = False


@dataclass(frozen=True)
class NoGo:
    code: str
    reason: str


# States in which a unit has left the path to a patient for good.
_GONE = {S.DISCARDED: "UNIT_DISCARDED", S.RETURNED: "UNIT_RETURNED", S.IN_MANUFACTURING: "NOT_A_PRODUCT_UNIT"}
_RELEASED = {S.RELEASED, S.IN_TRANSIT, S.RECEIVED, S.STORED, S.PREPARED}


def judge(unit: UnitView | None, *, unit_id: str, subject_id: str, subject_centre: str | None,
          infused: bool, at: datetime) -> list[NoGo]:
    """Every reason not to infuse `unit` into `subject_id` at `at`; none is a go."""
    if unit is None:
        return [NoGo("UNKNOWN_UNIT", f"unit {unit_id} is not known to infusion: never labelled and released")]
    reasons = []
    if unit.subject_id != subject_id:
        reasons.append(NoGo("WRONG_PATIENT", f"unit {unit_id} is subject {unit.subject_id}'s; the wristband is "
                                             f"{subject_id}'s"))
    if infused:
        reasons.append(NoGo("ALREADY_INFUSED", f"unit {unit_id} was infused already"))
    if unit.state in _GONE:
        reasons.append(NoGo(_GONE[unit.state], f"unit {unit_id} is {unit.state}"))
    elif unit.state not in _RELEASED:
        reasons.append(NoGo("NOT_RELEASED", f"unit {unit_id} is {unit.state}: not released by the qualified person"))
    elif unit.state is not S.PREPARED:
        reasons.append(NoGo("NOT_PREPARED", f"unit {unit_id} is {unit.state}: it is infused once thawed or "
                                            "prepared at the centre"))
    if unit.out_of_specification and not unit.released_out_of_specification:
        reasons.append(NoGo("OUT_OF_SPECIFICATION", f"unit {unit_id} is out of specification"))
    reasons.extend(_expired(unit, at))
    if unit.quarantined:
        reasons.append(NoGo("QUARANTINED", f"unit {unit_id} is quarantined after a temperature excursion, "
                                           "awaiting quality assurance's disposition"))
    if subject_centre is not None and unit.holder != subject_centre and unit.state in _RELEASED:
        reasons.append(NoGo("NOT_AT_THE_CENTRE", f"unit {unit_id} is held by {unit.holder}, not by the patient's "
                                                 f"centre {subject_centre}"))
    return reasons


def _expired(unit: UnitView, at: datetime) -> list[NoGo]:
    """The limits of use a unit is past at `at`, one reason each; a unit used exactly at its
    limit is still within it. Its shelf life ends at `expires_at`; once thawed or prepared it
    is infused within `use_within_minutes` (its specification's limits, on its label: EU GMP
    Part IV 11.5, the product labelling; FACT-JACIE 8th ed. D7, D8: verified at the bedside)."""
    reasons = []
    if unit.expires_at is not None and at > unit.expires_at:
        reasons.append(NoGo("EXPIRED", f"unit {unit.unit_id}'s shelf life ended at {unit.expires_at.isoformat()}"))
    if unit.prepared_at is not None and unit.use_within_minutes is not None:
        limit = unit.prepared_at + timedelta(minutes=unit.use_within_minutes)
        if at > limit:
            reasons.append(NoGo("EXPIRED", f"unit {unit.unit_id} was prepared at {unit.prepared_at.isoformat()}: "
                                           f"it is infused within {unit.use_within_minutes} minutes, by "
                                           f"{limit.isoformat()}"))
    return reasons


def flagged(unit: UnitView | None) -> bool:
    """A go for this unit says it is out of specification, released on the exceptional-release
    path (EU GMP Part IV 11.5): the flag travels with the bag to its infusion."""
    return unit is not None and unit.released_out_of_specification


class BedsideCheckRequired(CommandRefused):
    code = "BEDSIDE_CHECK_REQUIRED"


class NoGoAtTheBedside(CommandRefused):
    code = "BEDSIDE_NO_GO"


def check_infusion(*, unit_id: str, coi_id: str, subject_id: str, infused_at: datetime, check_id: object,
                   checks: list[BedsideCheckRecorded]) -> BedsideCheckRecorded:
    """The bedside check an infusion of `unit_id` rests on: the one it names, which must be
    the unit's latest, a go, for this patient, made before the infusion."""
    if not unit_id.startswith(coi_id):
        raise ChainOfIdentityMismatch(f"unit {unit_id} is not a unit of COI {coi_id}")
    if check_id is None:
        raise BedsideCheckRequired(f"unit {unit_id} is infused only after a bedside check said go "
                                   "(POST /bedside-checks); name it as bedside_check_id")
    named = next((c for c in checks if c.check_id == check_id), None)
    if named is None:
        raise BedsideCheckRequired(f"bedside check {check_id} is not a check of unit {unit_id}")
    if named is not checks[-1]:
        raise NoGoAtTheBedside(f"bedside check {check_id} was superseded by a later check of unit {unit_id}")
    if not named.go:
        raise NoGoAtTheBedside(f"bedside check {check_id} said no-go: "
                               + "; ".join(f"{r.code}: {r.reason}" for r in named.reasons))
    if named.subject_id != subject_id:
        raise ChainOfIdentityMismatch(f"bedside check {check_id} was for subject {named.subject_id}, "
                                      f"not {subject_id}")
    if infused_at < named.checked_at:
        raise BedsideCheckRequired(f"the infusion at {infused_at.isoformat()} precedes the bedside check at "
                                   f"{named.checked_at.isoformat()}")
    return named


def bedside_stream(unit_id: str) -> str:
    return f"bedside-{unit_id}"
