"""Classic 3+3 dose escalation, as tables read by ``decide``.

Sources: Storer BE. Design and analysis of phase I clinical trials. Biometrics
1989;45:925-937.  Le Tourneau C, Lee JJ, Siu LL. Dose escalation methods in
phase I cancer clinical trials. J Natl Cancer Inst 2009;101:708-720 (the
"3+3 design" description and its figure): 0/3 DLT -> escalate; 1/3 -> 3 more
at the same dose; <= 1/6 -> escalate; >= 2/3 or >= 2/6 -> the dose exceeds the
MTD; MTD = highest dose with <= 1/6 DLT.
Pure functions over frozen dataclasses; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.clinical.base import validated
from services.clinical.escalation import core
from services.clinical.escalation.core import Action, Decision, DoseLevelState

__all__ = [
    "AT_HIGHEST_LEVEL_TREATED",
    "AT_HIGHEST_PLANNED_LEVEL",
    "BELOW_A_LEVEL_ABOVE_THE_MTD",
    "EXCEEDS_MTD",
    "Step",
    "decide",
]


@dataclass(frozen=True)
class Step:
    """One cell of a 3+3 table: the action, how many patients to treat, and why.

    ``reason`` is a ``str.format`` template over ``level``, ``n``, ``d`` (the level
    the table was read at, its evaluable patients and DLTs), ``next``, ``enrol`` and,
    below a level that exceeds the MTD, ``below``, ``below_n`` and ``below_d``.
    """

    action: Action
    enrol: int
    reason: str


_COMPLETE = "cohort at level {level} incomplete ({n} evaluable): treat {enrol} more"
COMPLETE_WITH_1 = Step(Action.COMPLETE_COHORT, 1, _COMPLETE)
COMPLETE_WITH_2 = Step(Action.COMPLETE_COHORT, 2, _COMPLETE)
ESCALATE = Step(Action.ESCALATE, 3, "{d} of {n} patients had a DLT at level {level}: escalate to level {next}")
EXPAND = Step(Action.EXPAND, 3, "1 of 3 patients had a DLT at level {level}: expand to 6 at the same level")
# The dose exceeds the MTD: BELOW_A_LEVEL_ABOVE_THE_MTD decides.
EXCEEDS_MTD = Step(Action.DE_ESCALATE, 0, "level {level} exceeds the MTD")

# Storer 1989; Le Tourneau 2009, 3+3: (evaluable patients, DLTs) at the highest
# level treated -> step.  0/3 -> escalate; 1/3 -> 3 more at the same dose; 0/6 or
# 1/6 -> escalate; >= 2 DLTs, of 3 or of 6 (or already of the first 2), exceed the
# MTD.  An incomplete cohort of 3 (or of 6) is completed first.
AT_HIGHEST_LEVEL_TREATED: dict[tuple[int, int], Step] = {
    (1, 0): COMPLETE_WITH_2, (1, 1): COMPLETE_WITH_2,
    (2, 0): COMPLETE_WITH_1, (2, 1): COMPLETE_WITH_1, (2, 2): EXCEEDS_MTD,
    (3, 0): ESCALATE, (3, 1): EXPAND, (3, 2): EXCEEDS_MTD, (3, 3): EXCEEDS_MTD,
    (4, 0): COMPLETE_WITH_2, (4, 1): COMPLETE_WITH_2, (4, 2): EXCEEDS_MTD, (4, 3): EXCEEDS_MTD,
    (4, 4): EXCEEDS_MTD,
    (5, 0): COMPLETE_WITH_1, (5, 1): COMPLETE_WITH_1, (5, 2): EXCEEDS_MTD, (5, 3): EXCEEDS_MTD,
    (5, 4): EXCEEDS_MTD, (5, 5): EXCEEDS_MTD,
    (6, 0): ESCALATE, (6, 1): ESCALATE, (6, 2): EXCEEDS_MTD, (6, 3): EXCEEDS_MTD,
    (6, 4): EXCEEDS_MTD, (6, 5): EXCEEDS_MTD, (6, 6): EXCEEDS_MTD,
}

# At the highest planned level there is no level to escalate to; these cells
# replace those of AT_HIGHEST_LEVEL_TREATED.
_HIGHEST_DOSE_SAFE = Step(
    Action.STOP_HIGHEST_DOSE_SAFE,
    0,
    "{d} of 6 patients had a DLT at the highest planned level {level}: MTD not reached within the planned doses",
)
AT_HIGHEST_PLANNED_LEVEL: dict[tuple[int, int], Step] = {
    # Judgement call (documented): the MTD criterion needs 6 patients, so the
    # highest planned level is expanded to 6 before stopping.
    (3, 0): Step(
        Action.EXPAND, 3, "0 of 3 patients had a DLT at the highest planned level {level}: expand to 6 to confirm it"
    ),
    # Le Tourneau 2009: <= 1/6 at the highest dose: the MTD is not reached.
    (6, 0): _HIGHEST_DOSE_SAFE,
    (6, 1): _HIGHEST_DOSE_SAFE,
}

_COMPLETE_BELOW = "level {level} exceeds the MTD; complete the cohort at level {next} ({below_n} evaluable)"
# Le Tourneau 2009, 3+3: once a level exceeds the MTD it is never treated again; the
# evaluable patients at the level just below decide (None: there is no level below).
# MTD = the level below once it has 6 patients (<= 1 DLT); with 3 it is expanded to 6.
BELOW_A_LEVEL_ABOVE_THE_MTD: dict[int | None, Step] = {
    None: Step(
        Action.STOP_LOWEST_DOSE_TOXIC,
        0,
        "{d} of {n} patients had a DLT at the lowest level 1: every planned dose exceeds the MTD",
    ),
    1: Step(Action.COMPLETE_COHORT, 2, _COMPLETE_BELOW),
    2: Step(Action.COMPLETE_COHORT, 1, _COMPLETE_BELOW),
    3: Step(
        Action.DE_ESCALATE,
        3,
        "{d} of {n} patients had a DLT at level {level} (dose exceeds the MTD): "
        "de-escalate to level {next} and expand it to 6",
    ),
    4: Step(Action.COMPLETE_COHORT, 2, _COMPLETE_BELOW),
    5: Step(Action.COMPLETE_COHORT, 1, _COMPLETE_BELOW),
    6: Step(
        Action.STOP_MTD_FOUND,
        0,
        "level {level} exceeds the MTD ({d}/{n} DLT) and level {below} had {below_d}/6: MTD is level {below}",
    ),
}

# Actions that treat patients at the level the step is about (the current level or the one below).
_AT_TARGET_LEVEL = frozenset({Action.EXPAND, Action.COMPLETE_COHORT, Action.DE_ESCALATE})


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


def _decide_on_complete_data(levels: tuple[DoseLevelState, ...]) -> Decision:
    """Read the 3+3 tables for data without pending patients."""
    tolerated = _highest_tolerated(levels)
    tried = [s for s in levels if s.evaluable > 0]
    if not tried:
        reason = "no patient treated yet: treat 3 patients at level 1"
        return Decision(Action.START, 1, f"{reason}. {core.summary(levels)}", None, 3, tolerated)

    exceeded = next((s for s in tried if AT_HIGHEST_LEVEL_TREATED[s.evaluable, s.dlts] is EXCEEDS_MTD), None)
    if exceeded is not None:
        below = levels[exceeded.level - 2] if exceeded.level > 1 else None
        step = BELOW_A_LEVEL_ABOVE_THE_MTD[None if below is None else below.evaluable]
        read_at, target = exceeded, below
    else:
        current = tried[-1]
        key = (current.evaluable, current.dlts)
        step = AT_HIGHEST_LEVEL_TREATED[key]
        if current.level == len(levels):
            step = AT_HIGHEST_PLANNED_LEVEL.get(key, step)
        read_at, target = current, current

    if step.action is Action.ESCALATE:
        next_level = read_at.level + 1
    elif step.action in _AT_TARGET_LEVEL:
        next_level = target.level if target is not None else None
    else:
        next_level = None
    mtd = target.level if step.action is Action.STOP_MTD_FOUND and target is not None else None
    reason = step.reason.format(
        level=read_at.level,
        n=read_at.evaluable,
        d=read_at.dlts,
        next=next_level,
        enrol=step.enrol,
        below=None if target is None else target.level,
        below_n=None if target is None else target.evaluable,
        below_d=None if target is None else target.dlts,
    )
    return Decision(step.action, next_level, f"{reason}. {core.summary(levels)}", mtd, step.enrol, tolerated)


def _validate_three_plus_three(levels: tuple[DoseLevelState, ...]) -> None:
    for s in levels:
        if s.treated > 6:
            raise core.InvalidDoseLevelStateError(
                f"3+3 treats at most 6 patients per level; level {s.level} has {s.treated}"
            )
    seen_untreated = None
    for s in levels:
        if s.treated == 0:
            seen_untreated = s.level
        elif seen_untreated is not None:
            raise core.InvalidDoseLevelStateError(
                f"level {s.level} has treated patients but lower level {seen_untreated} has none; "
                "3+3 never skips a dose level"
            )


@validated(core.InvalidDoseLevelStateError, {"max_sample_size": core.InvalidDesignError})
def decide(levels_state: Sequence[DoseLevelState], max_sample_size: core.SampleSizeCap = None) -> Decision:
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
    levels = core.validate_levels(levels_state)
    _validate_three_plus_three(levels)
    decision = core.resolve_pending(levels, _decide_on_complete_data)

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
                f"{proposed.patients_to_enrol} more); MTD not established; {known}. {core.summary(levels)}"
            ),
            mtd=None,
            patients_to_enrol=0,
            highest_tolerated_level=tolerated,
        )

    return core.apply_cap(decision, levels, max_sample_size, on_cap)
