"""Cytokine release syndrome (CRS) grading, ASTCT consensus.

Source: Lee DW, Santomasso BD, Locke FL, et al. "ASTCT Consensus Grading for
Cytokine Release Syndrome and Neurologic Toxicity Associated with Immune
Effector Cells." Biol Blood Marrow Transplant 2019;25(4):625-638,
table "ASTCT CRS Consensus Grading" (Table 6 of the published article) and
its footnotes.  Every rule below cites the row or footnote it encodes.

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, check_fields

__all__ = [
    "InvalidObservationError",
    "Hypotension",
    "OxygenSupport",
    "CrsDriver",
    "CrsObservation",
    "CrsGrade",
    "FEVER_THRESHOLD_C",
    "LOW_FLOW_MAX_L_MIN",
    "grade_crs",
]


class InvalidObservationError(ClinicalInputError):
    """A CRS observation has a missing, malformed or out-of-range field."""


# Lee 2019, CRS table footnote: "Fever is defined as temperature >=38 degC not
# attributable to any other cause."
FEVER_THRESHOLD_C = 38.0

# Lee 2019, CRS table footnote: "Low-flow nasal cannula is defined as oxygen
# delivered at <=6 L/minute ... High-flow nasal cannula is defined as oxygen
# delivered at >6 L/minute."
LOW_FLOW_MAX_L_MIN = 6.0

# Physiological plausibility window for a recorded body temperature; not a
# clinical rule, only an input guard.
TemperatureC = Annotated[float, Field(ge=25.0, le=45.0)]
# Upper bound of flows delivered by any nasal cannula/mask device in use
# (heated high-flow systems go up to ~60-80 L/min); an input guard only.
OxygenFlowLMin = Annotated[float, Field(gt=0.0, le=80.0)]


class Hypotension(Enum):
    """Hypotension row of the ASTCT CRS table (Lee 2019, Table 6)."""

    NONE = "none"
    # Grade 2: "Not requiring vasopressors"
    NOT_REQUIRING_VASOPRESSORS = "not_requiring_vasopressors"
    # Grade 3: "Requiring a vasopressor with or without vasopressin"
    ONE_VASOPRESSOR = "one_vasopressor_with_or_without_vasopressin"
    # Grade 4: "Requiring multiple vasopressors (excluding vasopressin)"
    MULTIPLE_VASOPRESSORS = "multiple_vasopressors_excluding_vasopressin"


class OxygenSupport(Enum):
    """Oxygen delivery for the hypoxia row of the ASTCT CRS table.

    A nasal cannula is graded by its flow (footnote: low-flow <=6 L/min,
    high-flow >6 L/min), so there is a single NASAL_CANNULA member and the
    flow decides; every other device is graded by the device alone.
    """

    NONE = "none"
    # Grade 2 ("low-flow nasal cannula or blow-by") when flow <= 6 L/min,
    # grade 3 ("high-flow nasal cannula") when flow > 6 L/min.
    NASAL_CANNULA = "nasal_cannula"
    # Grade 2: footnote "Low flow also includes blow-by oxygen delivery,
    # sometimes used in pediatrics."
    BLOW_BY = "blow_by"
    # Grade 3: "Requiring ... facemask, nonrebreather mask, or Venturi mask"
    FACEMASK = "facemask"
    NONREBREATHER_MASK = "nonrebreather_mask"
    VENTURI_MASK = "venturi_mask"
    # Grade 4: "Requiring positive pressure (eg, CPAP, BiPAP, intubation and
    # mechanical ventilation)"
    CPAP = "cpap"
    BIPAP = "bipap"
    MECHANICAL_VENTILATION = "intubation_mechanical_ventilation"


class CrsDriver(str, Enum):
    """Which parameter set the grade."""

    FEVER = "fever"
    HYPOTENSION = "hypotension"
    HYPOXIA = "hypoxia"
    DEATH = "death"


# Lee 2019, Table 6, hypotension row (grades 2, 3, 4).
_HYPOTENSION_GRADE: dict[Hypotension, int] = {
    Hypotension.NONE: 0,
    Hypotension.NOT_REQUIRING_VASOPRESSORS: 2,
    Hypotension.ONE_VASOPRESSOR: 3,
    Hypotension.MULTIPLE_VASOPRESSORS: 4,
}

# Lee 2019, Table 6, hypoxia row; NASAL_CANNULA is resolved by flow below.
_DEVICE_GRADE: dict[OxygenSupport, int] = {
    OxygenSupport.NONE: 0,
    OxygenSupport.BLOW_BY: 2,
    OxygenSupport.FACEMASK: 3,
    OxygenSupport.NONREBREATHER_MASK: 3,
    OxygenSupport.VENTURI_MASK: 3,
    OxygenSupport.CPAP: 4,
    OxygenSupport.BIPAP: 4,
    OxygenSupport.MECHANICAL_VENTILATION: 4,
}


@dataclass(frozen=True)
class CrsObservation:
    """One CRS assessment (the worst values of the assessment period).

    ``antipyretic_or_anticytokine_given``: the patient has had CRS and has
    since received antipyretics or anti-cytokine therapy (tocilizumab,
    corticosteroids).  Lee 2019, Table 6 footnote: "In patients who have CRS
    then receive antipyretic or anticytokine therapy such as tocilizumab or
    steroids, fever is no longer required to grade subsequent CRS severity.
    In this case, CRS grading is driven by hypotension and/or hypoxia."

    ``died_of_crs``: death due to CRS (Lee 2019, CRS section: grade 5 is
    death due to CRS in which another cause is not the principal factor).
    """

    temperature_c: TemperatureC
    hypotension: Hypotension = Hypotension.NONE
    oxygen: OxygenSupport = OxygenSupport.NONE
    oxygen_flow_l_min: OxygenFlowLMin | None = None
    antipyretic_or_anticytokine_given: bool = False
    died_of_crs: bool = False

    def __post_init__(self) -> None:
        check_fields(self, InvalidObservationError)
        if self.oxygen is OxygenSupport.NASAL_CANNULA and self.oxygen_flow_l_min is None:
            raise InvalidObservationError(
                "oxygen_flow_l_min is required when oxygen=NASAL_CANNULA "
                "(low- vs high-flow is decided by flow, <=6 vs >6 L/min)"
            )
        if self.oxygen is OxygenSupport.NONE and self.oxygen_flow_l_min is not None:
            raise InvalidObservationError(
                f"oxygen_flow_l_min={self.oxygen_flow_l_min} given but oxygen=NONE"
            )

    @property
    def has_fever(self) -> bool:
        # Lee 2019, Table 6 footnote: fever is temperature >= 38 degC.
        return self.temperature_c >= FEVER_THRESHOLD_C


@dataclass(frozen=True)
class CrsGrade:
    """Result: ASTCT CRS grade 0-5 and the parameter(s) that set it.

    ``driver`` is the primary driver (``None`` for grade 0); ``drivers`` lists
    every parameter that reached the grade, in table order
    (hypotension before hypoxia).
    """

    grade: int
    driver: CrsDriver | None
    drivers: tuple[CrsDriver, ...] = field(default=())


def _hypoxia_grade(obs: CrsObservation) -> int:
    if obs.oxygen is OxygenSupport.NASAL_CANNULA:
        assert obs.oxygen_flow_l_min is not None  # enforced in __post_init__
        # Lee 2019, Table 6 footnote: low-flow NC <= 6 L/min -> grade 2 row;
        # high-flow NC > 6 L/min -> grade 3 row.  6.0 exactly is low-flow.
        return 2 if obs.oxygen_flow_l_min <= LOW_FLOW_MAX_L_MIN else 3
    return _DEVICE_GRADE[obs.oxygen]


def grade_crs(obs: CrsObservation) -> CrsGrade:
    """ASTCT consensus CRS grade (Lee 2019, Table 6)."""
    if obs.died_of_crs:
        # Lee 2019, CRS grading text: grade 5 = death due to CRS.
        return CrsGrade(5, CrsDriver.DEATH, (CrsDriver.DEATH,))

    # Lee 2019, Table 6: every grade 1-4 requires fever >= 38 degC, except
    # after antipyretic/anti-cytokine therapy (footnote), when grading is
    # driven by hypotension and/or hypoxia.  Without fever and without prior
    # therapy there is no CRS (grade 0), whatever the haemodynamics.
    if not obs.has_fever and not obs.antipyretic_or_anticytokine_given:
        return CrsGrade(0, None, ())

    hypotension = _HYPOTENSION_GRADE[obs.hypotension]
    hypoxia = _hypoxia_grade(obs)
    # Lee 2019, Table 6 footnote: "CRS grade is determined by the more severe
    # event: hypotension or hypoxia not attributable to any other cause."
    worst = max(hypotension, hypoxia)
    if worst == 0:
        if obs.has_fever:
            # Lee 2019, Table 6, grade 1: fever, no hypotension, no hypoxia.
            return CrsGrade(1, CrsDriver.FEVER, (CrsDriver.FEVER,))
        # Afebrile after therapy, no hypotension, no hypoxia: nothing left
        # to grade on (judgement call: grade 0, i.e. not currently active).
        return CrsGrade(0, None, ())

    drivers = tuple(
        d
        for d, g in ((CrsDriver.HYPOTENSION, hypotension), (CrsDriver.HYPOXIA, hypoxia))
        if g == worst
    )
    return CrsGrade(worst, drivers[0], drivers)
