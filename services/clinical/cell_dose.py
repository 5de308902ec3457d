"""Cell dose: cells required for a patient's weight, volume of product to infuse, tolerance.

The cell-product volume is rounded half-up to ``volume_rounding_ml`` (default
0.1 mL); the planned cell number is recomputed from the rounded volume and
checked against the tolerance.  Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, check_fields, round_half_up, validated
from services.clinical.bsa import WeightKg

__all__ = [
    "CAR_T_AUTOIMMUNE_CELL_DOSE",
    "CellDoseOutOfToleranceError",
    "CellDosePlan",
    "CellDoseProgramme",
    "InvalidCellDoseInputError",
    "VolumeExceedsBagError",
    "check_cell_dose",
    "plan_cell_dose",
    "plan_volume",
]


class InvalidCellDoseInputError(ClinicalInputError):
    pass


class CellDoseOutOfToleranceError(ClinicalInputError):
    """Planned or actual cell dose outside the programme's tolerance around the target."""


class VolumeExceedsBagError(ClinicalInputError):
    """The volume needed is larger than the product bag holds."""


Positive = Annotated[float, Field(gt=0)]
# Allowed relative deviation from the target dose, inclusive.
Tolerance = Annotated[float, Field(ge=0, lt=1)]


@dataclass(frozen=True)
class CellDoseProgramme:
    """Cell-dose parameters of a programme.

    ``tolerance_fraction``: allowed relative deviation of the planned/actual
    dose from the target (inclusive), a programme parameter.
    ``max_total_cells``: optional flat cap (e.g. a label maximum).
    """

    target_cells_per_kg: Positive
    tolerance_fraction: Tolerance = 0.20
    max_total_cells: Positive | None = None
    volume_rounding_ml: Positive = 0.1

    def __post_init__(self) -> None:
        check_fields(self, InvalidCellDoseInputError)


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


@validated(InvalidCellDoseInputError)
def check_cell_dose(
    target_cells: Positive, actual_cells: Annotated[float, Field(ge=0)], tolerance_fraction: Tolerance
) -> float:
    """Relative deviation (actual - target)/target; raises if |deviation| > tolerance.

    The boundary itself is accepted (|deviation| == tolerance passes).
    """
    deviation = (actual_cells - target_cells) / target_cells
    if abs(deviation) > tolerance_fraction + 1e-12:  # 1e-12 absorbs float noise at the boundary only
        raise CellDoseOutOfToleranceError(
            f"actual_cells {actual_cells:.4g} deviates {deviation:+.1%} from target_cells {target_cells:.4g}; "
            f"tolerance is +/-{tolerance_fraction:.0%}"
        )
    return deviation


@validated(InvalidCellDoseInputError)
def plan_cell_dose(
    programme: CellDoseProgramme,
    weight_kg: WeightKg,
    concentration_cells_per_ml: Positive,
    bag_volume_ml: Positive,
) -> CellDosePlan:
    """Cells required (target per kg x weight, capped by max_total_cells) and volume to infuse
    (`plan_volume`)."""
    target = programme.target_cells_per_kg * weight_kg
    if programme.max_total_cells is not None:
        target = min(target, programme.max_total_cells)
    return plan_volume(target, concentration_cells_per_ml, bag_volume_ml, programme.tolerance_fraction,
                       programme.volume_rounding_ml)


@validated(InvalidCellDoseInputError)
def plan_volume(
    target_cells: Positive,
    concentration_cells_per_ml: Positive,
    bag_volume_ml: Positive,
    tolerance_fraction: Tolerance,
    volume_rounding_ml: Positive = 0.1,
) -> CellDosePlan:
    """The volume of product that delivers `target_cells` (a dose per kg times the weight, or a
    flat dose): cells / released concentration, rounded half-up to `volume_rounding_ml`;
    refused if larger than the bag (VolumeExceedsBagError) or if the rounded volume delivers a
    dose outside tolerance (CellDoseOutOfToleranceError)."""
    volume = round_half_up(target_cells / concentration_cells_per_ml, volume_rounding_ml)
    if volume <= 0:
        raise CellDoseOutOfToleranceError(
            f"volume for target_cells {target_cells:.4g} at {concentration_cells_per_ml:.4g} cells/mL rounds to 0 mL"
        )
    if volume > bag_volume_ml:
        raise VolumeExceedsBagError(
            f"volume_ml {volume:g} needed for target_cells {target_cells:.4g} exceeds bag_volume_ml {bag_volume_ml:g}"
        )
    planned = volume * concentration_cells_per_ml
    deviation = check_cell_dose(target_cells, planned, tolerance_fraction)
    return CellDosePlan(target_cells, planned, volume, float(concentration_cells_per_ml), deviation)
