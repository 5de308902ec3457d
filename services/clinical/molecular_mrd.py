"""Molecular measurable residual disease by BCR::ABL1 qRT-PCR in Ph+ ALL, and the molecular
response it gives.

Sources:
* Foà R, Bassan R, Vitale A, et al. Dasatinib-blinatumomab for Ph-positive acute
  lymphoblastic leukemia in adults (GIMEMA LAL2116 D-ALBA). N Engl J Med
  2020;383:1613-1623: molecular response = complete molecular response (BCR::ABL1 not
  detected) or positive non-quantifiable (PNQ: detected below the assay's quantitative
  range).
* van der Velden VHJ, Cazzaniga G, Schrauder A, et al. Analysis of minimal residual disease
  by Ig/TCR gene rearrangements: guidelines for interpretation of real-time quantitative PCR
  data. Leukemia 2007;21:604-611 (EuroMRD): a result is negative, positive not quantifiable
  (below the quantitative range) or positive and quantifiable.
* Cross NCP, White HE, Colomer D, et al. Laboratory recommendations for scoring deep molecular
  responses following treatment for chronic myeloid leukemia. Leukemia 2015;29:999-1003
  (EUTOS), Table 1: an undetectable BCR::ABL1 is scored at the depth its ABL1 control copies
  allow: at least 10,000 copies for a sensitivity of 10^-4 (MR4), 32,000 (MR4.5), 100,000
  (MR5). Fewer than 10,000 copies cannot show negativity at 10^-4 (NCCN ALL: MRD negativity
  is < 10^-4), so such a result is not evaluable.

The programme using it: seed 001 (NK cells in Ph+ ALL in CHR with MRD), "clinical response
in terms of control of MRD with quantitative RT-PCR, one year from treatment start"; the
protocol's own criterion is not in the seed, so the D-ALBA reading above stands in for it
(infra/tooling/programmes/NK-PHALL-P1.json says so).

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, Percentage, check_fields, validated

__all__ = [
    "InvalidMolecularResultError",
    "MolecularStatus",
    "MolecularResult",
    "molecular_status",
    "molecular_response",
    "undetectable_depth",
    "log_reduction",
    "best_status",
    "MIN_CONTROL_COPIES",
]

# Cross 2015 (EUTOS), Table 1: ABL1 copies for an undetectable result to score MR4, MR4.5, MR5.
MIN_CONTROL_COPIES = 10_000
_DEPTHS = ((100_000, "MR5"), (32_000, "MR4.5"), (10_000, "MR4"))


class InvalidMolecularResultError(ClinicalInputError):
    """A molecular MRD result has an invalid or inconsistent field."""


class MolecularStatus(str, Enum):
    """EuroMRD (van der Velden 2007) reading of one result; NOT_EVALUABLE: undetected at a
    sensitivity below 10^-4 (Cross 2015)."""

    UNDETECTABLE = "undetectable"
    POSITIVE_NOT_QUANTIFIABLE = "positive_not_quantifiable"
    POSITIVE = "positive"
    NOT_EVALUABLE = "not_evaluable"


# deepest first: the order of "best" (D-ALBA: CMR, then PNQ, then quantifiable)
_ORDER = (MolecularStatus.UNDETECTABLE, MolecularStatus.POSITIVE_NOT_QUANTIFIABLE, MolecularStatus.POSITIVE)


@dataclass(frozen=True)
class MolecularResult:
    """One BCR::ABL1 qRT-PCR result: whether the transcript was detected, whether within the
    quantitative range, its ratio to the ABL1 control (%, when quantifiable), and the ABL1
    copies (the sensitivity an undetectable result reached)."""

    detected: bool
    quantifiable: bool
    ratio_pct: Percentage | None = None
    control_copies: Annotated[int, Field(ge=0)] | None = None

    def __post_init__(self) -> None:
        check_fields(self, InvalidMolecularResultError)
        if self.quantifiable and not self.detected:
            raise InvalidMolecularResultError("quantifiable: a transcript not detected cannot be quantified")
        if self.quantifiable and self.ratio_pct is None:
            raise InvalidMolecularResultError("ratio_pct: a quantifiable result gives its ratio to ABL1")
        if not self.quantifiable and self.ratio_pct is not None:
            raise InvalidMolecularResultError(
                f"ratio_pct: {self.ratio_pct} given for a result that was not quantifiable")
        if not self.detected and self.control_copies is None:
            raise InvalidMolecularResultError(
                "control_copies: an undetectable result names its ABL1 copies (the sensitivity it reached)")


@validated(InvalidMolecularResultError)
def molecular_status(result: MolecularResult) -> MolecularStatus:
    """EuroMRD reading (van der Velden 2007); an undetectable result with fewer than 10,000
    ABL1 copies is NOT_EVALUABLE (Cross 2015, sensitivity below 10^-4)."""
    if not result.detected:
        if result.control_copies is not None and result.control_copies >= MIN_CONTROL_COPIES:
            return MolecularStatus.UNDETECTABLE
        return MolecularStatus.NOT_EVALUABLE
    return MolecularStatus.POSITIVE if result.quantifiable else MolecularStatus.POSITIVE_NOT_QUANTIFIABLE


def molecular_response(status: MolecularStatus) -> bool | None:
    """D-ALBA (Foà 2020): a molecular response is an undetectable (complete molecular
    response) or a positive non-quantifiable result; None: not evaluable."""
    if status is MolecularStatus.NOT_EVALUABLE:
        return None
    return status in (MolecularStatus.UNDETECTABLE, MolecularStatus.POSITIVE_NOT_QUANTIFIABLE)


@validated(InvalidMolecularResultError)
def undetectable_depth(control_copies: Annotated[int, Field(ge=0)]) -> str | None:
    """Cross 2015, Table 1: the depth an undetectable result scores, by its ABL1 copies
    (MR4, MR4.5, MR5); None below 10,000 copies."""
    return next((depth for copies, depth in _DEPTHS if control_copies >= copies), None)


@validated(InvalidMolecularResultError)
def log_reduction(baseline_pct: Annotated[float, Field(gt=0, le=100)],
                  ratio_pct: Annotated[float, Field(gt=0, le=100)]) -> float:
    """The reduction from the baseline ratio, in log10 units (positive: fewer transcripts)."""
    return math.log10(baseline_pct / ratio_pct)


def best_status(statuses: Iterable[MolecularStatus]) -> MolecularStatus | None:
    """The deepest evaluable status among `statuses` (CMR, then PNQ, then positive); None
    when none is evaluable."""
    evaluable = [s for s in statuses if s is not MolecularStatus.NOT_EVALUABLE]
    return min(evaluable, key=_ORDER.index) if evaluable else None
