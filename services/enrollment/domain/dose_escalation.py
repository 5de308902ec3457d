"""Dose-escalation rules for phase I cell-therapy programmes: classic 3+3 and BOIN.

Pure functions over frozen dataclasses; no I/O.  Dose levels are numbered 1..K
(level 1 = lowest planned dose) and every function receives the state of ALL
planned levels, so "highest planned level" is always known.

Sources
-------
* 3+3: Storer BE. Design and analysis of phase I clinical trials. Biometrics
  1989;45:925-937.  Le Tourneau C, Lee JJ, Siu LL. Dose escalation methods in
  phase I cancer clinical trials. J Natl Cancer Inst 2009;101:708-720 (the
  "3+3 design" description and its figure).
* BOIN: Liu S, Yuan Y. Bayesian optimal interval designs for phase I clinical
  trials. J R Stat Soc C 2015;64:507-523.  Yuan Y, Hess KR, Hilsenbeck SG,
  Gilbert MR. Bayesian optimal interval design: a simple and well-performing
  design for phase I oncology trials. Clin Cancer Res 2016;22:4291-4301.
  Implementation details (elimination rule, decision-table capping, MTD
  selection) follow the authors' CRAN package BOIN, files R/get.boundary.R and
  R/select.mtd.R.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from scipy.stats import beta as beta_distribution

__all__ = [
    "Action",
    "BoinBoundaries",
    "BoinDesign",
    "BoinTableRow",
    "Decision",
    "DoseLevelState",
    "EscalationProgramme",
    "InvalidDesignError",
    "InvalidDoseLevelStateError",
    "InvalidPatientRecordError",
    "IsotonicWeights",
    "MtdSelection",
    "NK_PH_POSITIVE_ALL_PHASE_I",
    "PatientDltRecord",
    "boin_boundaries",
    "boin_decide",
    "boin_decision_table",
    "boin_eliminated_from",
    "boin_select_mtd",
    "decide",
    "decide_from_records",
    "level_states_from_records",
    "pava",
]


# --------------------------------------------------------------------------- errors


class DoseEscalationError(ValueError):
    """Base class for invalid input to the dose-escalation rules."""


class InvalidDoseLevelStateError(DoseEscalationError):
    """The per-level counts are impossible or inconsistent with the design."""


class InvalidDesignError(DoseEscalationError):
    """A design parameter (target, boundaries, cap, window...) is out of range."""


class InvalidPatientRecordError(DoseEscalationError):
    """A per-patient DLT record is impossible (dates, level, duplicates)."""


# --------------------------------------------------------------------------- shared types


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

    level: int
    evaluable: int = 0
    dlts: int = 0
    pending: int = 0

    def __post_init__(self) -> None:
        for name in ("level", "evaluable", "dlts", "pending"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidDoseLevelStateError(f"{name} must be an integer, got {value!r}")
        if self.level < 1:
            raise InvalidDoseLevelStateError(f"level must be >= 1, got {self.level}")
        for name in ("evaluable", "dlts", "pending"):
            if getattr(self, name) < 0:
                raise InvalidDoseLevelStateError(
                    f"{name} at level {self.level} must be >= 0, got {getattr(self, name)}"
                )
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


def _validate_levels(levels_state: Sequence[DoseLevelState]) -> tuple[DoseLevelState, ...]:
    levels = tuple(levels_state)
    if not levels:
        raise InvalidDoseLevelStateError("levels_state must list at least one dose level, got none")
    for index, state in enumerate(levels, start=1):
        if not isinstance(state, DoseLevelState):
            raise InvalidDoseLevelStateError(
                f"levels_state[{index - 1}] must be a DoseLevelState, got {state!r}"
            )
        if state.level != index:
            raise InvalidDoseLevelStateError(
                f"levels_state must be levels 1..K in order; position {index} holds level {state.level}"
            )
    return levels


def _validate_cap(max_sample_size: int | None) -> None:
    if max_sample_size is None:
        return
    if isinstance(max_sample_size, bool) or not isinstance(max_sample_size, int) or max_sample_size < 1:
        raise InvalidDesignError(f"max_sample_size must be a positive integer, got {max_sample_size!r}")


def _summary(levels: Sequence[DoseLevelState]) -> str:
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


_Core = Callable[[tuple[DoseLevelState, ...]], Decision]


def _resolve_pending(levels: tuple[DoseLevelState, ...], core: _Core) -> Decision:
    """Apply ``core`` to complete data, or decide whether pending patients matter.

    A decision is taken while patients are still inside their DLT window only
    if it is the same (action, next level, patients to enrol, MTD) for EVERY possible outcome of
    those patients (each pending patient counted as DLT or no DLT); otherwise
    the answer is WAIT.  This is the conservative reading of "patients are
    evaluable only once their DLT window has closed or they had a DLT".
    """
    pending_total = sum(s.pending for s in levels)
    if pending_total == 0:
        return core(levels)
    ranges = [range(s.pending + 1) for s in levels]
    n_scenarios = math.prod(len(r) for r in ranges)
    if n_scenarios > _MAX_SCENARIOS:
        return Decision(
            action=Action.WAIT,
            next_dose_level=None,
            reason=f"{pending_total} patient(s) still within the DLT window; wait. {_summary(levels)}",
        )
    outcomes: dict[tuple, Decision] = {}
    first: Decision | None = None
    tolerated: list[int | None] = []
    for extra in itertools.product(*ranges):
        scenario = tuple(
            replace(s, evaluable=s.evaluable + s.pending, dlts=s.dlts + k, pending=0)
            for s, k in zip(levels, extra)
        )
        decision = core(scenario)
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
            f"their outcome (possible: {', '.join(possible)}); wait. {_summary(levels)}"
        ),
    )


def _apply_cap(
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
                f"{_summary(levels)}"
            ),
            highest_tolerated_level=decision.highest_tolerated_level,
        )
    return on_cap(decision, treated)


# --------------------------------------------------------------------------- 3+3


def _highest_tolerated(levels: Sequence[DoseLevelState]) -> int | None:
    # MTD criterion of the 3+3 (Le Tourneau 2009, 3+3 section): a dose at which
    # 6 patients were treated with at most 1 DLT.  Levels at or above the lowest
    # level with >= 2 DLTs are excluded.
    lowest_toxic = min((s.level for s in levels if s.dlts >= 2), default=None)
    best = None
    for s in levels:
        if lowest_toxic is not None and s.level >= lowest_toxic:
            break
        if s.evaluable >= 6 and s.dlts <= 1:
            best = s.level
    return best


def _three_plus_three_core(levels: tuple[DoseLevelState, ...]) -> Decision:
    """3+3 rule on complete data (no pending patients)."""
    top = len(levels)
    tolerated = _highest_tolerated(levels)
    summary = _summary(levels)

    def make(action: Action, level: int | None, reason: str, enrol: int = 0, mtd: int | None = None) -> Decision:
        return Decision(action, level, f"{reason}. {summary}", mtd, enrol, tolerated)

    toxic = [s for s in levels if s.dlts >= 2]
    if toxic:
        # Le Tourneau 2009 (3+3): ">= 2 of 3 or >= 2 of 6 patients with DLT: the
        # dose exceeds the MTD"; never treat again at or above that level.
        t = toxic[0]
        if t.level == 1:
            return make(
                Action.STOP_LOWEST_DOSE_TOXIC,
                None,
                f"{t.dlts} of {t.evaluable} patients had a DLT at the lowest level 1: "
                "every planned dose exceeds the MTD",
            )
        below = levels[t.level - 2]
        if below.evaluable >= 6:
            # Le Tourneau 2009: MTD = highest dose with <= 1/6 DLT, i.e. the level
            # just below the one that exceeded the MTD, once it has 6 patients.
            return make(
                Action.STOP_MTD_FOUND,
                None,
                f"level {t.level} exceeds the MTD ({t.dlts}/{t.evaluable} DLT) and level {below.level} "
                f"had {below.dlts}/6: MTD is level {below.level}",
                mtd=below.level,
            )
        if below.evaluable in (1, 2, 4, 5):
            need = 3 - below.evaluable % 3
            return make(
                Action.COMPLETE_COHORT,
                below.level,
                f"level {t.level} exceeds the MTD; complete the cohort at level {below.level} "
                f"({below.evaluable} evaluable)",
                enrol=need,
            )
        # Le Tourneau 2009: de-escalate to the previous level and treat 3 more
        # there if only 3 were treated, to confirm it as the MTD.
        return make(
            Action.DE_ESCALATE,
            below.level,
            f"{t.dlts} of {t.evaluable} patients had a DLT at level {t.level} (dose exceeds the MTD): "
            f"de-escalate to level {below.level} and expand it to 6",
            enrol=6 - below.evaluable,
        )

    tried = [s for s in levels if s.evaluable > 0]
    if not tried:
        return make(Action.START, 1, "no patient treated yet: treat 3 patients at level 1", enrol=3)
    current = tried[-1]
    n, d = current.evaluable, current.dlts  # d <= 1 here
    if n in (1, 2, 4, 5):
        need = 3 - n % 3
        return make(
            Action.COMPLETE_COHORT,
            current.level,
            f"cohort at level {current.level} incomplete ({n} evaluable): treat {need} more",
            enrol=need,
        )
    if n == 3 and d == 1:
        # Storer 1989 / Le Tourneau 2009: 1 of 3 -> 3 more at the same dose.
        return make(
            Action.EXPAND,
            current.level,
            f"1 of 3 patients had a DLT at level {current.level}: expand to 6 at the same level",
            enrol=3,
        )
    at_top = current.level == top
    if n == 3:  # d == 0
        if at_top:
            # Judgement call (documented): the MTD criterion needs 6 patients,
            # so the highest planned level is expanded to 6 before stopping.
            return make(
                Action.EXPAND,
                current.level,
                f"0 of 3 patients had a DLT at the highest planned level {current.level}: "
                "expand to 6 to confirm it",
                enrol=3,
            )
        # Storer 1989 / Le Tourneau 2009: 0 of 3 -> escalate.
        return make(
            Action.ESCALATE,
            current.level + 1,
            f"0 of 3 patients had a DLT at level {current.level}: escalate to level {current.level + 1}",
            enrol=3,
        )
    # n == 6 and d <= 1
    if at_top:
        return make(
            Action.STOP_HIGHEST_DOSE_SAFE,
            None,
            f"{d} of 6 patients had a DLT at the highest planned level {current.level}: "
            "MTD not reached within the planned doses",
        )
    # Le Tourneau 2009: 1 of 6 (or 0 of 6) -> escalate.
    return make(
        Action.ESCALATE,
        current.level + 1,
        f"{d} of 6 patients had a DLT at level {current.level}: escalate to level {current.level + 1}",
        enrol=3,
    )


def _validate_three_plus_three(levels: tuple[DoseLevelState, ...]) -> None:
    for s in levels:
        if s.treated > 6:
            raise InvalidDoseLevelStateError(
                f"3+3 treats at most 6 patients per level; level {s.level} has {s.treated}"
            )
    seen_untreated = None
    for s in levels:
        if s.treated == 0:
            seen_untreated = s.level
        elif seen_untreated is not None:
            raise InvalidDoseLevelStateError(
                f"level {s.level} has treated patients but lower level {seen_untreated} has none; "
                "3+3 never skips a dose level"
            )


def decide(levels_state: Sequence[DoseLevelState], max_sample_size: int | None = None) -> Decision:
    """Classic 3+3 decision (Storer 1989; Le Tourneau et al. JNCI 2009;101:708-720).

    * 0/3 DLT -> ESCALATE; 1/3 -> EXPAND to 6 at the same level; <= 1/6 -> ESCALATE.
    * >= 2 DLT (of 3 or of 6) -> that dose exceeds the MTD: DE_ESCALATE to the
      level below (expanding it to 6 if only 3 were treated there); never
      escalate past, or return to, that level.
    * MTD = highest level with <= 1/6 DLT below the first level with >= 2 DLT.
    * ``max_sample_size`` caps the total number of patients treated (evaluable
      + pending); when it binds the rule stops with STOP_MAX_SAMPLE_SIZE and
      says what is known.  It never proposes treating beyond the cap.
    * Patients still inside their DLT window (``pending``) produce WAIT unless
      the decision is the same whatever their outcome.
    """
    levels = _validate_levels(levels_state)
    _validate_cap(max_sample_size)
    _validate_three_plus_three(levels)
    decision = _resolve_pending(levels, _three_plus_three_core)

    def on_cap(proposed: Decision, treated: int) -> Decision:
        tolerated = _highest_tolerated(levels)
        known = (
            f"highest dose with <=1/6 DLT is level {tolerated}"
            if tolerated is not None
            else "no dose level has 6 evaluable patients with <=1 DLT"
        )
        step = proposed.action.value + (
            f" to level {proposed.next_dose_level}" if proposed.next_dose_level is not None else ""
        )
        return Decision(
            action=Action.STOP_MAX_SAMPLE_SIZE,
            next_dose_level=None,
            reason=(
                f"cap of {max_sample_size} reached ({treated} treated; next step '{step}' needs "
                f"{proposed.patients_to_enrol} more); MTD not established; {known}. {_summary(levels)}"
            ),
            mtd=None,
            patients_to_enrol=0,
            highest_tolerated_level=tolerated,
        )

    return _apply_cap(decision, levels, max_sample_size, on_cap)


# --------------------------------------------------------------------------- DLT window


@dataclass(frozen=True)
class EscalationProgramme:
    """Programme-level parameters of a 3+3 escalation."""

    name: str
    n_dose_levels: int
    max_sample_size: int | None
    dlt_window_days: int

    def __post_init__(self) -> None:
        if isinstance(self.n_dose_levels, bool) or not isinstance(self.n_dose_levels, int) or self.n_dose_levels < 1:
            raise InvalidDesignError(f"n_dose_levels must be a positive integer, got {self.n_dose_levels!r}")
        _validate_cap(self.max_sample_size)
        if (
            isinstance(self.dlt_window_days, bool)
            or not isinstance(self.dlt_window_days, int)
            or self.dlt_window_days < 1
        ):
            raise InvalidDesignError(f"dlt_window_days must be a positive integer, got {self.dlt_window_days!r}")


# Seed 001 (phase I, autologous NK cells in Ph+ ALL): "A maximum of 6 patients
# will be enrolled in two different steps" with "escalating doses" -> read as
# two dose levels, 6 patients at most.  The seed does not state the DLT window:
# 28 days is a PLACEHOLDER to be confirmed from the protocol.
NK_PH_POSITIVE_ALL_PHASE_I = EscalationProgramme(
    name="Autologous NK cells in Ph+ ALL in CHR with MRD (seed 001)",
    n_dose_levels=2,
    max_sample_size=6,
    dlt_window_days=28,
)


@dataclass(frozen=True)
class PatientDltRecord:
    """One treated patient: dose level, infusion date, date of first DLT (or None)."""

    patient_id: str
    dose_level: int
    infusion_date: date
    dlt_date: date | None = None


def _check_date(name: str, value: object, patient_id: str) -> None:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidPatientRecordError(f"{name} of patient {patient_id!r} must be a date, got {value!r}")


def level_states_from_records(
    records: Iterable[PatientDltRecord],
    today: date,
    dlt_window_days: int,
    n_dose_levels: int,
) -> tuple[DoseLevelState, ...]:
    """Build per-level state from per-patient records.

    A patient is evaluable once they had a DLT or once their DLT window has
    closed, i.e. ``(today - infusion_date).days >= dlt_window_days``; otherwise
    they are pending.  A DLT must fall within the window (days 0..window after
    infusion): a later toxicity is not a DLT and is refused here.
    """
    if isinstance(today, datetime) or not isinstance(today, date):
        raise InvalidPatientRecordError(f"today must be a date, got {today!r}")
    EscalationProgramme("check", n_dose_levels, None, dlt_window_days)  # validates both
    evaluable = [0] * n_dose_levels
    dlts = [0] * n_dose_levels
    pending = [0] * n_dose_levels
    seen: set[str] = set()
    for r in records:
        if r.patient_id in seen:
            raise InvalidPatientRecordError(f"patient_id {r.patient_id!r} appears more than once")
        seen.add(r.patient_id)
        if isinstance(r.dose_level, bool) or not isinstance(r.dose_level, int) or not 1 <= r.dose_level <= n_dose_levels:
            raise InvalidPatientRecordError(
                f"dose_level of patient {r.patient_id!r} must be 1..{n_dose_levels}, got {r.dose_level!r}"
            )
        _check_date("infusion_date", r.infusion_date, r.patient_id)
        if r.infusion_date > today:
            raise InvalidPatientRecordError(
                f"infusion_date of patient {r.patient_id!r} ({r.infusion_date}) is after today ({today})"
            )
        i = r.dose_level - 1
        if r.dlt_date is not None:
            _check_date("dlt_date", r.dlt_date, r.patient_id)
            if r.dlt_date < r.infusion_date or r.dlt_date > today:
                raise InvalidPatientRecordError(
                    f"dlt_date of patient {r.patient_id!r} ({r.dlt_date}) must lie between the infusion "
                    f"({r.infusion_date}) and today ({today})"
                )
            day = (r.dlt_date - r.infusion_date).days
            if day > dlt_window_days:
                raise InvalidPatientRecordError(
                    f"dlt_date of patient {r.patient_id!r} is day {day}, outside the "
                    f"{dlt_window_days}-day DLT window: not a DLT"
                )
            evaluable[i] += 1
            dlts[i] += 1
        elif (today - r.infusion_date).days >= dlt_window_days:
            evaluable[i] += 1
        else:
            pending[i] += 1
    return tuple(
        DoseLevelState(level=i + 1, evaluable=evaluable[i], dlts=dlts[i], pending=pending[i])
        for i in range(n_dose_levels)
    )


def decide_from_records(
    programme: EscalationProgramme, records: Iterable[PatientDltRecord], today: date
) -> Decision:
    """3+3 decision for a programme from per-patient records (window and cap from the programme)."""
    levels = level_states_from_records(records, today, programme.dlt_window_days, programme.n_dose_levels)
    return decide(levels, programme.max_sample_size)


# --------------------------------------------------------------------------- BOIN


@dataclass(frozen=True)
class BoinBoundaries:
    target: float
    phi1: float
    phi2: float
    lambda_e: float
    lambda_d: float


def boin_boundaries(target: float, phi1: float | None = None, phi2: float | None = None) -> BoinBoundaries:
    """Escalation/de-escalation boundaries of BOIN.

    Liu & Yuan, J R Stat Soc C 2015;64:507-523 (closed form of the local
    optimal boundaries), defaults phi1 = 0.6*phi and phi2 = 1.4*phi as
    recommended there and in Yuan et al. Clin Cancer Res 2016:
        lambda_e = log((1-phi1)/(1-phi)) / log(phi(1-phi1) / (phi1(1-phi)))
        lambda_d = log((1-phi)/(1-phi2)) / log(phi2(1-phi) / (phi(1-phi2)))
    """
    for name, value in (("target", target), ("phi1", phi1), ("phi2", phi2)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)):
            raise InvalidDesignError(f"{name} must be a number, got {value!r}")
    if not 0 < target < 1:
        raise InvalidDesignError(f"target must be in (0, 1), got {target}")
    p1 = 0.6 * target if phi1 is None else float(phi1)
    p2 = 1.4 * target if phi2 is None else float(phi2)
    if not 0 < p1 < target:
        raise InvalidDesignError(f"phi1 must be in (0, target={target}), got {p1}")
    if not target < p2 < 1:
        raise InvalidDesignError(f"phi2 must be in (target={target}, 1), got {p2}")
    lambda_e = math.log((1 - p1) / (1 - target)) / math.log(target * (1 - p1) / (p1 * (1 - target)))
    lambda_d = math.log((1 - target) / (1 - p2)) / math.log(p2 * (1 - target) / (target * (1 - p2)))
    return BoinBoundaries(float(target), p1, p2, lambda_e, lambda_d)


def _posterior_prob_above(target: float, n: int, y: int) -> float:
    # BOIN safety rule (Liu & Yuan 2015; BOIN R/get.boundary.R): beta(1,1) prior,
    # posterior Beta(y+1, n-y+1); P(p > target | data) = survival function at target.
    return float(beta_distribution.sf(target, y + 1, n - y + 1))


@dataclass(frozen=True)
class BoinTableRow:
    n: int
    escalate_if_dlts_at_most: int
    deescalate_if_dlts_at_least: int
    eliminate_if_dlts_at_least: int | None


def boin_decision_table(
    target: float,
    max_n: int,
    phi1: float | None = None,
    phi2: float | None = None,
    elimination_cutoff: float = 0.95,
    min_n_for_elimination: int = 3,
) -> tuple[BoinTableRow, ...]:
    """Decision table for n = 1..max_n patients at the current dose.

    As in BOIN R/get.boundary.R: escalate if y <= floor(lambda_e * n),
    de-escalate if y >= ceil(lambda_d * n), eliminate if y >= smallest y with
    P(p > target | y, n) > cutoff (only n >= 3); the de-escalation count is
    capped at the elimination count.
    """
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise InvalidDesignError(f"max_n must be a positive integer, got {max_n!r}")
    b = boin_boundaries(target, phi1, phi2)
    rows = []
    for n in range(1, max_n + 1):
        esc = math.floor(b.lambda_e * n)
        dees = math.ceil(b.lambda_d * n)
        elim = None
        if n >= min_n_for_elimination:
            elim = next((y for y in range(1, n + 1) if _posterior_prob_above(target, n, y) > elimination_cutoff), None)
        if elim is not None and dees > elim:
            dees = elim
        rows.append(BoinTableRow(n, esc, dees, elim))
    return tuple(rows)


@dataclass(frozen=True)
class BoinDesign:
    """BOIN design parameters (defaults as in Liu & Yuan 2015 and the BOIN R package)."""

    target: float
    n_dose_levels: int
    cohort_size: int = 3
    max_sample_size: int | None = None
    phi1: float | None = None
    phi2: float | None = None
    elimination_cutoff: float = 0.95
    min_n_for_elimination: int = 3

    def __post_init__(self) -> None:
        boin_boundaries(self.target, self.phi1, self.phi2)  # validates target/phi1/phi2
        for name in ("n_dose_levels", "cohort_size", "min_n_for_elimination"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidDesignError(f"{name} must be a positive integer, got {value!r}")
        _validate_cap(self.max_sample_size)
        if not 0 < self.elimination_cutoff < 1:
            raise InvalidDesignError(f"elimination_cutoff must be in (0, 1), got {self.elimination_cutoff}")

    @property
    def boundaries(self) -> BoinBoundaries:
        return boin_boundaries(self.target, self.phi1, self.phi2)


def boin_eliminated_from(
    levels_state: Sequence[DoseLevelState],
    target: float,
    elimination_cutoff: float = 0.95,
    min_n_for_elimination: int = 3,
) -> int | None:
    """Lowest eliminated level, or None.

    Liu & Yuan 2015 / BOIN R package: if n_j >= 3 and P(p_j > target | data) >
    0.95 under a beta(1,1) prior, eliminate dose j and all higher doses.
    """
    for s in _validate_levels(levels_state):
        if s.evaluable >= min_n_for_elimination and (
            _posterior_prob_above(target, s.evaluable, s.dlts) > elimination_cutoff
        ):
            return s.level
    return None


class IsotonicWeights(StrEnum):
    # BOIN R/select.mtd.R: pava(phat, wt = 1/phat.var) with the posterior
    # variance of a beta(0.05, 0.05) prior.  This is the default.
    INVERSE_VARIANCE = "inverse_variance"
    # Weights = patients treated at the dose (the brief's wording).
    SAMPLE_SIZE = "sample_size"


def pava(values: Sequence[float], weights: Sequence[float] | None = None) -> tuple[float, ...]:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators."""
    xs = [float(v) for v in values]
    ws = [1.0] * len(xs) if weights is None else [float(w) for w in weights]
    if len(ws) != len(xs):
        raise InvalidDesignError(f"weights has {len(ws)} entries but values has {len(xs)}")
    if any(w <= 0 or math.isnan(w) for w in ws):
        raise InvalidDesignError(f"weights must be positive, got {ws}")
    blocks: list[list[float]] = []  # [weighted mean, total weight, count]
    for x, w in zip(xs, ws):
        blocks.append([x, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2])
    out: list[float] = []
    for mean, _, count in blocks:
        out.extend([mean] * int(count))
    return tuple(out)


