"""BOIN: Bayesian optimal interval dose-escalation design.

Sources: Liu S, Yuan Y. Bayesian optimal interval designs for phase I clinical
trials. J R Stat Soc C 2015;64:507-523.  Yuan Y, Hess KR, Hilsenbeck SG,
Gilbert MR. Bayesian optimal interval design: a simple and well-performing
design for phase I oncology trials. Clin Cancer Res 2016;22:4291-4301.
Implementation details (elimination rule, decision-table capping, MTD
selection) follow the authors' CRAN package BOIN, files R/get.boundary.R and
R/select.mtd.R.  The decision table is data (``boin_decision_table``), computed
from the closed-form boundaries as the package does.
Pure functions over frozen dataclasses; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field
from scipy.stats import beta as beta_distribution

from services.clinical.base import Probability, check_fields, validated
from services.clinical.escalation import core
from services.clinical.escalation.core import Action, Decision, DoseLevelState
from services.clinical.escalation.isotonic import IsotonicWeights, MtdSelection, select_mtd

__all__ = [
    "BoinBoundaries",
    "BoinDesign",
    "BoinTableRow",
    "boin_boundaries",
    "boin_decide",
    "boin_decision_table",
    "boin_eliminated_from",
    "boin_select_mtd",
]

PositiveInt = Annotated[int, Field(ge=1)]
# Design parameters raise InvalidDesignError; the per-level state InvalidDoseLevelStateError.
_STATE_ERRORS = {"levels_state": core.InvalidDoseLevelStateError, "current_level": core.InvalidDoseLevelStateError}


@dataclass(frozen=True)
class BoinBoundaries:
    target: float
    phi1: float
    phi2: float
    lambda_e: float
    lambda_d: float


@validated(core.InvalidDesignError)
def boin_boundaries(target: Probability, phi1: float | None = None, phi2: float | None = None) -> BoinBoundaries:
    """Escalation/de-escalation boundaries of BOIN.

    Liu & Yuan, J R Stat Soc C 2015;64:507-523 (closed form of the local
    optimal boundaries), defaults phi1 = 0.6*phi and phi2 = 1.4*phi as
    recommended there and in Yuan et al. Clin Cancer Res 2016:
        lambda_e = log((1-phi1)/(1-phi)) / log(phi(1-phi1) / (phi1(1-phi)))
        lambda_d = log((1-phi)/(1-phi2)) / log(phi2(1-phi) / (phi(1-phi2)))
    """
    p1 = 0.6 * target if phi1 is None else phi1
    p2 = 1.4 * target if phi2 is None else phi2
    if not 0 < p1 < target:
        raise core.InvalidDesignError(f"phi1 must be in (0, target={target}), got {p1}")
    if not target < p2 < 1:
        raise core.InvalidDesignError(f"phi2 must be in (target={target}, 1), got {p2}")
    lambda_e = math.log((1 - p1) / (1 - target)) / math.log(target * (1 - p1) / (p1 * (1 - target)))
    lambda_d = math.log((1 - target) / (1 - p2)) / math.log(p2 * (1 - target) / (target * (1 - p2)))
    return BoinBoundaries(target, p1, p2, lambda_e, lambda_d)


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


@validated(core.InvalidDesignError)
def boin_decision_table(
    target: Probability,
    max_n: PositiveInt,
    phi1: float | None = None,
    phi2: float | None = None,
    elimination_cutoff: Probability = 0.95,
    min_n_for_elimination: PositiveInt = 3,
) -> tuple[BoinTableRow, ...]:
    """Decision table for n = 1..max_n patients at the current dose.

    As in BOIN R/get.boundary.R: escalate if y <= floor(lambda_e * n),
    de-escalate if y >= ceil(lambda_d * n), eliminate if y >= smallest y with
    P(p > target | y, n) > cutoff (only n >= 3); the de-escalation count is
    capped at the elimination count.
    """
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

    target: Probability
    n_dose_levels: PositiveInt
    cohort_size: PositiveInt = 3
    max_sample_size: core.SampleSizeCap = None
    phi1: float | None = None
    phi2: float | None = None
    elimination_cutoff: Probability = 0.95
    min_n_for_elimination: PositiveInt = 3

    def __post_init__(self) -> None:
        check_fields(self, core.InvalidDesignError)
        boin_boundaries(self.target, self.phi1, self.phi2)  # checks phi1 < target < phi2

    @property
    def boundaries(self) -> BoinBoundaries:
        return boin_boundaries(self.target, self.phi1, self.phi2)


def _eliminated_from(
    levels: Sequence[DoseLevelState], target: float, elimination_cutoff: float, min_n_for_elimination: int
) -> int | None:
    # Liu & Yuan 2015 / BOIN R package: if n_j >= 3 and P(p_j > target | data) >
    # 0.95 under a beta(1,1) prior, eliminate dose j and all higher doses.
    for s in levels:
        if s.evaluable >= min_n_for_elimination and (
            _posterior_prob_above(target, s.evaluable, s.dlts) > elimination_cutoff
        ):
            return s.level
    return None


@validated(core.InvalidDesignError, _STATE_ERRORS)
def boin_eliminated_from(
    levels_state: Sequence[DoseLevelState],
    target: Probability,
    elimination_cutoff: Probability = 0.95,
    min_n_for_elimination: PositiveInt = 3,
) -> int | None:
    """Lowest eliminated level, or None.

    Liu & Yuan 2015 / BOIN R package: if n_j >= 3 and P(p_j > target | data) >
    0.95 under a beta(1,1) prior, eliminate dose j and all higher doses.
    """
    return _eliminated_from(core.validate_levels(levels_state), target, elimination_cutoff, min_n_for_elimination)


def _select_mtd(
    target: float,
    levels: Sequence[DoseLevelState],
    elimination_cutoff: float,
    weights: IsotonicWeights,
    min_n_for_elimination: int,
) -> MtdSelection:
    eliminated = _eliminated_from(levels, target, elimination_cutoff, min_n_for_elimination)
    if eliminated == 1:
        return MtdSelection(None, (), "level 1 is eliminated as overly toxic: no MTD selected")
    admissible = [s for s in levels if s.evaluable > 0 and (eliminated is None or s.level < eliminated)]
    if not admissible:
        return MtdSelection(None, (), "no evaluable patient at any admissible level: no MTD selected")
    return select_mtd(target, admissible, weights)


@validated(core.InvalidDesignError, _STATE_ERRORS)
def boin_select_mtd(
    target: Probability,
    levels_state: Sequence[DoseLevelState],
    elimination_cutoff: Probability = 0.95,
    weights: IsotonicWeights = IsotonicWeights.INVERSE_VARIANCE,
    min_n_for_elimination: PositiveInt = 3,
) -> MtdSelection:
    """MTD selection at the end of a BOIN trial (BOIN R/select.mtd.R; Liu & Yuan 2015).

    Over tried (n > 0), non-eliminated levels, isotonic regression and the level
    closest to the target (``isotonic.select_mtd``).  No MTD if level 1 is
    eliminated.  Pending patients are ignored (only evaluable data are used).
    """
    levels = core.validate_levels(levels_state)
    return _select_mtd(target, levels, elimination_cutoff, weights, min_n_for_elimination)


@validated(core.InvalidDesignError, _STATE_ERRORS)
def boin_decide(design: BoinDesign, levels_state: Sequence[DoseLevelState], current_level: int) -> Decision:
    """BOIN decision for the next cohort (Liu & Yuan 2015; Yuan et al. 2016).

    Observed DLT rate at the current level p = y/n: p <= lambda_e -> escalate,
    p >= lambda_d -> de-escalate, otherwise stay.  Never escalate into an
    eliminated level; never move outside 1..K (stay instead).  Stop if level 1
    is eliminated.  When the next cohort would exceed ``max_sample_size`` stop
    and select the MTD by isotonic regression.
    """
    levels = core.validate_levels(levels_state)
    if len(levels) != design.n_dose_levels:
        raise core.InvalidDoseLevelStateError(
            f"levels_state has {len(levels)} levels but the design has n_dose_levels={design.n_dose_levels}"
        )
    if not 1 <= current_level <= len(levels):
        raise core.InvalidDoseLevelStateError(f"current_level must be 1..{len(levels)}, got {current_level!r}")
    b = design.boundaries
    top = len(levels)

    def rule(complete: tuple[DoseLevelState, ...]) -> Decision:
        known = core.summary(complete)
        eliminated = _eliminated_from(complete, design.target, design.elimination_cutoff, design.min_n_for_elimination)
        if eliminated == 1:
            return Decision(
                Action.STOP_LOWEST_DOSE_TOXIC,
                None,
                f"P(DLT rate > {design.target}) > {design.elimination_cutoff} at level 1: "
                f"all doses eliminated. {known}",
            )
        if all(s.evaluable == 0 for s in complete):
            return Decision(Action.START, current_level, f"no patient treated yet: treat a cohort at level {current_level}", None, design.cohort_size)
        cur = complete[current_level - 1]
        ceiling = top if eliminated is None else eliminated - 1  # highest admissible level

        def go(action: Action, level: int, why: str) -> Decision:
            return Decision(action, level, f"{why}. {known}", None, design.cohort_size)

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

    decision = core.resolve_pending(levels, rule)

    def on_cap(proposed: Decision, treated: int) -> Decision:
        selection = _select_mtd(
            design.target, levels, design.elimination_cutoff, IsotonicWeights.INVERSE_VARIANCE,
            design.min_n_for_elimination,
        )
        return Decision(
            action=Action.STOP_MAX_SAMPLE_SIZE,
            next_dose_level=None,
            reason=(
                f"maximum sample size {design.max_sample_size} reached ({treated} treated; next cohort needs "
                f"{proposed.patients_to_enrol}): {selection.reason}. {core.summary(levels)}"
            ),
            mtd=selection.mtd,
        )

    return core.apply_cap(decision, levels, design.max_sample_size, on_cap)
