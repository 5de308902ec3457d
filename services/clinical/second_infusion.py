"""Second CARCIK-CD19 infusion: residual-disease-driven strategy (seed 000).

Seed 000 (phase II, CARCIK-CD19 in adult and paediatric r/r BCP-ALL) describes
"a therapeutic strategy that allows a second CARCIK-CD19 cells infusion, driven
by the status of disease from one month after the first infusion" and assesses
disease at day 28 by three methods:
  * morphology: "lymphoblasts < 5% at morphological evaluation of bone marrow aspirate"
  * flow cytometry: "lymphoblasts < 5% at flow cytometry bone marrow evaluation"
  * molecular: "molecular evaluation of disease positivity < 0.01%"
The seed does NOT spell out the decision rule.  It is therefore a programme
parameter (``SecondInfusionPolicy``) whose documented default is:
  * residual disease shown by ANY of the qualifying methods (a reading at or
    above its threshold; below the threshold is the seed's response criterion), and
  * no unresolved toxicity of grade >= 3 (CTCAE-style grades 1-5).
Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import Field, SkipValidation, StringConstraints

from services.clinical.base import ClinicalInputError, Percentage, check, check_fields, validated

__all__ = [
    "Day28Assessment",
    "DiseaseMethod",
    "InvalidAssessmentError",
    "InvalidPolicyError",
    "InvalidToxicityError",
    "SecondInfusionEligibility",
    "SecondInfusionPolicy",
    "ToxicityEvent",
    "CARCIK_CD19_DEFAULT_POLICY",
    "evaluate_second_infusion",
]


class SecondInfusionError(ClinicalInputError):
    """Base class for invalid input to the second-infusion rule."""


class InvalidAssessmentError(SecondInfusionError):
    pass


class InvalidToxicityError(SecondInfusionError):
    pass


class InvalidPolicyError(SecondInfusionError):
    pass


class DiseaseMethod(StrEnum):
    MORPHOLOGY = "morphology"
    FLOW_CYTOMETRY = "flow cytometry"
    MOLECULAR = "molecular MRD"


# CTCAE grades run 1 (mild) to 5 (death); ASTCT CRS/ICANS grades 1-4 fit inside.
ToxicityGrade = Annotated[int, Field(ge=1, le=5)]
# A response threshold: a percentage above 0.
ThresholdPct = Annotated[float, Field(gt=0, le=100)]


@dataclass(frozen=True)
class Day28Assessment:
    """Bone-marrow readings at day 28 after the first infusion (None = not done / not recorded)."""

    morphology_blasts_pct: Percentage | None = None
    flow_blasts_pct: Percentage | None = None
    molecular_mrd_pct: Percentage | None = None

    def __post_init__(self) -> None:
        check_fields(self, InvalidAssessmentError)

    def reading(self, method: DiseaseMethod) -> float | None:
        return {
            DiseaseMethod.MORPHOLOGY: self.morphology_blasts_pct,
            DiseaseMethod.FLOW_CYTOMETRY: self.flow_blasts_pct,
            DiseaseMethod.MOLECULAR: self.molecular_mrd_pct,
        }[method]


@dataclass(frozen=True)
class ToxicityEvent:
    """An adverse event since the first infusion: type, grade (1-5), resolved or not."""

    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    grade: ToxicityGrade
    resolved: bool

    def __post_init__(self) -> None:
        check_fields(self, InvalidToxicityError)


@dataclass(frozen=True)
class SecondInfusionPolicy:
    """Programme parameters of the second-infusion rule (defaults documented in the module docstring)."""

    # Thresholds from seed 000 (response = reading below the threshold).
    morphology_threshold_pct: ThresholdPct = 5.0
    flow_threshold_pct: ThresholdPct = 5.0
    molecular_threshold_pct: ThresholdPct = 0.01
    # Residual disease by ANY of these methods qualifies (default: all three).
    qualifying_methods: Annotated[frozenset[DiseaseMethod], Field(min_length=1)] = field(
        default_factory=lambda: frozenset(DiseaseMethod)
    )
    # An UNRESOLVED toxicity of this grade or higher blocks the second infusion.
    blocking_grade: ToxicityGrade = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "qualifying_methods", frozenset(self.qualifying_methods))
        check_fields(self, InvalidPolicyError)

    def threshold(self, method: DiseaseMethod) -> float:
        return {
            DiseaseMethod.MORPHOLOGY: self.morphology_threshold_pct,
            DiseaseMethod.FLOW_CYTOMETRY: self.flow_threshold_pct,
            DiseaseMethod.MOLECULAR: self.molecular_threshold_pct,
        }[method]


CARCIK_CD19_DEFAULT_POLICY = SecondInfusionPolicy()


@dataclass(frozen=True)
class SecondInfusionEligibility:
    allowed: bool
    reasons: tuple[str, ...]


_ORDER = (DiseaseMethod.MORPHOLOGY, DiseaseMethod.FLOW_CYTOMETRY, DiseaseMethod.MOLECULAR)


@validated(InvalidAssessmentError, {"policy": InvalidPolicyError})
def evaluate_second_infusion(
    assessment: Day28Assessment,
    toxicities: SkipValidation[Iterable[ToxicityEvent]],
    policy: SecondInfusionPolicy = CARCIK_CD19_DEFAULT_POLICY,
) -> SecondInfusionEligibility:
    """Whether a second infusion is allowed, with every reason for and against.

    Allowed only if (a) at least one qualifying reading shows residual disease
    (reading >= its threshold) and (b) no toxicity of grade >= blocking_grade
    is unresolved.  A grade-5 event always blocks.  If every qualifying
    reading is missing, the answer is "not allowed" and the reason names the
    missing assessments.
    """
    events = tuple(toxicities)
    check("toxicities", events, tuple[ToxicityEvent, ...], InvalidToxicityError)

    reasons: list[str] = []
    methods = [m for m in _ORDER if m in policy.qualifying_methods]
    missing = [m for m in methods if assessment.reading(m) is None]
    positive: list[DiseaseMethod] = []
    for m in methods:
        value = assessment.reading(m)
        if value is None:
            continue
        threshold = policy.threshold(m)
        if value >= threshold:
            positive.append(m)
            reasons.append(f"residual disease by {m.value}: {value:g}% >= {threshold:g}%")
        else:
            reasons.append(f"no residual disease by {m.value}: {value:g}% < {threshold:g}%")

    disease_ok = bool(positive)
    if len(missing) == len(methods):
        reasons.append(
            "no day-28 disease assessment recorded: " + ", ".join(m.value for m in missing) + " missing"
        )
    elif missing and not positive:
        reasons.append(
            "residual disease not shown by the available readings; missing: "
            + ", ".join(m.value for m in missing)
        )
    elif missing:
        reasons.append("not recorded (not needed for this decision): " + ", ".join(m.value for m in missing))

    tox_ok = True
    for event in events:
        if event.grade == 5:
            tox_ok = False
            reasons.append(f"grade 5 {event.type} recorded")
        elif event.grade >= policy.blocking_grade and not event.resolved:
            tox_ok = False
            reasons.append(f"unresolved grade {event.grade} {event.type} (blocks at grade >= {policy.blocking_grade})")
    if tox_ok:
        reasons.append(f"no unresolved toxicity of grade >= {policy.blocking_grade}")

    return SecondInfusionEligibility(allowed=disease_ok and tox_ok, reasons=tuple(reasons))
