"""Clinical observations recorded by centres through the assessment service (issue 11 item 1),
before the infusion (a baseline) as after it, each at its clinical time.

The kinds carry what the grading rules read (services/clinical/crs.py, ASTCT consensus, Lee et
al. 2019), as the bedside records it: vital signs (temperature, blood pressure, the support
hypotension needed, oxygen support), and treatments given (tocilizumab, corticosteroids). The
enumerations' values are the rules' own (a test holds them equal: tests/unit/test_observations.py).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, model_validator

from contracts.base import Contract


class HypotensionSupport(StrEnum):
    """What hypotension needed (Lee 2019, ASTCT CRS table, hypotension row)."""

    NONE = "none"
    NOT_REQUIRING_VASOPRESSORS = "not_requiring_vasopressors"
    ONE_VASOPRESSOR = "one_vasopressor_with_or_without_vasopressin"
    MULTIPLE_VASOPRESSORS = "multiple_vasopressors_excluding_vasopressin"


class OxygenDevice(StrEnum):
    """How oxygen was delivered (Lee 2019, ASTCT CRS table, hypoxia row; a nasal cannula is
    low- or high-flow by its flow)."""

    NONE = "none"
    NASAL_CANNULA = "nasal_cannula"
    BLOW_BY = "blow_by"
    FACEMASK = "facemask"
    NONREBREATHER_MASK = "nonrebreather_mask"
    VENTURI_MASK = "venturi_mask"
    CPAP = "cpap"
    BIPAP = "bipap"
    MECHANICAL_VENTILATION = "intubation_mechanical_ventilation"


class VitalSigns(Contract):
    """One set of vital signs: the temperature, the blood pressure, whether hypotension needed
    fluids or vasopressors, and the oxygen support (its flow for a nasal cannula)."""

    kind: Literal["vital_signs"] = "vital_signs"
    temperature_c: Annotated[float, Field(ge=25.0, le=45.0)]
    systolic_mmhg: Annotated[int, Field(ge=20, le=300)] | None = None
    diastolic_mmhg: Annotated[int, Field(ge=10, le=200)] | None = None
    hypotension: HypotensionSupport = HypotensionSupport.NONE
    oxygen: OxygenDevice = OxygenDevice.NONE
    oxygen_flow_l_min: Annotated[float, Field(gt=0.0, le=80.0)] | None = None

    @model_validator(mode="after")
    def _flow(self) -> "VitalSigns":
        if self.oxygen is OxygenDevice.NASAL_CANNULA and self.oxygen_flow_l_min is None:
            raise ValueError("a nasal cannula gives its oxygen_flow_l_min (low-flow <= 6 L/min, high-flow above)")
        if self.oxygen is OxygenDevice.NONE and self.oxygen_flow_l_min is not None:
            raise ValueError("oxygen_flow_l_min is given only with an oxygen device")
        return self


class Agent(StrEnum):
    TOCILIZUMAB = "tocilizumab"
    CORTICOSTEROID = "corticosteroid"
    OTHER = "other"


class TreatmentGiven(Contract):
    """A treatment given: tocilizumab and corticosteroids are what CRS and ICANS grading and
    their episodes weigh (Lee 2019: after antipyretic or anti-cytokine therapy fever is no
    longer needed to grade CRS)."""

    kind: Literal["treatment"] = "treatment"
    agent: Agent
    name: Annotated[str, Field(min_length=1, max_length=120)] | None = None
    dose_mg: Annotated[float, Field(gt=0, le=100_000)] | None = None
    indication: Literal["crs", "icans", "other"]


Observation = Annotated[VitalSigns | TreatmentGiven, Field(discriminator="kind")]
