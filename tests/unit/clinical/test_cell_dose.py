"""Cell dose and infused volume.

Source: seed 003 (1 x 10^6 CAR T cells/kg); the +/-20 % tolerance is a programme parameter.
"""

import pytest

from services.clinical.cell_dose import (
    CAR_T_AUTOIMMUNE_CELL_DOSE,
    CellDoseOutOfToleranceError,
    CellDoseProgramme,
    InvalidCellDoseInputError,
    VolumeExceedsBagError,
    check_cell_dose,
    plan_cell_dose,
    plan_volume,
)


class TestCellDose:
    def test_seed_autoimmune_dose_for_70_kg(self):
        # Seed 003: 1 x 10^6 CAR T cells/kg x 70 kg = 7 x 10^7 cells; 2 x 10^6 /mL -> 35.0 mL.
        plan = plan_cell_dose(CAR_T_AUTOIMMUNE_CELL_DOSE, 70, 2e6, 50)
        assert (plan.target_cells, plan.volume_ml, plan.planned_cells) == (7e7, 35.0, 7e7)

    def test_volume_equal_to_bag_is_accepted_and_larger_is_refused(self):
        assert plan_cell_dose(CAR_T_AUTOIMMUNE_CELL_DOSE, 70, 2e6, 35.0).volume_ml == 35.0
        with pytest.raises(VolumeExceedsBagError, match="bag_volume_ml 34.9"):
            plan_cell_dose(CAR_T_AUTOIMMUNE_CELL_DOSE, 70, 2e6, 34.9)

    @pytest.mark.parametrize(
        "actual",
        [
            pytest.param(8.4e7, id="plus-20pct-accepted"),
            pytest.param(5.6e7, id="minus-20pct-accepted"),
        ],
    )
    def test_tolerance_boundary_is_accepted(self, actual):
        check_cell_dose(7e7, actual, 0.20)

    @pytest.mark.parametrize(
        "actual",
        [
            pytest.param(8.4e7 + 1e3, id="just-above-plus-20pct"),
            pytest.param(5.6e7 - 1e3, id="just-below-minus-20pct"),
        ],
    )
    def test_dose_outside_tolerance_is_refused(self, actual):
        with pytest.raises(CellDoseOutOfToleranceError, match="actual_cells"):
            check_cell_dose(7e7, actual, 0.20)

    def test_volume_rounding_that_pushes_the_dose_out_of_tolerance_is_refused(self):
        # 10 kg -> 1e7 cells at 7e7/mL = 0.143 mL -> 0.1 mL -> 7e6 cells = -30 %.
        with pytest.raises(CellDoseOutOfToleranceError, match="-30.0%"):
            plan_cell_dose(CAR_T_AUTOIMMUNE_CELL_DOSE, 10, 7e7, 10)

    def test_volume_rounding_within_tolerance_reports_the_deviation(self):
        # 10 kg -> 1e7 cells at 4e7/mL = 0.25 mL -> 0.3 mL (half up) -> 1.2e7 = +20 %.
        plan = plan_cell_dose(CAR_T_AUTOIMMUNE_CELL_DOSE, 10, 4e7, 10)
        assert plan.volume_ml == 0.3 and plan.deviation_fraction == pytest.approx(0.2)

    def test_flat_maximum_caps_the_target(self):
        # e.g. a label maximum of 1 x 10^8 cells: 120 kg x 1e6/kg is capped to 1e8.
        programme = CellDoseProgramme(target_cells_per_kg=1e6, max_total_cells=1e8)
        assert plan_cell_dose(programme, 120, 1e6, 200).target_cells == 1e8

    @pytest.mark.parametrize(
        "args, field",
        [
            ((0.5, 2e6, 50), "weight_kg"),
            ((70, 0, 50), "concentration_cells_per_ml"),
            ((70, 2e6, 0), "bag_volume_ml"),
        ],
    )
    def test_invalid_cell_dose_input_is_refused(self, args, field):
        with pytest.raises(InvalidCellDoseInputError, match=field):
            plan_cell_dose(CAR_T_AUTOIMMUNE_CELL_DOSE, *args)

    @pytest.mark.parametrize("tol", [-0.1, 1.0])
    def test_invalid_tolerance_is_refused(self, tol):
        with pytest.raises(InvalidCellDoseInputError, match="tolerance_fraction"):
            CellDoseProgramme(1e6, tolerance_fraction=tol)


class TestFlatDose:
    # A flat dose (DoseLevel.flat_cells) plans its volume as a per-kg dose does, without the weight.
    def test_a_flat_dose_gives_its_volume(self):
        # 1 x 10^8 cells at 2.5 x 10^6/mL -> 40.0 mL, exactly the dose
        plan = plan_volume(1e8, 2.5e6, 68.0, 0.10)
        assert (plan.volume_ml, plan.planned_cells, plan.deviation_fraction) == (40.0, 1e8, 0.0)

    def test_rounding_that_leaves_the_tolerance_is_refused(self):
        # 1 x 10^6 cells at 2.5 x 10^7/mL -> 0.04 mL rounds to 0.0 mL
        with pytest.raises(CellDoseOutOfToleranceError, match="rounds to 0 mL"):
            plan_volume(1e6, 2.5e7, 10.0, 0.10)
        # 3 x 10^6 cells at 2.5 x 10^7/mL -> 0.12 mL rounds to 0.1 mL: 2.5 x 10^6 cells, -16.7 %
        with pytest.raises(CellDoseOutOfToleranceError, match="-16.7%"):
            plan_volume(3e6, 2.5e7, 10.0, 0.10)

    def test_more_than_the_bag_holds_is_refused(self):
        with pytest.raises(VolumeExceedsBagError, match="exceeds bag_volume_ml 68"):
            plan_volume(2e8, 2.5e6, 68.0, 0.10)
