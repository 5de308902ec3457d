"""Infusion dosing: body-surface area, lymphodepletion, cell dose, study-day arithmetic.

Pure functions over frozen dataclasses; no I/O.

Rounding conventions (stated once, used everywhere):
* BSA is returned unrounded (m2); callers round for display only.
* Each DAILY chemotherapy dose is rounded half-up to the agent's
  ``rounding_mg`` increment (default 1 mg) from mg/m2 x BSA; per-agent totals
  are the sum of the rounded daily doses, i.e. what is actually given.
* The cell-product volume is rounded half-up to ``volume_rounding_ml``
  (default 0.1 mL); the planned cell number is recomputed from the rounded
  volume and checked against the tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

__all__ = [
    "AgentSchedule",
    "BsaFormula",
    "CAR_T_AUTOIMMUNE_CELL_DOSE",
    "CellDoseOutOfToleranceError",
    "CellDosePlan",
    "CellDoseProgramme",
    "DailyDose",
    "FLU_CY_AUTOIMMUNE",
    "FLU_CY_SEED_CAR_T",
    "InvalidAnthropometryError",
    "InvalidCellDoseInputError",
    "InvalidRegimenError",
    "LymphodepletionPlan",
    "LymphodepletionRegimen",
    "ScheduledAdministration",
    "StudyDayError",
    "VolumeExceedsBagError",
    "body_surface_area",
    "bsa_dubois",
    "bsa_mosteller",
    "check_cell_dose",
    "date_for_study_day",
    "lymphodepletion_dates",
    "lymphodepletion_doses",
    "plan_cell_dose",
    "study_day",
]


# --------------------------------------------------------------------------- errors


class DosingError(ValueError):
    """Base class for invalid dosing input."""


class InvalidAnthropometryError(DosingError):
    pass


class InvalidRegimenError(DosingError):
    pass


class InvalidCellDoseInputError(DosingError):
    pass


class CellDoseOutOfToleranceError(DosingError):
    """Planned or actual cell dose outside the programme's tolerance around the target."""


class VolumeExceedsBagError(DosingError):
    """The volume needed is larger than the product bag holds."""


class StudyDayError(DosingError):
    pass


def _number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _round_half_up(value: float, increment: float) -> float:
    # Decimal(str(x)) uses the shortest repr, so 47.5 is 47.5 and not 47.4999...
    steps = (Decimal(str(value)) / Decimal(str(increment))).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return float(steps * Decimal(str(increment)))


# --------------------------------------------------------------------------- BSA

HEIGHT_RANGE_CM = (30.0, 250.0)
WEIGHT_RANGE_KG = (1.0, 300.0)


def _validate_height_weight(height_cm: float, weight_kg: float) -> None:
    if not _number(height_cm) or not HEIGHT_RANGE_CM[0] <= height_cm <= HEIGHT_RANGE_CM[1]:
        raise InvalidAnthropometryError(
            f"height_cm must be between {HEIGHT_RANGE_CM[0]:g} and {HEIGHT_RANGE_CM[1]:g}, got {height_cm!r}"
        )
    _validate_weight(weight_kg, InvalidAnthropometryError)


def _validate_weight(weight_kg: float, exc: type[DosingError]) -> None:
    if not _number(weight_kg) or not WEIGHT_RANGE_KG[0] <= weight_kg <= WEIGHT_RANGE_KG[1]:
        raise exc(f"weight_kg must be between {WEIGHT_RANGE_KG[0]:g} and {WEIGHT_RANGE_KG[1]:g}, got {weight_kg!r}")


def bsa_mosteller(height_cm: float, weight_kg: float) -> float:
    """BSA (m2) = sqrt(height_cm x weight_kg / 3600).

    Mosteller RD. Simplified calculation of body-surface area. N Engl J Med 1987;317:1098.
    """
    _validate_height_weight(height_cm, weight_kg)
    return math.sqrt(height_cm * weight_kg / 3600.0)


def bsa_dubois(height_cm: float, weight_kg: float) -> float:
    """BSA (m2) = 0.007184 x W^0.425 x H^0.725.

    Du Bois D, Du Bois EF. A formula to estimate the approximate surface area
    if height and weight be known. Arch Intern Med 1916;17:863-871.
    """
    _validate_height_weight(height_cm, weight_kg)
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


class BsaFormula(StrEnum):
    MOSTELLER = "mosteller"
    DUBOIS = "dubois"


