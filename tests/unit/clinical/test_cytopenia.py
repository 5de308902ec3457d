"""Neutrophil count decreased (CTCAE v5.0, Investigations SOC), neutropenia
episodes (recovery = first of 3 consecutive values >= threshold, CIBMTR
Forms Manual / ASTCT Kharfan-Dabaja 2021), B-cell aplasia and CAR-T
expansion (programme conventions, documented in cytopenia.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.cytopenia import (
    DEFAULT_ANC_LLN_PER_UL,
    BCellAplasiaPeriod,
    CarTExpansion,
    DuplicateLabDayError,
    InvalidLabValueError,
    LabValue,
    b_cell_aplasia_periods,
    car_t_expansion,
    neutropenia_episodes,
    neutrophil_count_decreased_grade,
)


class TestCtcaeNeutrophilCountDecreased:
    # CTCAE v5.0: G1 <LLN-1500; G2 <1500-1000; G3 <1000-500; G4 <500 /mm3.
    @pytest.mark.parametrize(
        "anc, grade",
        [
            pytest.param(2000, 0, id="at-default-LLN-2000-grade-0"),
            pytest.param(1999, 1, id="just-below-LLN-grade-1"),
            pytest.param(1500, 1, id="CTCAE-1500-still-grade-1"),
            pytest.param(1499, 2, id="CTCAE-1499-grade-2"),
            pytest.param(1000, 2, id="CTCAE-1000-still-grade-2"),
            pytest.param(999, 3, id="CTCAE-999-grade-3"),
            pytest.param(500, 3, id="CTCAE-500-still-grade-3"),
            pytest.param(499, 4, id="CTCAE-499-grade-4"),
            pytest.param(0, 4, id="CTCAE-0-grade-4"),
        ],
    )
    def test_anc_grade_with_default_lln(self, anc, grade):
        assert DEFAULT_ANC_LLN_PER_UL == 2000
        assert neutrophil_count_decreased_grade(anc) == grade

    def test_lln_is_a_parameter(self):
        assert neutrophil_count_decreased_grade(1700, lln_per_ul=1800) == 1
        assert neutrophil_count_decreased_grade(1700, lln_per_ul=1600) == 0

    @pytest.mark.parametrize(
        "anc, lln, field",
        [
            pytest.param(-1, 2000, "anc_per_ul", id="negative-anc"),
            pytest.param(float("inf"), 2000, "anc_per_ul", id="infinite-anc"),
            pytest.param(True, 2000, "anc_per_ul", id="bool-anc"),
            pytest.param(800, 1499, "lln_per_ul", id="lln-below-1500-incoherent-scale"),
        ],
    )
    def test_invalid_input_raises_error_naming_field(self, anc, lln, field):
        with pytest.raises(InvalidLabValueError, match=field):
            neutrophil_count_decreased_grade(anc, lln)


class TestNeutropeniaEpisodes:
    def test_recovery_is_first_of_three_consecutive_values_at_or_above_threshold(self):
        series = [(0, 1200), (2, 400), (4, 100), (6, 450), (7, 500), (8, 700), (9, 900)]
        (ep,) = neutropenia_episodes(series, threshold_per_ul=500)
        assert (ep.onset_day, ep.recovery_day, ep.duration_days) == (2, 7, 5)
        assert ep.days_below_threshold == 3
        assert (ep.nadir_per_ul, ep.nadir_day) == (100, 4)

    def test_499_is_below_and_500_is_not_below_the_500_threshold(self):
        (ep,) = neutropenia_episodes([(1, 499), (2, 500), (3, 500), (4, 500)], 500)
        assert (ep.onset_day, ep.recovery_day, ep.days_below_threshold) == (1, 2, 1)

    def test_999_is_below_and_1000_is_not_below_the_1000_threshold(self):
        (ep,) = neutropenia_episodes([(1, 999), (2, 1000), (3, 1000), (4, 1000)], 1000)
        assert (ep.onset_day, ep.recovery_day) == (1, 2)

    def test_a_dip_before_three_values_resets_the_recovery_count(self):
        series = [(1, 100), (2, 600), (3, 600), (4, 300), (5, 600), (6, 600), (7, 600)]
        (ep,) = neutropenia_episodes(series, 500)
        assert (ep.recovery_day, ep.duration_days, ep.days_below_threshold) == (5, 4, 2)

    def test_fewer_than_three_values_above_threshold_leaves_episode_unresolved(self):
        (ep,) = neutropenia_episodes([(1, 100), (2, 600), (3, 700)], 500)
        assert (ep.recovery_day, ep.duration_days, ep.resolved) == (None, None, False)

    def test_relapse_below_threshold_after_recovery_is_a_new_episode(self):
        series = [(1, 100), (2, 600), (3, 600), (4, 600), (20, 300), (21, 800), (22, 800), (23, 800)]
        first, second = neutropenia_episodes(series, 500)
        assert (first.onset_day, first.recovery_day) == (1, 2)
        assert (second.onset_day, second.recovery_day, second.duration_days) == (20, 21, 1)

    def test_thresholds_500_and_1000_give_different_episodes(self):
        series = [(1, 800), (2, 300), (3, 700), (4, 700), (5, 700), (6, 1100), (7, 1100), (8, 1100)]
        (e500,) = neutropenia_episodes(series, 500)
        (e1000,) = neutropenia_episodes(series, 1000)
        assert (e500.onset_day, e500.recovery_day) == (2, 3)
        assert (e1000.onset_day, e1000.recovery_day, e1000.days_below_threshold) == (1, 6, 5)

    def test_sparse_sampling_uses_consecutive_values_on_different_days(self):
        # CIBMTR: "three consecutive laboratory values obtained on different days".
        (ep,) = neutropenia_episodes([(1, 100), (5, 600), (9, 600), (14, 600)], 500)
        assert (ep.recovery_day, ep.duration_days, ep.days_below_threshold) == (5, 4, 1)

    def test_never_below_threshold_gives_no_episode(self):
        assert neutropenia_episodes([(1, 2500), (2, 3000)], 500) == ()

    def test_lab_value_objects_and_unsorted_input_are_accepted(self):
        (ep,) = neutropenia_episodes([LabValue(3, 600), LabValue(1, 200), LabValue(4, 600), LabValue(2, 600)])
        assert (ep.onset_day, ep.recovery_day) == (1, 2)

    def test_duplicate_day_is_rejected(self):
        with pytest.raises(DuplicateLabDayError, match="study_day=2"):
            neutropenia_episodes([(1, 100), (2, 200), (2, 300)])

    @pytest.mark.parametrize(
        "kwargs, field",
        [
            pytest.param({"threshold_per_ul": 0}, "threshold_per_ul", id="zero-threshold"),
            pytest.param({"consecutive_values_for_recovery": 0}, "consecutive_values_for_recovery", id="zero-confirmations"),
        ],
    )
    def test_invalid_parameters_raise_error_naming_field(self, kwargs, field):
        with pytest.raises(InvalidLabValueError, match=field):
            neutropenia_episodes([(1, 100)], **kwargs)

    def test_malformed_series_item_is_rejected(self):
        with pytest.raises(InvalidLabValueError, match="series"):
            neutropenia_episodes([(1, 100, 2)])

    @given(
        st.dictionaries(st.integers(-10, 100), st.integers(0, 3000), max_size=40),
        st.sampled_from([500, 1000]),
    )
    def test_duration_is_non_negative_and_covers_days_below(self, values, threshold):
        for ep in neutropenia_episodes(list(values.items()), threshold):
            assert ep.days_below_threshold >= 1
            assert ep.nadir_per_ul < threshold
            if ep.resolved:
                assert ep.duration_days >= 0
                assert ep.days_below_threshold <= ep.duration_days


class TestBCellAplasia:
    def test_start_recovery_and_duration(self):
        series = [(-5, 150), (7, 10), (28, 0), (90, 5), (180, 20), (270, 60)]
        assert b_cell_aplasia_periods(series) == (
            BCellAplasiaPeriod(20.0, start_day=7, recovery_day=180, duration_days=173),
        )

    def test_19_is_aplastic_and_20_is_recovered_at_default_threshold(self):
        (p,) = b_cell_aplasia_periods([(10, 19), (100, 20)])
        assert (p.start_day, p.recovery_day) == (10, 100)

    def test_threshold_is_configurable(self):
        (p,) = b_cell_aplasia_periods([(10, 0), (100, 20), (120, 60)], threshold_per_ul=50)
        assert p.recovery_day == 120

    def test_persisting_aplasia_is_unresolved(self):
        (p,) = b_cell_aplasia_periods([(7, 0), (365, 1)])
        assert (p.recovery_day, p.duration_days) == (None, None)


class TestCarTExpansion:
    def test_peak_day_and_persistence(self):
        series = [(0, 0), (7, 35.0), (10, 118.8), (14, 60.0), (28, 2.0), (90, 0.0)]
        assert car_t_expansion(series) == CarTExpansion(118.8, 10, 28)

    def test_limit_of_detection_sets_persistence(self):
        series = [(7, 35.0), (10, 118.8), (28, 2.0), (60, 0.4)]
        assert car_t_expansion(series, limit_of_detection_per_ul=0.5).last_detectable_day == 28
        assert car_t_expansion(series).last_detectable_day == 60

    def test_value_exactly_at_limit_of_detection_is_detectable(self):
        assert car_t_expansion([(7, 1.0), (14, 0.5)], 0.5).last_detectable_day == 14

    def test_tied_peak_goes_to_the_earliest_day(self):
        assert car_t_expansion([(7, 50), (10, 50)]).peak_day == 7

    def test_nothing_detectable_gives_no_peak(self):
        result = car_t_expansion([(7, 0), (14, 0)])
        assert result == CarTExpansion(None, None, None) and not result.detected

    def test_empty_series_is_rejected(self):
        with pytest.raises(InvalidLabValueError, match="series"):
            car_t_expansion([])
