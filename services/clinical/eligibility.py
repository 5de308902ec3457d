"""Programme eligibility criteria as data, and their evaluation against a candidate.

``evaluate(criteria, candidate)`` returns EVERY failed criterion with a human
reason.  A fact needed by an active criterion but not recorded is a failure
("ECOG not recorded"), never a pass.  A criterion set to None is not part of
the programme and is not checked.

Boundaries are inclusive: min_age <= age <= max_age, value <= max_*, value >= min_*.

Example criteria for the seed programmes are module-level constants below.  The
seeds give disease, population and a few thresholds only; every value not in a
seed is left as None ("set from the protocol") rather than invented.
Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, Percentage, check_fields, validated

__all__ = [
    "CARCIK_CD19_RR_BCP_ALL",
    "CD19_CAR_T_REFRACTORY_SLE",
    "Candidate",
    "CreatinineLimit",
    "CreatinineUnit",
    "Criterion",
    "CriterionFailure",
    "Diagnosis",
    "DiseaseStatus",
    "EligibilityCriteria",
    "EligibilityResult",
    "InvalidCandidateError",
    "InvalidCriteriaError",
    "NK_PH_POSITIVE_ALL_MRD",
    "PhStatus",
    "age_in_completed_years",
    "evaluate",
]


class EligibilityError(ClinicalInputError):
    """Base class for invalid eligibility input."""


class InvalidCriteriaError(EligibilityError):
    pass


class InvalidCandidateError(EligibilityError):
    pass


class Diagnosis(StrEnum):
    BCP_ALL = "B-cell precursor ALL"
    T_ALL = "T-cell ALL"
    SLE = "systemic lupus erythematosus"
    JUVENILE_DERMATOMYOSITIS = "juvenile dermatomyositis"


class PhStatus(StrEnum):
    POSITIVE = "Ph+"
    NEGATIVE = "Ph-"


class DiseaseStatus(StrEnum):
    RELAPSED = "relapsed"
    REFRACTORY = "refractory"
    # Complete (haematologic) remission with persistent or recurrent MRD.
    CR_MRD_POSITIVE = "CR with MRD"
    CR_MRD_NEGATIVE = "CR MRD-negative"
    NEWLY_DIAGNOSED = "newly diagnosed"


class Criterion(StrEnum):
    AGE = "age"
    DIAGNOSIS = "diagnosis"
    CD19 = "CD19 expression"
    PH_STATUS = "Philadelphia chromosome"
    DISEASE_STATUS = "disease status"
    PRIOR_LINES = "prior lines of therapy"
    ECOG = "ECOG performance status"
    CREATININE = "creatinine"
    BILIRUBIN = "bilirubin"
    ALT = "ALT"
    AST = "AST"
    LVEF = "LVEF"
    SPO2 = "SpO2"


class CreatinineUnit(StrEnum):
    X_ULN = "x ULN"
    MG_DL = "mg/dL"


Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
# ECOG performance status 0 (fully active) to 5 (dead).
Ecog = Annotated[int, Field(ge=0, le=5)]


@dataclass(frozen=True)
class CreatinineLimit:
    value: Positive
    unit: CreatinineUnit

    def __post_init__(self) -> None:
        check_fields(self, InvalidCriteriaError)


@dataclass(frozen=True)
class EligibilityCriteria:
    """A programme's criteria.  None = criterion not used by the programme."""

    name: str
    min_age: Annotated[float, Field(ge=0, le=120)] | None = None
    max_age: Annotated[float, Field(ge=0, le=120)] | None = None
    # Disjunction "age >= min_age OR not eligible for other (post-remission)
    # treatment", as in seed 001.  Only meaningful with min_age.
    min_age_waived_if_ineligible_for_other_treatment: bool = False
    diagnoses: Annotated[frozenset[Diagnosis], Field(min_length=1)] | None = None
    cd19_required: bool = False
    ph_status: PhStatus | None = None
    disease_statuses: Annotated[frozenset[DiseaseStatus], Field(min_length=1)] | None = None
    min_prior_lines: Annotated[int, Field(ge=0)] | None = None
    max_ecog: Ecog | None = None
    max_creatinine: CreatinineLimit | None = None
    max_bilirubin_x_uln: Positive | None = None
    max_alt_x_uln: Positive | None = None
    max_ast_x_uln: Positive | None = None
    min_lvef_pct: Annotated[float, Field(gt=0, le=100)] | None = None
    min_spo2_pct: Annotated[float, Field(gt=0, le=100)] | None = None

    def __post_init__(self) -> None:
        for name in ("diagnoses", "disease_statuses"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, frozenset(getattr(self, name)))
        check_fields(self, InvalidCriteriaError)
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise InvalidCriteriaError(f"min_age {self.min_age} is above max_age {self.max_age}")
        if self.min_age_waived_if_ineligible_for_other_treatment and self.min_age is None:
            raise InvalidCriteriaError(
                "min_age_waived_if_ineligible_for_other_treatment=True needs a min_age, got min_age=None"
            )


