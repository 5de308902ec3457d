"""Infusion dosing: BSA, lymphodepletion, cell dose, study days.

Sources: Mosteller RD, N Engl J Med 1987;317:1098; Du Bois D, Du Bois EF, Arch
Intern Med 1916;17:863-871; seed 002 (fludarabine 25 mg/m2 x 3 days +
cyclophosphamide 900 mg/m2); seed 003 (cyclophosphamide 500 mg/m2/day D-4/-3,
fludarabine 30 mg/m2/day D-5/-4/-3, 1 x 10^6 CAR T cells/kg).
"""

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.infusion.domain.dosing import (
    CAR_T_AUTOIMMUNE_CELL_DOSE,
    FLU_CY_AUTOIMMUNE,
    FLU_CY_SEED_CAR_T,
    AgentSchedule,
    BsaFormula,
    CellDoseOutOfToleranceError,
    CellDoseProgramme,
    InvalidAnthropometryError,
    InvalidCellDoseInputError,
    InvalidRegimenError,
    LymphodepletionRegimen,
    StudyDayError,
    VolumeExceedsBagError,
    body_surface_area,
    bsa_dubois,
    bsa_mosteller,
    check_cell_dose,
    date_for_study_day,
    lymphodepletion_dates,
    lymphodepletion_doses,
    plan_cell_dose,
    study_day,
)


class TestBodySurfaceArea:
    @pytest.mark.parametrize(
        "height, weight, expected",
        [
            # Mosteller 1987: sqrt(180 x 80 / 3600) = sqrt(4) = 2 exactly.
            pytest.param(180, 80, 2.0, id="mosteller-180cm-80kg-exactly-2"),
            # sqrt(170 x 70 / 3600) = sqrt(3.30556) = 1.8181 (hand calculation).
            pytest.param(170, 70, 1.8181, id="mosteller-170cm-70kg"),
        ],
    )
    def test_mosteller(self, height, weight, expected):
        assert bsa_mosteller(height, weight) == pytest.approx(expected, abs=1e-4)

    def test_dubois_reference_adult(self):
        # Du Bois 1916: 0.007184 x 70^0.425 x 170^0.725 = 1.8097 (the textbook 1.81 m2 adult).
        assert bsa_dubois(170, 70) == pytest.approx(1.8097, abs=1e-4)

    def test_formula_is_selectable(self):
        assert body_surface_area(170, 70, BsaFormula.DUBOIS) == bsa_dubois(170, 70)
        assert body_surface_area(170, 70) == bsa_mosteller(170, 70)

    @pytest.mark.parametrize(
        "height, weight, field",
        [
            pytest.param(29.9, 70, "height_cm", id="height-29.9"),
            pytest.param(250.1, 70, "height_cm", id="height-250.1"),
            pytest.param(170, 0.99, "weight_kg", id="weight-0.99"),
            pytest.param(170, 300.1, "weight_kg", id="weight-300.1"),
            pytest.param(float("nan"), 70, "height_cm", id="height-nan"),
            pytest.param(170, True, "weight_kg", id="weight-bool"),
        ],
    )
    def test_out_of_range_input_is_refused(self, height, weight, field):
        with pytest.raises(InvalidAnthropometryError, match=field):
            bsa_mosteller(height, weight)

    @pytest.mark.parametrize("height, weight", [(30, 1), (250, 300)], ids=["lower-limits", "upper-limits"])
    def test_range_limits_themselves_are_accepted(self, height, weight):
        assert bsa_mosteller(height, weight) > 0 and bsa_dubois(height, weight) > 0

    @given(
        st.floats(30, 249),
        st.floats(1, 299),
        st.floats(0.01, 1),
        st.sampled_from(list(BsaFormula)),
    )
    def test_bsa_increases_with_height_and_with_weight(self, h, w, delta, formula):
        base = body_surface_area(h, w, formula)
        assert body_surface_area(h + delta, w, formula) > base
        assert body_surface_area(h, w + delta, formula) > base


