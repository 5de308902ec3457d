"""Episode view of daily CRS/ICANS grades (programme convention documented in
services/clinical/episodes.py; grades per Lee 2019 ASTCT)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.episodes import (
    DailyToxicityObservation as D,
    DuplicateStudyDayError,
    InvalidEpisodeSeriesError,
    ToxicityEpisode,
    ToxicityKind,
    toxicity_episodes,
)

CRS = ToxicityKind.CRS


class TestSingleEpisode:
    def test_onset_max_grade_resolution_and_duration(self):
        series = [D(0, 0), D(1, 1), D(2, 2, tocilizumab=True), D(3, 1), D(4, 0), D(5, 0)]
        assert toxicity_episodes(CRS, series) == (
            ToxicityEpisode(CRS, onset_day=1, max_grade=2, resolution_day=4, duration_days=3,
                            tocilizumab_given=True, steroids_given=False),
        )

    def test_unresolved_episode_has_no_resolution_or_duration(self):
        (ep,) = toxicity_episodes(ToxicityKind.ICANS, [D(3, 1), D(4, 3, steroids=True)])
        assert (ep.onset_day, ep.max_grade, ep.resolution_day, ep.duration_days) == (3, 3, None, None)
        assert ep.steroids_given and not ep.resolved

    def test_unsorted_input_is_sorted_by_day(self):
        (ep,) = toxicity_episodes(CRS, [D(5, 0), D(2, 1), D(1, 0), D(3, 2)])
        assert (ep.onset_day, ep.resolution_day, ep.duration_days) == (2, 5, 3)

    def test_a_missing_day_does_not_resolve_an_episode(self):
        (ep,) = toxicity_episodes(CRS, [D(1, 2), D(4, 1), D(6, 0)])
        assert (ep.onset_day, ep.resolution_day, ep.duration_days) == (1, 6, 5)

    def test_no_grade_above_zero_gives_no_episode(self):
        assert toxicity_episodes(CRS, [D(0, 0), D(1, 0)]) == ()

    def test_empty_series_gives_no_episode(self):
        assert toxicity_episodes(CRS, []) == ()

    def test_pre_infusion_days_are_allowed(self):
        (ep,) = toxicity_episodes(CRS, [D(-1, 1), D(0, 0)])
        assert (ep.onset_day, ep.duration_days) == (-1, 1)


class TestMultipleEpisodes:
    def test_return_to_zero_then_new_onset_is_a_second_episode(self):
        series = [D(1, 1), D(2, 0), D(5, 2), D(6, 3, steroids=True), D(7, 0)]
        first, second = toxicity_episodes(CRS, series)
        assert (first.onset_day, first.max_grade, first.duration_days, first.steroids_given) == (1, 1, 1, False)
        assert (second.onset_day, second.max_grade, second.resolution_day, second.steroids_given) == (5, 3, 7, True)

    def test_treatment_on_a_day_outside_any_episode_is_not_attributed(self):
        (ep,) = toxicity_episodes(CRS, [D(0, 0, tocilizumab=True), D(1, 1), D(2, 0)])
        assert ep.tocilizumab_given is False

    def test_treatment_on_the_resolution_day_counts_for_the_episode(self):
        (ep,) = toxicity_episodes(CRS, [D(1, 1), D(2, 0, tocilizumab=True)])
        assert ep.tocilizumab_given is True


class TestGrade5EndsTheSeries:
    def test_death_leaves_the_episode_unresolved_at_grade_5(self):
        (ep,) = toxicity_episodes(CRS, [D(1, 3), D(2, 5)])
        assert (ep.max_grade, ep.resolution_day) == (5, None)

    def test_observation_after_death_is_rejected(self):
        with pytest.raises(InvalidEpisodeSeriesError, match="grade=5"):
            toxicity_episodes(CRS, [D(1, 5), D(2, 0)])


class TestInvalidSeries:
    def test_duplicate_study_day_is_rejected(self):
        with pytest.raises(DuplicateStudyDayError, match="study_day=2"):
            toxicity_episodes(CRS, [D(1, 0), D(2, 1), D(2, 2)])

    @pytest.mark.parametrize(
        "kwargs, field",
        [
            pytest.param({"study_day": 1, "grade": 6}, "grade", id="grade-above-5"),
            pytest.param({"study_day": 1, "grade": -1}, "grade", id="negative-grade"),
            pytest.param({"study_day": 1.5, "grade": 1}, "study_day", id="fractional-day"),
            pytest.param({"study_day": 1, "grade": 1, "tocilizumab": "yes"}, "tocilizumab", id="flag-not-bool"),
        ],
    )
    def test_invalid_observation_raises_error_naming_field(self, kwargs, field):
        with pytest.raises(InvalidEpisodeSeriesError, match=field):
            D(**kwargs)

    def test_non_observation_items_are_rejected(self):
        with pytest.raises(InvalidEpisodeSeriesError, match="observations"):
            toxicity_episodes(CRS, [(1, 2)])


@st.composite
def _series(draw):
    days = draw(st.lists(st.integers(-5, 60), unique=True, max_size=30))
    grades = [draw(st.integers(0, 4)) for _ in days]
    return [D(d, g) for d, g in zip(days, grades)]


class TestEpisodeInvariants:
    @given(_series())
    def test_episodes_are_disjoint_ordered_and_have_non_negative_duration(self, series):
        eps = toxicity_episodes(CRS, series)
        for ep in eps:
            assert ep.max_grade >= 1
            if ep.resolved:
                assert ep.duration_days == ep.resolution_day - ep.onset_day > 0
        for a, b in zip(eps, eps[1:]):
            assert a.resolution_day is not None and a.resolution_day < b.onset_day

    @given(_series())
    def test_number_of_episodes_equals_number_of_onsets(self, series):
        grades = [o.grade for o in sorted(series, key=lambda o: o.study_day)]
        onsets = sum(1 for i, g in enumerate(grades) if g >= 1 and (i == 0 or grades[i - 1] == 0))
        assert len(toxicity_episodes(CRS, series)) == onsets
