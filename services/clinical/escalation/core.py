"""What every dose-escalation design shares: per-level state, the decision, the
treatment of patients still inside their DLT window, and the sample-size cap.

Dose levels are numbered 1..K (level 1 = lowest planned dose) and every design
receives the state of ALL planned levels, so "highest planned level" is always
known.  Pure functions over frozen dataclasses; no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, check_fields

__all__ = [
    "Action",
    "Decision",
    "DoseEscalationError",
    "DoseLevelState",
    "InvalidDesignError",
    "InvalidDoseLevelStateError",
    "SampleSizeCap",
    "apply_cap",
    "resolve_pending",
    "summary",
    "validate_levels",
]


class DoseEscalationError(ClinicalInputError):
    """Base class for invalid input to the dose-escalation rules."""


class InvalidDoseLevelStateError(DoseEscalationError):
    """The per-level counts are impossible or inconsistent with the design."""


class InvalidDesignError(DoseEscalationError):
    """A design parameter (target, boundaries, cap, window...) is out of range."""


# The most patients a trial may treat, or None for no cap.
SampleSizeCap = Annotated[int, Field(ge=1)] | None
Count = Annotated[int, Field(ge=0)]


class Action(StrEnum):
    START = "start"  # nothing treated yet: treat the first cohort at level 1
    ESCALATE = "escalate"
    STAY = "stay"  # BOIN: treat the next cohort at the current level
    EXPAND = "expand"  # 3+3: 1/3 DLT (or top level 0/3): treat 3 more at the same level
    COMPLETE_COHORT = "complete_cohort"  # 3+3: fill a cohort that has < 3 (or < 6) patients
    DE_ESCALATE = "de_escalate"
    WAIT = "wait"  # the decision depends on patients still inside their DLT window
    STOP_MTD_FOUND = "stop_mtd_found"
    STOP_MAX_SAMPLE_SIZE = "stop_max_sample_size"
    STOP_HIGHEST_DOSE_SAFE = "stop_highest_dose_safe"
    STOP_LOWEST_DOSE_TOXIC = "stop_lowest_dose_toxic"


_STOP_ACTIONS = frozenset(
    {
        Action.STOP_MTD_FOUND,
        Action.STOP_MAX_SAMPLE_SIZE,
        Action.STOP_HIGHEST_DOSE_SAFE,
        Action.STOP_LOWEST_DOSE_TOXIC,
    }
)


@dataclass(frozen=True)
class DoseLevelState:
    """What is known at one dose level.

    ``evaluable``: patients whose DLT window has closed or who had a DLT.
    ``dlts``: evaluable patients who had a DLT.
    ``pending``: patients treated at this level who are still inside their DLT
    window without a DLT (not yet evaluable).  ``treated = evaluable + pending``.
    """

    level: Annotated[int, Field(ge=1)]
    evaluable: Count = 0
    dlts: Count = 0
    pending: Count = 0

    def __post_init__(self) -> None:
        check_fields(self, InvalidDoseLevelStateError)
        if self.dlts > self.evaluable:
            raise InvalidDoseLevelStateError(
                f"dlts at level {self.level} ({self.dlts}) exceeds evaluable patients ({self.evaluable})"
            )

    @property
    def treated(self) -> int:
        return self.evaluable + self.pending


@dataclass(frozen=True)
class Decision:
    """Outcome of a dose-escalation rule.

    ``next_dose_level`` is None for WAIT and STOP_* actions; ``patients_to_enrol``
    is how many patients the rule asks to treat next (0 for WAIT/STOP).
    ``mtd`` is set only when the rule has established (3+3) or selected (BOIN)
    the MTD.  ``highest_tolerated_level`` (3+3 only) is the highest level with
    6 evaluable patients and <= 1 DLT, whatever the action.
    """

    action: Action
    next_dose_level: int | None
    reason: str
    mtd: int | None = None
    patients_to_enrol: int = 0
    highest_tolerated_level: int | None = None


def validate_levels(levels_state: Sequence[DoseLevelState]) -> tuple[DoseLevelState, ...]:
    """The levels as a tuple, checked to be levels 1..K in order (K >= 1)."""
    levels = tuple(levels_state)
    if not levels:
        raise InvalidDoseLevelStateError("levels_state must list at least one dose level, got none")
    for index, state in enumerate(levels, start=1):
        if state.level != index:
            raise InvalidDoseLevelStateError(
                f"levels_state must be levels 1..K in order; position {index} holds level {state.level}"
            )
    return levels


def summary(levels: Sequence[DoseLevelState]) -> str:
    parts = []
    for s in levels:
        if s.treated == 0:
            continue
        text = f"level {s.level}: {s.dlts}/{s.evaluable} DLT"
        if s.pending:
            text += f" (+{s.pending} in DLT window)"
        parts.append(text)
    return "; ".join(parts) if parts else "no patient treated"


# Above this many pending-outcome combinations we do not enumerate and simply wait.
_MAX_SCENARIOS = 4096


Rule = Callable[[tuple[DoseLevelState, ...]], Decision]


def resolve_pending(levels: tuple[DoseLevelState, ...], rule: Rule) -> Decision:
    """Apply ``rule`` to complete data, or decide whether pending patients matter.

    A decision is taken while patients are still inside their DLT window only
    if it is the same (action, next level, patients to enrol, MTD) for EVERY possible outcome of
    those patients (each pending patient counted as DLT or no DLT); otherwise
    the answer is WAIT.  This is the conservative reading of "patients are
    evaluable only once their DLT window has closed or they had a DLT".
    """
    pending_total = sum(s.pending for s in levels)
    if pending_total == 0:
        return rule(levels)
    ranges = [range(s.pending + 1) for s in levels]
    n_scenarios = math.prod(len(r) for r in ranges)
    if n_scenarios > _MAX_SCENARIOS:
        return Decision(
            action=Action.WAIT,
            next_dose_level=None,
            reason=f"{pending_total} patient(s) still within the DLT window; wait. {summary(levels)}",
        )
    outcomes: dict[tuple, Decision] = {}
    first: Decision | None = None
    tolerated: list[int | None] = []
    for extra in itertools.product(*ranges):
        scenario = tuple(
            replace(s, evaluable=s.evaluable + s.pending, dlts=s.dlts + k, pending=0)
            for s, k in zip(levels, extra)
        )
        decision = rule(scenario)
        if first is None:  # all pending counted as "no DLT": the DLT counts quoted are the observed ones
            first = decision
        key = (decision.action, decision.next_dose_level, decision.patients_to_enrol, decision.mtd)
        outcomes[key] = decision
        tolerated.append(decision.highest_tolerated_level)
    assert first is not None
    if len(outcomes) == 1:
        # report only what holds whatever the pending outcomes
        known = [t for t in tolerated if t is not None]
        return replace(
            first,
            highest_tolerated_level=min(known) if len(known) == len(tolerated) else None,
            reason=(
                f"{first.reason} (counting {pending_total} patient(s) still within the DLT window, "
                "whose outcome cannot change this decision)"
            ),
        )
    possible = sorted(
        {f"{d.action.value}" + (f" to level {d.next_dose_level}" if d.next_dose_level else "") for d in outcomes.values()}
    )
    return Decision(
        action=Action.WAIT,
        next_dose_level=None,
        reason=(
            f"{pending_total} patient(s) still within the DLT window and the decision depends on "
            f"their outcome (possible: {', '.join(possible)}); wait. {summary(levels)}"
        ),
    )


def apply_cap(
    decision: Decision,
    levels: tuple[DoseLevelState, ...],
    max_sample_size: int | None,
    on_cap: Callable[[Decision, int], Decision],  # builds the STOP_MAX_SAMPLE_SIZE decision
) -> Decision:
    """Never propose treating beyond the cap; say so explicitly when it binds."""
    if max_sample_size is None or decision.action in _STOP_ACTIONS:
        return decision
    treated = sum(s.treated for s in levels)
    pending = sum(s.pending for s in levels)
    needed = decision.patients_to_enrol
    if decision.action is Action.WAIT:
        if treated >= max_sample_size:
            return replace(
                decision,
                reason=f"cap of {max_sample_size} patients reached: enrolment closed. {decision.reason}",
            )
        return decision
    if treated + needed <= max_sample_size:
        return decision
    if pending:
        return Decision(
            action=Action.WAIT,
            next_dose_level=None,
            reason=(
                f"cap of {max_sample_size} patients reached ({treated} treated): enrolment closed; "
                f"waiting for {pending} patient(s) to complete the DLT window before the final assessment. "
                f"{summary(levels)}"
            ),
            highest_tolerated_level=decision.highest_tolerated_level,
        )
    return on_cap(decision, treated)
