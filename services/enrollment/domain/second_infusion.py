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

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

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


class SecondInfusionError(ValueError):
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


def _check_percentage(name: str, value: float | None, exc: type[SecondInfusionError]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise exc(f"{name} must be a number or None, got {value!r}")
    if not 0 <= value <= 100:
        raise exc(f"{name} must be a percentage in [0, 100], got {value}")


@dataclass(frozen=True)
class Day28Assessment:
    """Bone-marrow readings at day 28 after the first infusion (None = not done / not recorded)."""

    morphology_blasts_pct: float | None = None
    flow_blasts_pct: float | None = None
    molecular_mrd_pct: float | None = None

    def __post_init__(self) -> None:
        for name in ("morphology_blasts_pct", "flow_blasts_pct", "molecular_mrd_pct"):
            _check_percentage(name, getattr(self, name), InvalidAssessmentError)

    def reading(self, method: DiseaseMethod) -> float | None:
        return {
            DiseaseMethod.MORPHOLOGY: self.morphology_blasts_pct,
            DiseaseMethod.FLOW_CYTOMETRY: self.flow_blasts_pct,
            DiseaseMethod.MOLECULAR: self.molecular_mrd_pct,
        }[method]


@dataclass(frozen=True)
class ToxicityEvent:
    """An adverse event since the first infusion: type, grade (1-5), resolved or not."""

    type: str
    grade: int
    resolved: bool

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type.strip():
            raise InvalidToxicityError(f"type must be a non-empty string, got {self.type!r}")
        if isinstance(self.grade, bool) or not isinstance(self.grade, int) or not 1 <= self.grade <= 5:
            # CTCAE grades run 1 (mild) to 5 (death); ASTCT CRS/ICANS grades 1-4 fit inside.
            raise InvalidToxicityError(f"grade of {self.type!r} must be an integer 1..5, got {self.grade!r}")
        if not isinstance(self.resolved, bool):
            raise InvalidToxicityError(f"resolved of {self.type!r} must be a bool, got {self.resolved!r}")


@dataclass(frozen=True)
class SecondInfusionPolicy:
    """Programme parameters of the second-infusion rule (defaults documented in the module docstring)."""

    # Thresholds from seed 000 (response = reading below the threshold).
    morphology_threshold_pct: float = 5.0
    flow_threshold_pct: float = 5.0
    molecular_threshold_pct: float = 0.01
    # Residual disease by ANY of these methods qualifies (default: all three).
    qualifying_methods: frozenset[DiseaseMethod] = field(
        default_factory=lambda: frozenset(DiseaseMethod)
    )
    # An UNRESOLVED toxicity of this grade or higher blocks the second infusion.
    blocking_grade: int = 3

    def __post_init__(self) -> None:
        for name in ("morphology_threshold_pct", "flow_threshold_pct", "molecular_threshold_pct"):
            value = getattr(self, name)
            _check_percentage(name, value, InvalidPolicyError)
            if value == 0:
                raise InvalidPolicyError(f"{name} must be > 0, got {value}")
        methods = frozenset(self.qualifying_methods)
        if not methods or not all(isinstance(m, DiseaseMethod) for m in methods):
            raise InvalidPolicyError(
                f"qualifying_methods must be a non-empty set of DiseaseMethod, got {self.qualifying_methods!r}"
            )
        object.__setattr__(self, "qualifying_methods", methods)
        if isinstance(self.blocking_grade, bool) or not isinstance(self.blocking_grade, int) or not 1 <= self.blocking_grade <= 5:
            raise InvalidPolicyError(f"blocking_grade must be an integer 1..5, got {self.blocking_grade!r}")

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


def evaluate_second_infusion(
    assessment: Day28Assessment,
    toxicities: Iterable[ToxicityEvent],
    policy: SecondInfusionPolicy = CARCIK_CD19_DEFAULT_POLICY,
) -> SecondInfusionEligibility:
    """Whether a second infusion is allowed, with every reason for and against.

    Allowed only if (a) at least one qualifying reading shows residual disease
    (reading >= its threshold) and (b) no toxicity of grade >= blocking_grade
    is unresolved.  A grade-5 event always blocks.  If every qualifying
    reading is missing, the answer is "not allowed" and the reason names the
    missing assessments.
    """
    if not isinstance(assessment, Day28Assessment):
        raise InvalidAssessmentError(f"assessment must be a Day28Assessment, got {assessment!r}")
    events = tuple(toxicities)
    for i, event in enumerate(events):
        if not isinstance(event, ToxicityEvent):
            raise InvalidToxicityError(f"toxicities[{i}] must be a ToxicityEvent, got {event!r}")

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
