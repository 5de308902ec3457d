"""Response assessment in B-cell acute lymphoblastic leukaemia (ALL).

Sources:
* NCCN Clinical Practice Guidelines in Oncology, Acute Lymphoblastic
  Leukemia, section "Response Assessment" (response criteria for blood and
  bone marrow; MRD; relapse):
    CR  - no circulating blasts; no extramedullary disease; < 5 % marrow
          blasts; ANC 1000/uL and platelets 100,000/uL recovered;
    CRi - as CR but counts not recovered (ANC or platelets below);
    relapse - reappearance of blasts in the blood or >= 5 % blasts in the
          marrow or extramedullary disease after a CR;
    MRD negativity at < 0.01 % (10^-4).
  Count thresholds are encoded as ">= 1000/uL" and ">= 100,000/uL", as in
  the CIBMTR Forms Manual ALL response criteria and Cheson/BMT CTN ALL
  criteria (Biol Blood Marrow Transplant 2010;16:1187-1211, Table 4a:
  "ANC >= 1.0 x 10^9/L", "platelet count >= 100 x 10^9/L").
  Not encoded (not among the inputs): trilineage haematopoiesis and the
  "no recurrence for 4 weeks" durability condition.
* CAR-CIK protocol (seed /work/shared/seeds/000: "Residual Disease Driven
  Strategy for CARCIK (CD19) in Adults/Pediatric BCP-ALL", phase II), primary
  outcome read three ways at day 28 after the first infusion: lymphoblasts
  < 5 % on bone-marrow morphology; < 5 % on bone-marrow flow cytometry;
  molecular disease positivity < 0.01 %.

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from services.clinical.base import CellsPerUl, ClinicalInputError, Percentage, check_fields, validated

__all__ = [
    "InvalidResponseAssessmentError",
    "PriorStatus",
    "ResponseCategory",
    "MrdStatus",
    "AllAssessment",
    "AllResponse",
    "all_response",
    "CarCikDay28Readings",
    "carcik_day28_readings",
    "MARROW_BLAST_CR_LIMIT_PCT",
    "ANC_RECOVERED_PER_UL",
    "PLATELETS_RECOVERED_PER_UL",
    "MRD_NEGATIVE_LIMIT_PCT",
]


class InvalidResponseAssessmentError(ClinicalInputError):
    """An ALL response assessment has an invalid field."""


# NCCN ALL, Response Assessment: CR requires < 5 % marrow blasts; relapse is
# >= 5 % marrow blasts after CR.  Also the CAR-CIK morphology/flow readings.
MARROW_BLAST_CR_LIMIT_PCT = 5.0
# NCCN ALL, Response Assessment: CR counts (ANC 1000/uL, platelets 100,000/uL).
ANC_RECOVERED_PER_UL = 1000.0
PLATELETS_RECOVERED_PER_UL = 100_000.0
# NCCN ALL, MRD: MRD negativity < 0.01 % (1 leukaemic cell in 10^4);
# CAR-CIK protocol molecular reading "< 0.01 %".
MRD_NEGATIVE_LIMIT_PCT = 0.01


class PriorStatus(Enum):
    """Best status before this assessment (needed to call relapse)."""

    NOT_IN_REMISSION = "not_in_remission"
    # CR or CRi with MRD positive or unknown
    HAEMATOLOGICAL_REMISSION = "haematological_remission"
    # CR or CRi with MRD < 0.01 %
    MRD_NEGATIVE_REMISSION = "mrd_negative_remission"


class ResponseCategory(str, Enum):
    CR = "complete_remission"
    CRI = "complete_remission_incomplete_count_recovery"
    NO_RESPONSE = "no_response"
    HAEMATOLOGICAL_RELAPSE = "haematological_relapse"
    MOLECULAR_RELAPSE = "molecular_relapse"


class MrdStatus(str, Enum):
    NEGATIVE = "negative"
    POSITIVE = "positive"
    NOT_ASSESSED = "not_assessed"


@dataclass(frozen=True)
class AllAssessment:
    """One disease assessment.  MRD values are % of marrow cells (optional)."""

    marrow_blasts_pct: Percentage
    circulating_blasts: bool
    extramedullary_disease: bool
    anc_per_ul: CellsPerUl
    platelets_per_ul: CellsPerUl
    flow_mrd_pct: Percentage | None = None
    molecular_mrd_pct: Percentage | None = None

    def __post_init__(self) -> None:
        check_fields(self, InvalidResponseAssessmentError)

    @property
    def mrd_status(self) -> MrdStatus:
        """NEGATIVE only if every MRD value supplied is < 0.01 %; POSITIVE if
        any is >= 0.01 %; NOT_ASSESSED if none was supplied."""
        values = [v for v in (self.flow_mrd_pct, self.molecular_mrd_pct) if v is not None]
        if not values:
            return MrdStatus.NOT_ASSESSED
        if any(v >= MRD_NEGATIVE_LIMIT_PCT for v in values):
            return MrdStatus.POSITIVE
        return MrdStatus.NEGATIVE


@dataclass(frozen=True)
class AllResponse:
    category: ResponseCategory
    mrd: MrdStatus

    @property
    def mrd_negative_cr(self) -> bool:
        """NCCN ALL: CR with MRD < 0.01 %."""
        return self.category is ResponseCategory.CR and self.mrd is MrdStatus.NEGATIVE


@validated(InvalidResponseAssessmentError)
def all_response(
    assessment: AllAssessment, prior: PriorStatus = PriorStatus.NOT_IN_REMISSION
) -> AllResponse:
    """NCCN ALL response category for one assessment, given the prior status."""
    mrd = assessment.mrd_status
    in_remission_before = prior is not PriorStatus.NOT_IN_REMISSION

    # NCCN ALL, CR: < 5 % marrow blasts, no circulating blasts, no
    # extramedullary disease.
    morphologic_remission = (
        assessment.marrow_blasts_pct < MARROW_BLAST_CR_LIMIT_PCT
        and not assessment.circulating_blasts
        and not assessment.extramedullary_disease
    )
    if not morphologic_remission:
        # NCCN ALL, relapse: reappearance of blasts in the blood or >= 5 % in
        # the marrow or extramedullary disease after a CR.
        category = (
            ResponseCategory.HAEMATOLOGICAL_RELAPSE
            if in_remission_before
            else ResponseCategory.NO_RESPONSE
        )
        return AllResponse(category, mrd)

    # NCCN ALL, MRD relapse: MRD negativity converting to MRD >= 0.01 % while
    # the patient remains in haematological remission.
    if prior is PriorStatus.MRD_NEGATIVE_REMISSION and mrd is MrdStatus.POSITIVE:
        return AllResponse(ResponseCategory.MOLECULAR_RELAPSE, mrd)

    # NCCN ALL: CR needs ANC and platelet recovery; otherwise CRi.
    counts_recovered = (
        assessment.anc_per_ul >= ANC_RECOVERED_PER_UL
        and assessment.platelets_per_ul >= PLATELETS_RECOVERED_PER_UL
    )
    return AllResponse(ResponseCategory.CR if counts_recovered else ResponseCategory.CRI, mrd)


@dataclass(frozen=True)
class CarCikDay28Readings:
    """The CAR-CIK protocol's three response readings (True = responder,
    None = measurement not available)."""

    morphology_response: bool
    flow_response: bool | None
    molecular_response: bool | None


@validated(InvalidResponseAssessmentError)
def carcik_day28_readings(assessment: AllAssessment) -> CarCikDay28Readings:
    """CAR-CIK protocol (seed 000), primary outcome at day 28:
    morphology: marrow lymphoblasts < 5 %; flow cytometry: marrow
    lymphoblasts < 5 % (read from ``flow_mrd_pct``); molecular: disease
    positivity < 0.01 % (``molecular_mrd_pct``)."""
    flow = assessment.flow_mrd_pct
    mol = assessment.molecular_mrd_pct
    return CarCikDay28Readings(
        morphology_response=assessment.marrow_blasts_pct < MARROW_BLAST_CR_LIMIT_PCT,
        flow_response=None if flow is None else flow < MARROW_BLAST_CR_LIMIT_PCT,
        molecular_response=None if mol is None else mol < MRD_NEGATIVE_LIMIT_PCT,
    )
