"""Lymphodepletion doses and dates.

Sources: seed 002 (fludarabine 25 mg/m2 x 3 days + cyclophosphamide 900 mg/m2);
seed 003 (cyclophosphamide 500 mg/m2/day D-4/-3, fludarabine 30 mg/m2/day D-5/-4/-3).
"""

from datetime import date

import pytest

from services.clinical.bsa import InvalidAnthropometryError
from services.clinical.lymphodepletion import (
    FLU_CY_AUTOIMMUNE,
    FLU_CY_SEED_CAR_T,
    AgentSchedule,
    InfusionOutsideWindowError,
    InvalidRegimenError,
    LymphodepletionRegimen,
    check_infusion_window,
    infusion_window,
    lymphodepletion_dates,
    lymphodepletion_doses,
)


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


INFUSION = date(2025, 3, 10)


class TestLymphodepletionDates:
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


# KYMRIAH (tisagenlecleucel) USPI section 2.2, B-ALL: "Infuse KYMRIAH 2 to 14 days after
# completion of the lymphodepleting chemotherapy". The regimen is seed 002's; its window, the
# label's (the seed gives none).
KYMRIAH_WINDOW = LymphodepletionRegimen(
    name="Flu/Cy with the KYMRIAH B-ALL window", agents=FLU_CY_SEED_CAR_T.agents, infusion_window_days=(2, 14),
    source="KYMRIAH USPI 2.2")


class TestInfusionWindow:
    @pytest.mark.parametrize(("infusion_on", "days"), [
        (date(2025, 3, 28), 2),   # the label's earliest: day 0 of seed 002's schedule (last dose day -2)
        (date(2025, 4, 9), 14),   # the label's latest
        (date(2025, 4, 1), 6),
    ])
    def test_inside_the_window_gives_the_days_since_the_last_administration(self, infusion_on, days):
        assert check_infusion_window(KYMRIAH_WINDOW, date(2025, 3, 26), infusion_on) == days

    @pytest.mark.parametrize(("infusion_on", "days"), [
        (date(2025, 3, 27), 1),   # the day after the last dose: too early
        (date(2025, 3, 26), 0),   # the day of the last dose
        (date(2025, 4, 10), 15),  # a day past the label's 14
    ])
    def test_outside_the_window_is_refused_naming_the_dates(self, infusion_on, days):
        with pytest.raises(InfusionOutsideWindowError) as err:
            check_infusion_window(KYMRIAH_WINDOW, date(2025, 3, 26), infusion_on)
        assert f"is {days} days after" in str(err.value) and "2025-03-28 to 2025-04-09" in str(err.value)

    def test_the_window_as_dates(self):
        assert infusion_window(KYMRIAH_WINDOW, date(2025, 3, 26)) == (date(2025, 3, 28), date(2025, 4, 9))

    def test_no_window_stated_checks_nothing(self):
        assert infusion_window(FLU_CY_SEED_CAR_T, date(2025, 3, 26)) is None
        assert check_infusion_window(FLU_CY_SEED_CAR_T, date(2025, 3, 26), date(2025, 6, 1)) == 67

    @pytest.mark.parametrize(("window", "message"), [
        ((5, 2), "runs backwards"),
        ((3, 14), "excludes the regimen's own day 0, 2 days after its last day -2"),
        ((-1, 3), "infusion_window_days"),
    ])
    def test_a_window_that_cannot_hold_is_refused(self, window, message):
        with pytest.raises(InvalidRegimenError, match=message):
            LymphodepletionRegimen(name="x", agents=FLU_CY_SEED_CAR_T.agents, infusion_window_days=window)

    def test_a_datetime_is_not_a_date(self):
        from datetime import datetime
        with pytest.raises(Exception, match="last_administration_on"):
            check_infusion_window(KYMRIAH_WINDOW, datetime(2025, 3, 26, 9), date(2025, 3, 28))