def body_surface_area(height_cm: float, weight_kg: float, formula: BsaFormula = BsaFormula.MOSTELLER) -> float:
    if formula is BsaFormula.MOSTELLER:
        return bsa_mosteller(height_cm, weight_kg)
    if formula is BsaFormula.DUBOIS:
        return bsa_dubois(height_cm, weight_kg)
    raise InvalidAnthropometryError(f"formula must be a BsaFormula, got {formula!r}")


# --------------------------------------------------------------------------- lymphodepletion


@dataclass(frozen=True)
class AgentSchedule:
    """One agent of a lymphodepleting regimen: mg/m2 per day on the given study days."""

    agent: str
    mg_per_m2_per_day: float
    study_days: tuple[int, ...]
    rounding_mg: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.agent, str) or not self.agent.strip():
            raise InvalidRegimenError(f"agent must be a non-empty string, got {self.agent!r}")
        if not _number(self.mg_per_m2_per_day) or self.mg_per_m2_per_day <= 0:
            raise InvalidRegimenError(
                f"mg_per_m2_per_day of {self.agent} must be a positive number, got {self.mg_per_m2_per_day!r}"
            )
        days = tuple(self.study_days)
        if not days or any(isinstance(d, bool) or not isinstance(d, int) for d in days):
            raise InvalidRegimenError(f"study_days of {self.agent} must be a non-empty tuple of ints, got {self.study_days!r}")
        if len(set(days)) != len(days):
            raise InvalidRegimenError(f"study_days of {self.agent} has duplicates: {days}")
        if any(d >= 0 for d in days):
            # Lymphodepletion precedes the infusion (day 0).
            raise InvalidRegimenError(f"study_days of {self.agent} must all be before day 0, got {days}")
        object.__setattr__(self, "study_days", tuple(sorted(days)))
        if not _number(self.rounding_mg) or self.rounding_mg <= 0:
            raise InvalidRegimenError(f"rounding_mg of {self.agent} must be a positive number, got {self.rounding_mg!r}")


@dataclass(frozen=True)
class LymphodepletionRegimen:
    name: str
    agents: tuple[AgentSchedule, ...]

    def __post_init__(self) -> None:
        agents = tuple(self.agents)
        if not agents or not all(isinstance(a, AgentSchedule) for a in agents):
            raise InvalidRegimenError(f"agents of {self.name!r} must be a non-empty tuple of AgentSchedule")
        names = [a.agent for a in agents]
        if len(set(names)) != len(names):
            raise InvalidRegimenError(f"agents of {self.name!r} lists an agent twice: {names}")
        object.__setattr__(self, "agents", agents)


# Seed 002 (Italian CAR-T programme, r/r B-ALL): "fludarabina 25 mg/m2 x 3 giorni
# e ciclofosfamide 900 mg/m2".  The seed gives no study days; the days used here
# (fludarabine days -4, -3, -2; cyclophosphamide day -2) are those of the
# brexucabtagene autoleucel (Tecartus) label for adult B-ALL, the CAR-T the seed
# discusses.  ASSUMPTION: confirm against the programme's protocol.
FLU_CY_SEED_CAR_T = LymphodepletionRegimen(
    name="Flu/Cy 25/900 (seed 002)",
    agents=(
        AgentSchedule("fludarabine", 25.0, (-4, -3, -2)),
        AgentSchedule("cyclophosphamide", 900.0, (-2,)),
    ),
)

# Seed 003 (CD19 CAR-T in autoimmune disease, zorpocabtagene autoleucel):
# "Cyclophosphamide 500 mg/sqm/day (D-4/-3)", "Fludarabine 30 mg/sqm/day (D-5/-4/-3)".
FLU_CY_AUTOIMMUNE = LymphodepletionRegimen(
    name="Flu/Cy 30/500 (seed 003)",
    agents=(
        AgentSchedule("fludarabine", 30.0, (-5, -4, -3)),
        AgentSchedule("cyclophosphamide", 500.0, (-4, -3)),
    ),
)


@dataclass(frozen=True)
class DailyDose:
    study_day: int
    agent: str
    mg_per_m2: float
    dose_mg: float


@dataclass(frozen=True)
class LymphodepletionPlan:
    regimen_name: str
    bsa_m2: float
    bsa_used_m2: float  # after the optional dose-capping BSA
    daily_doses: tuple[DailyDose, ...]  # ordered by study day, then regimen agent order
    totals_mg: tuple[tuple[str, float], ...]  # (agent, total mg) in regimen order

    def total_mg(self, agent: str) -> float:
        for name, total in self.totals_mg:
            if name == agent:
                return total
        raise InvalidRegimenError(f"agent {agent!r} is not in regimen {self.regimen_name!r}")


