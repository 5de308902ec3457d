"""A programme's protocol as data (issue 10 item 1): one definition per programme, versioned,
published as an event so the log records which version was in force when.

The definition is the wire format; its clinical sections are the parameters of the clinical
rules (services/clinical: `eligibility.EligibilityCriteria`, `lymphodepletion`,
`cell_dose.CellDoseProgramme`, `second_infusion.SecondInfusionPolicy`, the escalation
designs), field for field, and enrollment refuses a definition those rules refuse
(services/enrollment/domain/programmes.py). Bundled definitions, one per seed:
`infra/tooling/programmes/*.json`; published with `celltrail programmes publish FILE`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from contracts.base import Contract
from contracts.ids import ProgrammeId

Text = Annotated[str, Field(min_length=1, max_length=500)]


class ProductKind(StrEnum):
    """The kinds of product of the seeds (issue 9): how a programme's product is made."""

    AUTOLOGOUS_CRYOPRESERVED = "autologous_cryopreserved"  # seed 002: CAR-T, frozen, thawed at the bedside
    DONOR_DERIVED = "donor_derived"  # seed 000: CAR-CIK from the donor, first and second infusion
    AUTOLOGOUS_EXPANDED_NK = "autologous_expanded_nk"  # seed 001: NK cells, several infusions
    AUTOLOGOUS_FRESH = "autologous_fresh"  # seed 003: fresh to fresh, no cryopreservation


class EscalationDesignKind(StrEnum):
    THREE_PLUS_THREE = "3+3"
    BOIN = "boin"


class DoseLevel(Contract):
    """One dose level: a dose per kilogram of body weight, or a flat dose (cells); neither when
    the source does not state it (then it is set from the protocol, never invented)."""

    level: Annotated[int, Field(ge=-3, le=20)]  # 1 = the lowest planned; -1 a de-escalation level
    cells_per_kg: Annotated[float, Field(gt=0)] | None = None
    flat_cells: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> "DoseLevel":
        if self.cells_per_kg is not None and self.flat_cells is not None:
            raise ValueError(f"dose level {self.level} gives cells_per_kg or flat_cells, not both")
        return self


class DltRule(Contract):
    """The protocol's definition of a dose-limiting toxicity (services/clinical/escalation/
    dlt.DltDefinition, field for field): the lowest CTCAE v5 grade that is dose-limiting for a
    non-haematological and a haematological toxicity, the terms counted as haematological, the
    weakest attribution to the product that counts; `source`: where it comes from."""

    min_grade: Annotated[int, Field(ge=1, le=5)] = 3
    min_grade_haematological: Annotated[int, Field(ge=1, le=5)] = 4
    haematological_terms: Annotated[list[Annotated[str, Field(min_length=2, max_length=120)]],
                                    Field(max_length=100)] = Field(default_factory=list)
    min_attribution: Literal["unrelated", "unlikely", "possible", "probable", "definite"] = "possible"
    source: Text


class Escalation(Contract):
    """The dose-escalation design and its parameters (services/clinical/escalation); `dlt_rule`:
    which adverse events in the window are dose-limiting (None: the investigator's evaluation
    alone, as before)."""

    design: EscalationDesignKind
    max_sample_size: Annotated[int, Field(ge=1)] | None = None
    cohort_size: Annotated[int, Field(ge=1, le=12)] = 3
    target_dlt_rate: Annotated[float, Field(gt=0, lt=1)] | None = None  # BOIN's target
    dlt_window_days: Annotated[int, Field(ge=1, le=365)]
    dlt_rule: DltRule | None = None

    @model_validator(mode="after")
    def _target(self) -> "Escalation":
        if (self.design is EscalationDesignKind.BOIN) != (self.target_dlt_rate is not None):
            raise ValueError("a BOIN design, and only it, names its target_dlt_rate")
        return self


class ScheduledAssessment(Contract):
    """An assessment of the schedule: on a study day (day 0: the first infusion), or at a month
    after it, as the protocol names it."""

    assessment: Text
    study_day: Annotated[int, Field(ge=-60, le=3650)] | None = None
    month: Annotated[int, Field(ge=1, le=120)] | None = None

    @model_validator(mode="after")
    def _when(self) -> "ScheduledAssessment":
        if (self.study_day is None) == (self.month is None):
            raise ValueError(f"assessment {self.assessment!r} is on a study_day or at a month, one of them")
        return self

    def order(self) -> float:
        return self.study_day if self.study_day is not None else self.month * 30.4375  # type: ignore[operator]


class ResponseCriteria(StrEnum):
    """Which criteria a programme reads response by (issue 11 item 3)."""

    # NCCN ALL CR/CRi from marrow and blood (`RecordResponseAssessment`,
    # services/clinical/response_all.py)
    ALL = "nccn_all"
    # molecular response of BCR::ABL1 by qRT-PCR (`molecular_mrd` observations,
    # services/clinical/molecular_mrd.py)
    BCR_ABL1 = "bcr_abl1_qrt_pcr"
    # SLEDAI-2K and DORIS remission (`lupus_assessment` observations, services/clinical/doris.py)
    SLE = "sledai_doris"


class ResponseReading(StrEnum):
    """What makes a responder, within the programme's criteria."""

    CR_CRI = "cr_cri"  # NCCN ALL: CR or CRi
    MRD_NEGATIVE_CR = "mrd_negative_cr"  # NCCN ALL: CR or CRi with MRD < 0.01 %
    MORPHOLOGY = "morphology"  # seed 000: marrow lymphoblasts < 5 % by morphology
    FLOW_CYTOMETRY = "flow_cytometry"  # seed 000: < 5 % by flow cytometry
    MOLECULAR = "molecular"  # seed 000: molecular disease positivity < 0.01 %
    MOLECULAR_RESPONSE = "molecular_response"  # BCR::ABL1 undetectable or positive not quantifiable
    DORIS_REMISSION = "doris_remission"  # DORIS 2021 remission