@dataclass(frozen=True)
class Candidate:
    """A candidate's facts.  None = not recorded."""

    age_years: Annotated[float, Field(ge=0, le=130)] | None = None
    diagnosis: Diagnosis | None = None
    cd19_positive: bool | None = None
    ph_status: PhStatus | None = None
    disease_status: DiseaseStatus | None = None
    prior_lines: Annotated[int, Field(ge=0)] | None = None
    eligible_for_other_treatment: bool | None = None
    ecog: Ecog | None = None
    creatinine_mg_dl: NonNegative | None = None
    creatinine_uln_mg_dl: Positive | None = None
    bilirubin_x_uln: NonNegative | None = None
    alt_x_uln: NonNegative | None = None
    ast_x_uln: NonNegative | None = None
    lvef_pct: Percentage | None = None
    spo2_pct: Percentage | None = None

    def __post_init__(self) -> None:
        check_fields(self, InvalidCandidateError)


@dataclass(frozen=True)
class CriterionFailure:
    criterion: Criterion
    reason: str


@dataclass(frozen=True)
class EligibilityResult:
    eligible: bool
    failures: tuple[CriterionFailure, ...]


@validated(InvalidCandidateError)
def age_in_completed_years(date_of_birth: date, on: date) -> int:
    """Age in completed years on a given date (a birthday counts on the day itself)."""
    if date_of_birth > on:
        raise InvalidCandidateError(f"date_of_birth {date_of_birth} is after {on}")
    return on.year - date_of_birth.year - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))


def _fmt(value: float) -> str:
    return f"{value:g}"


def _check_age(c: EligibilityCriteria, p: Candidate) -> list[str]:
    out: list[str] = []
    if c.min_age is None and c.max_age is None:
        return out
    if p.age_years is None:
        if c.min_age_waived_if_ineligible_for_other_treatment:
            if p.eligible_for_other_treatment is False and c.max_age is None:
                return out  # the waiver alone satisfies the minimum; there is no maximum
            if p.eligible_for_other_treatment is None:
                return ["age not recorded and eligibility for other treatment not recorded"]
        return ["age not recorded"]
    age = p.age_years
    if c.min_age is not None and age < c.min_age:
        if not c.min_age_waived_if_ineligible_for_other_treatment:
            out.append(f"age {_fmt(age)} is below the minimum {_fmt(c.min_age)}")
        elif p.eligible_for_other_treatment is None:
            out.append(
                f"age {_fmt(age)} is below {_fmt(c.min_age)} and eligibility for other treatment "
                "is not recorded (needed for the age waiver)"
            )
        elif p.eligible_for_other_treatment:
            out.append(
                f"age {_fmt(age)} is below {_fmt(c.min_age)} and the candidate is eligible for other treatment"
            )
    if c.max_age is not None and age > c.max_age:
        out.append(f"age {_fmt(age)} is above the maximum {_fmt(c.max_age)}")
    return out


def _check_max(label: str, value: float | None, limit: float | None, unit: str) -> list[str]:
    if limit is None:
        return []
    if value is None:
        return [f"{label} not recorded"]
    if value > limit:
        return [f"{label} {_fmt(value)}{unit} exceeds the maximum {_fmt(limit)}{unit}"]
    return []


def _check_min(label: str, value: float | None, limit: float | None, unit: str) -> list[str]:
    if limit is None:
        return []
    if value is None:
        return [f"{label} not recorded"]
    if value < limit:
        return [f"{label} {_fmt(value)}{unit} is below the minimum {_fmt(limit)}{unit}"]
    return []


def _check_creatinine(c: EligibilityCriteria, p: Candidate) -> list[str]:
    limit = c.max_creatinine
    if limit is None:
        return []
    if limit.unit is CreatinineUnit.MG_DL:
        return _check_max("creatinine", p.creatinine_mg_dl, limit.value, " mg/dL")
    if p.creatinine_mg_dl is None:
        return ["creatinine not recorded"]
    if p.creatinine_uln_mg_dl is None:
        return ["creatinine upper limit of normal not recorded (needed for x ULN)"]
    ratio = p.creatinine_mg_dl / p.creatinine_uln_mg_dl
    return _check_max("creatinine", round(ratio, 6), limit.value, " x ULN")