def lymphodepletion_doses(
    regimen: LymphodepletionRegimen, bsa_m2: float, max_bsa_m2: float | None = None
) -> LymphodepletionPlan:
    """Per-day doses (mg) and per-agent totals for a BSA.

    ``max_bsa_m2`` is the optional programme dose-capping BSA: doses are
    computed on min(bsa, cap).  Daily doses are rounded half-up to each agent's
    ``rounding_mg``; totals are sums of the rounded daily doses.
    """
    if not isinstance(regimen, LymphodepletionRegimen):
        raise InvalidRegimenError(f"regimen must be a LymphodepletionRegimen, got {regimen!r}")
    if not _number(bsa_m2) or not 0 < bsa_m2 <= 5:
        raise InvalidAnthropometryError(f"bsa_m2 must be in (0, 5], got {bsa_m2!r}")
    if max_bsa_m2 is not None and (not _number(max_bsa_m2) or max_bsa_m2 <= 0):
        raise InvalidRegimenError(f"max_bsa_m2 must be a positive number or None, got {max_bsa_m2!r}")
    used = bsa_m2 if max_bsa_m2 is None else min(bsa_m2, max_bsa_m2)
    daily: list[DailyDose] = []
    totals: list[tuple[str, float]] = []
    for a in regimen.agents:
        dose = _round_half_up(a.mg_per_m2_per_day * used, a.rounding_mg)
        for day in a.study_days:
            daily.append(DailyDose(day, a.agent, a.mg_per_m2_per_day, dose))
        totals.append((a.agent, float(sum(d.dose_mg for d in daily if d.agent == a.agent))))
    order = {a.agent: i for i, a in enumerate(regimen.agents)}
    daily.sort(key=lambda d: (d.study_day, order[d.agent]))
    return LymphodepletionPlan(regimen.name, bsa_m2, used, tuple(daily), tuple(totals))


# --------------------------------------------------------------------------- cell dose


@dataclass(frozen=True)
class CellDoseProgramme:
    """Cell-dose parameters of a programme.

    ``tolerance_fraction``: allowed relative deviation of the planned/actual
    dose from the target (inclusive), a programme parameter.
    ``max_total_cells``: optional flat cap (e.g. a label maximum).
    """

    target_cells_per_kg: float
    tolerance_fraction: float = 0.20
    max_total_cells: float | None = None
    volume_rounding_ml: float = 0.1

    def __post_init__(self) -> None:
        if not _number(self.target_cells_per_kg) or self.target_cells_per_kg <= 0:
            raise InvalidCellDoseInputError(
                f"target_cells_per_kg must be a positive number, got {self.target_cells_per_kg!r}"
            )
        if not _number(self.tolerance_fraction) or not 0 <= self.tolerance_fraction < 1:
            raise InvalidCellDoseInputError(f"tolerance_fraction must be in [0, 1), got {self.tolerance_fraction!r}")
        if self.max_total_cells is not None and (not _number(self.max_total_cells) or self.max_total_cells <= 0):
            raise InvalidCellDoseInputError(f"max_total_cells must be a positive number, got {self.max_total_cells!r}")
        if not _number(self.volume_rounding_ml) or self.volume_rounding_ml <= 0:
            raise InvalidCellDoseInputError(f"volume_rounding_ml must be positive, got {self.volume_rounding_ml!r}")


# Seed 003: "CD19-CAR T-cell dose: 1 x 10^6 CAR T cells/kg".  The +/-20 %
# tolerance is a programme parameter NOT stated in the seed (default of this module).
CAR_T_AUTOIMMUNE_CELL_DOSE = CellDoseProgramme(target_cells_per_kg=1e6, tolerance_fraction=0.20)


@dataclass(frozen=True)
class CellDosePlan:
    target_cells: float
    planned_cells: float
    volume_ml: float
    concentration_cells_per_ml: float
    deviation_fraction: float  # (planned - target) / target