READINGS_OF: dict[ResponseCriteria, frozenset[ResponseReading]] = {
    ResponseCriteria.ALL: frozenset({ResponseReading.CR_CRI, ResponseReading.MRD_NEGATIVE_CR,
                                     ResponseReading.MORPHOLOGY, ResponseReading.FLOW_CYTOMETRY,
                                     ResponseReading.MOLECULAR}),
    ResponseCriteria.BCR_ABL1: frozenset({ResponseReading.MOLECULAR_RESPONSE}),
    ResponseCriteria.SLE: frozenset({ResponseReading.DORIS_REMISSION}),
}


class ResponseDefinition(Contract):
    """How the programme's protocol defines response (issue 11 item 3): by which criteria, what
    makes a responder, at which landmark (the day-28 response: the assessment closest to day 28,
    days 21 to 35) and the best response within a window after the first infusion (days; for
    example CR or CRi within 3 months). `source`: where the definition comes from."""

    criteria: ResponseCriteria
    responder: ResponseReading
    landmark_day: Literal[28] | None = None
    best_within_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    source: Text

    @model_validator(mode="after")
    def _consistent(self) -> "ResponseDefinition":
        if self.responder not in READINGS_OF[self.criteria]:
            allowed = ", ".join(sorted(r.value for r in READINGS_OF[self.criteria]))
            raise ValueError(f"responder {self.responder.value!r} is not read by {self.criteria.value} "
                             f"(one of: {allowed})")
        if self.landmark_day is not None and self.criteria is not ResponseCriteria.ALL:
            raise ValueError(f"a day-{self.landmark_day} landmark is read from ALL response assessments "
                             f"(criteria {ResponseCriteria.ALL.value}), not {self.criteria.value}")
        return self


class EndpointDefinition(Contract):
    endpoint: Text
    definition: Annotated[str, Field(min_length=1, max_length=2000)]
    window_days: Annotated[int, Field(ge=0, le=3650)] | None = None  # from the first infusion


class ProgrammeDefinition(Contract):
    """What a programme's protocol says the services obey. `source`: where it comes from (the
    protocol, its registry entry, the seed). Sections a programme does not have are None
    (seed 001: no lymphodepletion; seeds 002 and 003: no escalation)."""

    programme_id: ProgrammeId
    title: Text
    source: Text
    product_kind: ProductKind
    # services/clinical/eligibility.EligibilityCriteria, field for field (`name` aside)
    eligibility: dict[str, Any]
    # services/clinical/lymphodepletion.LymphodepletionRegimen: {"agents": [{"agent",
    # "mg_per_m2_per_day", "study_days"}, ...], "infusion_window_days": [earliest, latest]
    # (days from the last administration to the infusion), "source"}; None: no conditioning
    lymphodepletion: dict[str, Any] | None = None
    dose_levels: Annotated[list[DoseLevel], Field(min_length=1, max_length=20)]
    # services/clinical/cell_dose.CellDoseProgramme.tolerance_fraction: the prescribed dose's
    # allowed relative deviation; None: not stated by the source
    cell_dose_tolerance_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None
    escalation: Escalation | None = None
    # how many infusions the protocol plans at most; None: the source states no number (seed
    # 001's "infusion of escalating doses", given as several), set from the protocol
    max_infusions: Annotated[int, Field(ge=1, le=20)] | None
    # services/clinical/second_infusion.SecondInfusionPolicy, field for field; None: no
    # second infusion policy
    second_infusion: dict[str, Any] | None = None
    assessments: Annotated[list[ScheduledAssessment], Field(min_length=1, max_length=100)]
    endpoints: Annotated[list[EndpointDefinition], Field(min_length=1, max_length=50)]
    grading: Annotated[list[Text], Field(min_length=1, max_length=20)]  # e.g. "ASTCT 2019 (CRS, ICANS)"
    # how the protocol defines response (issue 11 item 3); None: not stated (read as NCCN ALL
    # CR or CRi at day 28, as before definitions carried it)
    response: ResponseDefinition | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "ProgrammeDefinition":
        levels = [d.level for d in self.dose_levels]
        if len(set(levels)) != len(levels):
            raise ValueError(f"dose levels repeat: {levels}")
        if self.second_infusion is not None and self.max_infusions is not None and self.max_infusions < 2:
            raise ValueError("a second-infusion policy needs max_infusions of at least 2")
        days = [a.order() for a in self.assessments]
        if days != sorted(days):
            raise ValueError("assessments go in the order of their study days and months")
        return self

    def dosing(self) -> "Dosing":
        return Dosing(title=self.title, lymphodepletion=self.lymphodepletion, dose_levels=self.dose_levels,
                      cell_dose_tolerance_fraction=self.cell_dose_tolerance_fraction)


class Dosing(Contract):
    """What the infusion service obeys of a subject's programme version (carried on
    `SubjectEnrolled`, so the subject keeps its own): the lymphodepletion regimen and its
    infusion window, the dose levels and the cell dose's tolerance, as the definition gives
    them."""

    title: Text
    lymphodepletion: dict[str, Any] | None = None
    dose_levels: Annotated[list[DoseLevel], Field(min_length=1, max_length=20)]
    cell_dose_tolerance_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None

    def level(self, level: int) -> DoseLevel | None:
        return next((d for d in self.dose_levels if d.level == level), None)