@dataclass(frozen=True)
class MtdSelection:
    mtd: int | None
    isotonic_estimates: tuple[tuple[int, float], ...]  # (level, estimate) for admissible tried levels
    reason: str


def boin_select_mtd(
    target: float,
    levels_state: Sequence[DoseLevelState],
    elimination_cutoff: float = 0.95,
    weights: IsotonicWeights = IsotonicWeights.INVERSE_VARIANCE,
    min_n_for_elimination: int = 3,
) -> MtdSelection:
    """MTD selection at the end of a BOIN trial (BOIN R/select.mtd.R; Liu & Yuan 2015).

    Over tried (n > 0), non-eliminated levels: posterior means (y+0.05)/(n+0.1)
    (beta(0.05, 0.05) prior), isotonic regression by PAVA, then the level whose
    estimate is closest to the target.  Ties: if the tied estimate is below the
    target take the highest such level, otherwise the lowest (select.mtd docs;
    reproduces its "+ index * 1e-10" tie-break).  No MTD if level 1 is eliminated.
    Pending patients are ignored (only evaluable data are used).
    """
    levels = _validate_levels(levels_state)
    boin_boundaries(target)
    eliminated = boin_eliminated_from(levels, target, elimination_cutoff, min_n_for_elimination)
    if eliminated == 1:
        return MtdSelection(None, (), "level 1 is eliminated as overly toxic: no MTD selected")
    admissible = [
        s for s in levels if s.evaluable > 0 and (eliminated is None or s.level < eliminated)
    ]
    if not admissible:
        return MtdSelection(None, (), "no evaluable patient at any admissible level: no MTD selected")
    phat = [(s.dlts + 0.05) / (s.evaluable + 0.1) for s in admissible]
    if weights is IsotonicWeights.INVERSE_VARIANCE:
        var = [
            (s.dlts + 0.05) * (s.evaluable - s.dlts + 0.05) / ((s.evaluable + 0.1) ** 2 * (s.evaluable + 1.1))
            for s in admissible
        ]
        w = [1.0 / v for v in var]
    else:
        w = [float(s.evaluable) for s in admissible]
    iso = pava(phat, w)
    distances = [abs(p - target) for p in iso]
    best = min(distances)
    tied = [i for i, dist in enumerate(distances) if dist - best <= 1e-12]
    below = [i for i in tied if iso[i] < target]
    chosen = max(below) if below else min(tied)
    mtd = admissible[chosen].level
    estimates = tuple((s.level, p) for s, p in zip(admissible, iso))
    shown = ", ".join(f"level {lvl}: {p:.3f}" for lvl, p in estimates)
    return MtdSelection(
        mtd,
        estimates,
        f"isotonic DLT estimates {shown}; level {mtd} is closest to the target {target}",
    )