def check_cell_dose(target_cells: float, actual_cells: float, tolerance_fraction: float) -> float:
    """Relative deviation (actual - target)/target; raises if |deviation| > tolerance.

    The boundary itself is accepted (|deviation| == tolerance passes).
    """
    if not _number(target_cells) or target_cells <= 0:
        raise InvalidCellDoseInputError(f"target_cells must be a positive number, got {target_cells!r}")
    if not _number(actual_cells) or actual_cells < 0:
        raise InvalidCellDoseInputError(f"actual_cells must be a non-negative number, got {actual_cells!r}")
    if not _number(tolerance_fraction) or not 0 <= tolerance_fraction < 1:
        raise InvalidCellDoseInputError(f"tolerance_fraction must be in [0, 1), got {tolerance_fraction!r}")
    deviation = (actual_cells - target_cells) / target_cells
    if abs(deviation) > tolerance_fraction + 1e-12:  # 1e-12 absorbs float noise at the boundary only
        raise CellDoseOutOfToleranceError(
            f"actual_cells {actual_cells:.4g} deviates {deviation:+.1%} from target_cells {target_cells:.4g}; "
            f"tolerance is +/-{tolerance_fraction:.0%}"
        )
    return deviation


def plan_cell_dose(
    programme: CellDoseProgramme,
    weight_kg: float,
    concentration_cells_per_ml: float,
    bag_volume_ml: float,
) -> CellDosePlan:
    """Cells required (target per kg x weight, capped by max_total_cells) and volume to infuse.

    Volume = cells / released concentration, rounded half-up to the programme's
    volume increment; refused if larger than the bag (VolumeExceedsBagError)
    or if the rounded volume delivers a dose outside tolerance
    (CellDoseOutOfToleranceError).
    """
    _validate_weight(weight_kg, InvalidCellDoseInputError)
    if not _number(concentration_cells_per_ml) or concentration_cells_per_ml <= 0:
        raise InvalidCellDoseInputError(
            f"concentration_cells_per_ml must be a positive number, got {concentration_cells_per_ml!r}"
        )
    if not _number(bag_volume_ml) or bag_volume_ml <= 0:
        raise InvalidCellDoseInputError(f"bag_volume_ml must be a positive number, got {bag_volume_ml!r}")
    target = programme.target_cells_per_kg * weight_kg
    if programme.max_total_cells is not None:
        target = min(target, programme.max_total_cells)
    volume = _round_half_up(target / concentration_cells_per_ml, programme.volume_rounding_ml)
    if volume <= 0:
        raise CellDoseOutOfToleranceError(
            f"volume for target_cells {target:.4g} at {concentration_cells_per_ml:.4g} cells/mL rounds to 0 mL"
        )
    if volume > bag_volume_ml:
        raise VolumeExceedsBagError(
            f"volume_ml {volume:g} needed for target_cells {target:.4g} exceeds bag_volume_ml {bag_volume_ml:g}"
        )
    planned = volume * concentration_cells_per_ml
    deviation = check_cell_dose(target, planned, programme.tolerance_fraction)
    return CellDosePlan(target, planned, volume, float(concentration_cells_per_ml), deviation)


# --------------------------------------------------------------------------- study days


def _check_date(name: str, value: object) -> None:
    # datetime is a subclass of date; refuse it so times never leak into day counts.
    if isinstance(value, datetime) or not isinstance(value, date):
        raise StudyDayError(f"{name} must be a date (not a datetime), got {value!r}")


def study_day(on: date, infusion_date: date) -> int:
    """Study day of ``on``: day 0 is the infusion date, the day before is -1, the day after +1.

    (Unlike CDISC SDTM --DY, which has no day 0, this programme counts the
    infusion day as day 0 so that "day -5 .. -3" and "day 28" read as in the seeds.)
    """
    _check_date("on", on)
    _check_date("infusion_date", infusion_date)
    return (on - infusion_date).days


def date_for_study_day(day: int, infusion_date: date) -> date:
    if isinstance(day, bool) or not isinstance(day, int):
        raise StudyDayError(f"day must be an integer, got {day!r}")
    _check_date("infusion_date", infusion_date)
    return infusion_date + timedelta(days=day)


@dataclass(frozen=True)
class ScheduledAdministration:
    on: date
    study_day: int
    agent: str


def lymphodepletion_dates(
    regimen: LymphodepletionRegimen, infusion_date: date
) -> tuple[ScheduledAdministration, ...]:
    """Calendar dates of each scheduled administration, ordered by date then regimen agent order."""
    if not isinstance(regimen, LymphodepletionRegimen):
        raise InvalidRegimenError(f"regimen must be a LymphodepletionRegimen, got {regimen!r}")
    _check_date("infusion_date", infusion_date)
    out = [
        ScheduledAdministration(date_for_study_day(day, infusion_date), day, a.agent)
        for a in regimen.agents
        for day in a.study_days
    ]
    order = {a.agent: i for i, a in enumerate(regimen.agents)}
    return tuple(sorted(out, key=lambda s: (s.study_day, order[s.agent])))
