"""Isotonic regression and MTD selection at the end of a dose-escalation trial.

Sources: BOIN R package (Liu S, Yuan Y, CRAN), R/select.mtd.R: posterior means
under a beta(0.05, 0.05) prior, pool-adjacent-violators (PAVA) weighted by the
inverse posterior variance, then the level closest to the target; Liu S, Yuan Y.
J R Stat Soc C 2015;64:507-523.  Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from services.clinical.base import validated
from services.clinical.escalation.core import DoseLevelState, InvalidDesignError

__all__ = ["IsotonicWeights", "MtdSelection", "pava", "select_mtd"]


class IsotonicWeights(StrEnum):
    # BOIN R/select.mtd.R: pava(phat, wt = 1/phat.var) with the posterior
    # variance of a beta(0.05, 0.05) prior.  This is the default.
    INVERSE_VARIANCE = "inverse_variance"
    # Weights = patients treated at the dose (the brief's wording).
    SAMPLE_SIZE = "sample_size"


@validated(InvalidDesignError)
def pava(
    values: Sequence[float], weights: Sequence[Annotated[float, Field(gt=0)]] | None = None
) -> tuple[float, ...]:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators."""
    xs = list(values)
    ws = [1.0] * len(xs) if weights is None else list(weights)
    if len(ws) != len(xs):
        raise InvalidDesignError(f"weights has {len(ws)} entries but values has {len(xs)}")
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


def select_mtd(target: float, admissible: Sequence[DoseLevelState], weights: IsotonicWeights) -> MtdSelection:
    """The level whose isotonic DLT estimate is closest to ``target`` (BOIN R/select.mtd.R).

    ``admissible``: the tried (evaluable > 0), non-eliminated levels, lowest first.
    Posterior means (y+0.05)/(n+0.1) (beta(0.05, 0.05) prior), isotonic regression
    by PAVA, then the level whose estimate is closest to the target.  Ties: if the
    tied estimate is below the target take the highest such level, otherwise the
    lowest (select.mtd docs; reproduces its "+ index * 1e-10" tie-break).
    """
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