def boin_decide(design: BoinDesign, levels_state: Sequence[DoseLevelState], current_level: int) -> Decision:
    """BOIN decision for the next cohort (Liu & Yuan 2015; Yuan et al. 2016).

    Observed DLT rate at the current level p = y/n: p <= lambda_e -> escalate,
    p >= lambda_d -> de-escalate, otherwise stay.  Never escalate into an
    eliminated level; never move outside 1..K (stay instead).  Stop if level 1
    is eliminated.  When the next cohort would exceed ``max_sample_size`` stop
    and select the MTD by isotonic regression.
    """
    levels = _validate_levels(levels_state)
    if len(levels) != design.n_dose_levels:
        raise InvalidDoseLevelStateError(
            f"levels_state has {len(levels)} levels but the design has n_dose_levels={design.n_dose_levels}"
        )
    if isinstance(current_level, bool) or not isinstance(current_level, int) or not 1 <= current_level <= len(levels):
        raise InvalidDoseLevelStateError(f"current_level must be 1..{len(levels)}, got {current_level!r}")
    b = design.boundaries
    top = len(levels)

    def core(complete: tuple[DoseLevelState, ...]) -> Decision:
        summary = _summary(complete)
        eliminated = boin_eliminated_from(
            complete, design.target, design.elimination_cutoff, design.min_n_for_elimination
        )
        if eliminated == 1:
            return Decision(
                Action.STOP_LOWEST_DOSE_TOXIC,
                None,
                f"P(DLT rate > {design.target}) > {design.elimination_cutoff} at level 1: "
                f"all doses eliminated. {summary}",
            )
        if all(s.evaluable == 0 for s in complete):
            return Decision(Action.START, current_level, f"no patient treated yet: treat a cohort at level {current_level}", None, design.cohort_size)
        cur = complete[current_level - 1]
        ceiling = top if eliminated is None else eliminated - 1  # highest admissible level

        def go(action: Action, level: int, why: str) -> Decision:
            return Decision(action, level, f"{why}. {summary}", None, design.cohort_size)

        if current_level > ceiling:
            return go(
                Action.DE_ESCALATE,
                ceiling,
                f"level {eliminated} and above eliminated (P(DLT rate > {design.target}) > "
                f"{design.elimination_cutoff}): de-escalate to level {ceiling}",
            )
        if cur.evaluable == 0:
            return go(Action.STAY, current_level, f"no evaluable patient at level {current_level} yet: treat here")
        rate = cur.dlts / cur.evaluable
        observed = f"observed DLT rate {cur.dlts}/{cur.evaluable} = {rate:.3f} at level {current_level}"
        if rate <= b.lambda_e:
            if current_level < ceiling:
                return go(Action.ESCALATE, current_level + 1, f"{observed} <= lambda_e {b.lambda_e:.4f}: escalate")
            limit = "highest planned level" if current_level == top else f"level {current_level + 1} is eliminated"
            return go(Action.STAY, current_level, f"{observed} <= lambda_e {b.lambda_e:.4f} but {limit}: stay")
        if rate >= b.lambda_d:
            if current_level > 1:
                return go(Action.DE_ESCALATE, current_level - 1, f"{observed} >= lambda_d {b.lambda_d:.4f}: de-escalate")
            return go(Action.STAY, current_level, f"{observed} >= lambda_d {b.lambda_d:.4f} at the lowest level: stay")
        return go(
            Action.STAY,
            current_level,
            f"{observed} between lambda_e {b.lambda_e:.4f} and lambda_d {b.lambda_d:.4f}: stay",
        )

    decision = _resolve_pending(levels, core)

    def on_cap(proposed: Decision, treated: int) -> Decision:
        selection = boin_select_mtd(design.target, levels, design.elimination_cutoff, min_n_for_elimination=design.min_n_for_elimination)
        return Decision(
            action=Action.STOP_MAX_SAMPLE_SIZE,
            next_dose_level=None,
            reason=(
                f"maximum sample size {design.max_sample_size} reached ({treated} treated; next cohort needs "
                f"{proposed.patients_to_enrol}): {selection.reason}. {_summary(levels)}"
            ),
            mtd=selection.mtd,
        )

    return _apply_cap(decision, levels, design.max_sample_size, on_cap)