@validated(InvalidCriteriaError, {"candidate": InvalidCandidateError})
def evaluate(criteria: EligibilityCriteria, candidate: Candidate) -> EligibilityResult:
    """Evaluate every criterion; return all failures with human reasons."""
    c, p = criteria, candidate
    failures: list[CriterionFailure] = []

    def add(criterion: Criterion, reasons: list[str]) -> None:
        failures.extend(CriterionFailure(criterion, r) for r in reasons)

    add(Criterion.AGE, _check_age(c, p))
    if c.diagnoses is not None:
        allowed = " or ".join(sorted(d.value for d in c.diagnoses))
        if p.diagnosis is None:
            add(Criterion.DIAGNOSIS, ["diagnosis not recorded"])
        elif p.diagnosis not in c.diagnoses:
            add(Criterion.DIAGNOSIS, [f"diagnosis {p.diagnosis.value} is not {allowed}"])
    if c.cd19_required:
        if p.cd19_positive is None:
            add(Criterion.CD19, ["CD19 expression not recorded"])
        elif not p.cd19_positive:
            add(Criterion.CD19, ["disease is CD19-negative; CD19 expression is required"])
    if c.ph_status is not None:
        if p.ph_status is None:
            add(Criterion.PH_STATUS, ["Philadelphia chromosome status not recorded"])
        elif p.ph_status is not c.ph_status:
            add(Criterion.PH_STATUS, [f"Philadelphia status {p.ph_status.value}; {c.ph_status.value} is required"])
    if c.disease_statuses is not None:
        allowed = " or ".join(sorted(s.value for s in c.disease_statuses))
        if p.disease_status is None:
            add(Criterion.DISEASE_STATUS, ["disease status not recorded"])
        elif p.disease_status not in c.disease_statuses:
            add(Criterion.DISEASE_STATUS, [f"disease status {p.disease_status.value} is not {allowed}"])
    if c.min_prior_lines is not None:
        if p.prior_lines is None:
            add(Criterion.PRIOR_LINES, ["prior lines of therapy not recorded"])
        elif p.prior_lines < c.min_prior_lines:
            add(Criterion.PRIOR_LINES, [f"{p.prior_lines} prior lines is below the minimum {c.min_prior_lines}"])
    if c.max_ecog is not None:
        if p.ecog is None:
            add(Criterion.ECOG, ["ECOG not recorded"])
        elif p.ecog > c.max_ecog:
            add(Criterion.ECOG, [f"ECOG {p.ecog} exceeds the maximum {c.max_ecog}"])
    add(Criterion.CREATININE, _check_creatinine(c, p))
    add(Criterion.BILIRUBIN, _check_max("bilirubin", p.bilirubin_x_uln, c.max_bilirubin_x_uln, " x ULN"))
    add(Criterion.ALT, _check_max("ALT", p.alt_x_uln, c.max_alt_x_uln, " x ULN"))
    add(Criterion.AST, _check_max("AST", p.ast_x_uln, c.max_ast_x_uln, " x ULN"))
    add(Criterion.LVEF, _check_min("LVEF", p.lvef_pct, c.min_lvef_pct, "%"))
    add(Criterion.SPO2, _check_min("SpO2", p.spo2_pct, c.min_spo2_pct, "%"))
    return EligibilityResult(eligible=not failures, failures=tuple(failures))


# --------------------------------------------------------------------------- seed programmes
# Only what the seeds state is filled in; organ-function, ECOG and exact age
# limits are not in any seed and stay None until taken from the protocol.

# Seed 000: "Residual Disease Driven Strategy for CARCIK (CD19) in Adults/Pediatric
# BCP-ALL" -- "adult and pediatric patients with r/r BCP-ALL".  CD19 positivity is
# inferred from the CD19-directed product (PTG-CARCIK-CD19), not stated as a criterion.
CARCIK_CD19_RR_BCP_ALL = EligibilityCriteria(
    name="CARCIK-CD19, r/r BCP-ALL, adult and paediatric (seed 000)",
    diagnoses=frozenset({Diagnosis.BCP_ALL}),
    cd19_required=True,
    disease_statuses=frozenset({DiseaseStatus.RELAPSED, DiseaseStatus.REFRACTORY}),
)

# Seed 001: "patients with Ph+ acute lymphoblastic leukemia (ALL) in complete
# hematologic remission (CHR) but with persistent/recurrent minimal residual
# disease (MRD) >=60 years or not eligible for other post-CHR treatment
# modalities".  Lineage is not restricted by the seed.
NK_PH_POSITIVE_ALL_MRD = EligibilityCriteria(
    name="Autologous NK cells, Ph+ ALL in CHR with MRD (seed 001)",
    min_age=60,
    min_age_waived_if_ineligible_for_other_treatment=True,
    diagnoses=frozenset({Diagnosis.BCP_ALL, Diagnosis.T_ALL}),
    ph_status=PhStatus.POSITIVE,
    disease_statuses=frozenset({DiseaseStatus.CR_MRD_POSITIVE}),
)

# Seed 003: "CD19-Targeted CAR T Cells in Refractory Systemic Lupus
# Erythematosus" / "Anti-CD19 CAR T cell therapy for refractory systemic lupus
# erythematosus" (SLE classified by 2019 EULAR/ACR criteria per the seed's table).
# CD19 is the product's target on B cells, not a disease marker to test: not required.
CD19_CAR_T_REFRACTORY_SLE = EligibilityCriteria(
    name="CD19 CAR-T, refractory SLE (seed 003)",
    diagnoses=frozenset({Diagnosis.SLE}),
    disease_statuses=frozenset({DiseaseStatus.REFRACTORY}),
)