class TestLymphodepletion:
    def test_seed_car_t_regimen_at_bsa_1_73(self):
        # Seed 002: flu 25 mg/m2 x 3 -> 43.25 -> 43 mg/day (half-up to 1 mg); cy 900 mg/m2 -> 1557 mg.
        plan = lymphodepletion_doses(FLU_CY_SEED_CAR_T, 1.73)
        assert [(d.study_day, d.agent, d.dose_mg) for d in plan.daily_doses] == [
            (-4, "fludarabine", 43.0),
            (-3, "fludarabine", 43.0),
            (-2, "fludarabine", 43.0),
            (-2, "cyclophosphamide", 1557.0),
        ]
        assert plan.totals_mg == (("fludarabine", 129.0), ("cyclophosphamide", 1557.0))

    def test_half_milligram_rounds_up_not_to_even(self):
        # 25 x 1.7 = 42.5 -> 43 mg (half up; banker's rounding would give 42), total 129 mg.
        plan = lymphodepletion_doses(FLU_CY_SEED_CAR_T, 1.7)
        assert plan.daily_doses[0].dose_mg == 43.0 and plan.total_mg("fludarabine") == 129.0

    def test_just_below_half_milligram_rounds_down(self):
        # 25 x 1.8998 = 47.495 -> 47 mg.
        assert lymphodepletion_doses(FLU_CY_SEED_CAR_T, 1.8998).daily_doses[0].dose_mg == 47.0

    def test_autoimmune_regimen_days_and_totals(self):
        # Seed 003: flu 30 mg/m2/day D-5,-4,-3; cy 500 mg/m2/day D-4,-3; BSA 1.5.
        plan = lymphodepletion_doses(FLU_CY_AUTOIMMUNE, 1.5)
        assert [(d.study_day, d.agent, d.dose_mg) for d in plan.daily_doses] == [
            (-5, "fludarabine", 45.0),
            (-4, "fludarabine", 45.0),
            (-4, "cyclophosphamide", 750.0),
            (-3, "fludarabine", 45.0),
            (-3, "cyclophosphamide", 750.0),
        ]
        assert plan.totals_mg == (("fludarabine", 135.0), ("cyclophosphamide", 1500.0))

    def test_dose_capping_bsa_caps_above_and_not_below(self):
        capped = lymphodepletion_doses(FLU_CY_AUTOIMMUNE, 2.4, max_bsa_m2=2.0)
        assert (capped.bsa_used_m2, capped.total_mg("fludarabine")) == (2.0, 180.0)
        uncapped = lymphodepletion_doses(FLU_CY_AUTOIMMUNE, 1.9, max_bsa_m2=2.0)
        assert uncapped.bsa_used_m2 == 1.9

    def test_rounding_increment_is_per_agent(self):
        regimen = LymphodepletionRegimen("cy-10", (AgentSchedule("cyclophosphamide", 900, (-2,), rounding_mg=10),))
        assert lymphodepletion_doses(regimen, 1.73).total_mg("cyclophosphamide") == 1560.0

    @pytest.mark.parametrize(
        "args, field",
        [
            pytest.param(("flu", 25, (0,)), "study_days", id="day-0-is-infusion"),
            pytest.param(("flu", 25, (-3, -3)), "duplicates", id="duplicate-day"),
            pytest.param(("flu", 0, (-3,)), "mg_per_m2_per_day", id="zero-dose"),
            pytest.param(("", 25, (-3,)), "agent", id="no-agent-name"),
            pytest.param(("flu", 25, ()), "study_days", id="no-days"),
        ],
    )
    def test_invalid_agent_schedule_is_refused(self, args, field):
        with pytest.raises(InvalidRegimenError, match=field):
            AgentSchedule(*args)

    def test_agent_listed_twice_is_refused(self):
        with pytest.raises(InvalidRegimenError, match="twice"):
            LymphodepletionRegimen("x", (AgentSchedule("flu", 25, (-3,)), AgentSchedule("flu", 30, (-4,))))

    @pytest.mark.parametrize("bsa", [0, -1, 5.1, float("nan")])
    def test_implausible_bsa_is_refused(self, bsa):
        with pytest.raises(InvalidAnthropometryError, match="bsa_m2"):
            lymphodepletion_doses(FLU_CY_AUTOIMMUNE, bsa)


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


INFUSION = date(2025, 3, 10)


class TestStudyDay:
    @pytest.mark.parametrize(
        "on, day",
        [
            pytest.param(date(2025, 3, 9), -1, id="day-before-infusion-is-minus-1"),
            pytest.param(date(2025, 3, 10), 0, id="infusion-day-is-0"),
            pytest.param(date(2025, 3, 11), 1, id="day-after-is-plus-1"),
            pytest.param(date(2025, 4, 7), 28, id="day-28-assessment"),
            pytest.param(date(2025, 3, 5), -5, id="lymphodepletion-start"),
        ],
    )
    def test_day_zero_is_the_infusion_date(self, on, day):
        assert study_day(on, INFUSION) == day

    def test_leap_day_is_counted(self):
        assert study_day(date(2024, 3, 1), date(2024, 2, 28)) == 2

    @given(st.integers(-400, 400), st.dates(date(2000, 1, 1), date(2090, 1, 1)))
    def test_date_for_study_day_inverts_study_day(self, day, infusion):
        assert study_day(date_for_study_day(day, infusion), infusion) == day

    def test_datetime_is_refused(self):
        with pytest.raises(StudyDayError, match="infusion_date"):
            study_day(date(2025, 3, 9), datetime(2025, 3, 10, 9, 30))

    def test_autoimmune_lymphodepletion_dates(self):
        # Seed 003: flu D-5/-4/-3, cy D-4/-3; infusion 10 March 2025.
        schedule = [(s.on, s.study_day, s.agent) for s in lymphodepletion_dates(FLU_CY_AUTOIMMUNE, INFUSION)]
        assert schedule == [
            (date(2025, 3, 5), -5, "fludarabine"),
            (date(2025, 3, 6), -4, "fludarabine"),
            (date(2025, 3, 6), -4, "cyclophosphamide"),
            (date(2025, 3, 7), -3, "fludarabine"),
            (date(2025, 3, 7), -3, "cyclophosphamide"),
        ]
