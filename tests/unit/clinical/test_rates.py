"""Response rates (Clopper-Pearson) and median/range summaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from services.clinical.rates import (
    EmptyValuesError,
    InvalidCountError,
    InvalidRateConfidenceLevelError,
    InvalidValueError,
    RateInputError,
    median_and_range,
    response_rate,
)


class TestClopperPearsonInterval:
    @pytest.mark.parametrize(
        ("successes", "n", "lower", "upper"),
        [
            # R stats::binom.test(7, 10)$conf.int = 0.3475471 0.9332605
            (7, 10, 0.3475, 0.9333),
            # x = 0 and x = n have the closed form 1 - (alpha/2)^(1/n)
            # (Clopper & Pearson 1934): 1 - 0.025^(1/10) = 0.3085
            (0, 10, 0.0, 0.3085),
            (10, 10, 0.6915, 1.0),
            # Seed 002 series: 4/4 patients in MRD-negative CR; 0.025^(1/4) = 0.3976
            (4, 4, 0.3976, 1.0),
            # Newcombe, Stat Med 1998;17:857-872, Table II, method 5 (exact)
            (15, 148, 0.0578, 0.1617),
            (0, 20, 0.0, 0.1684),
            (1, 29, 0.0009, 0.1776),
        ],
    )
    def test_published_intervals_are_reproduced_to_four_decimals(self, successes, n, lower, upper):
        rate = response_rate(successes, n)
        assert (round(rate.ci_lower, 4), round(rate.ci_upper, 4)) == (lower, upper)
        assert rate.estimate == successes / n

    def test_no_responders_give_a_lower_limit_of_exactly_zero(self):
        assert response_rate(0, 7).ci_lower == 0.0

    def test_all_responders_give_an_upper_limit_of_exactly_one(self):
        assert response_rate(7, 7).ci_upper == 1.0

    def test_a_lower_confidence_level_narrows_the_interval(self):
        wide, narrow = response_rate(7, 10, 0.95), response_rate(7, 10, 0.80)
        assert wide.ci_lower < narrow.ci_lower < narrow.ci_upper < wide.ci_upper

    @settings(max_examples=80, deadline=None)
    @given(st.integers(min_value=1, max_value=200).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
    ))
    def test_each_limit_puts_exactly_alpha_over_two_in_the_binomial_tail(self, counts):
        # Defining property of the exact interval (Clopper & Pearson 1934):
        # P(X >= x | p_lower) = alpha/2 and P(X <= x | p_upper) = alpha/2,
        # checked with the binomial distribution rather than the beta quantiles.
        successes, n = counts
        rate = response_rate(successes, n)
        if successes > 0:
            assert binom.sf(successes - 1, n, rate.ci_lower) == pytest.approx(0.025, abs=1e-9)
        if successes < n:
            assert binom.cdf(successes, n, rate.ci_upper) == pytest.approx(0.025, abs=1e-9)
        assert rate.ci_lower <= rate.estimate <= rate.ci_upper

    @pytest.mark.parametrize(
        ("successes", "n", "error", "message"),
        [
            (5, 4, InvalidCountError, "successes = 5 exceeds n = 4"),
            (-1, 4, InvalidCountError, "successes = -1"),
            (0, 0, InvalidCountError, "n = 0"),
            (2.0, 4, InvalidCountError, "successes = 2.0"),
            (1, True, InvalidCountError, "n = True"),
        ],
    )
    def test_impossible_counts_raise_a_named_error(self, successes, n, error, message):
        with pytest.raises(error, match=message):
            response_rate(successes, n)

    @pytest.mark.parametrize("level", [0, 1, 95])
    def test_a_confidence_level_outside_zero_and_one_is_refused(self, level):
        with pytest.raises(InvalidRateConfidenceLevelError, match="confidence_level"):
            response_rate(1, 2, level)


class TestMedianAndRange:
    @pytest.mark.parametrize(
        ("values", "median", "minimum", "maximum"),
        [
            # Seed report: "median 11 days (range 10-18)" from 18, 12, 10, 10.
            ([18, 12, 10, 10], 11, 10, 18),
            ([3, 1, 2], 2, 1, 3),
            ([7], 7, 7, 7),
            ([2.5, 1.0], 1.75, 1.0, 2.5),
        ],
    )
    def test_median_is_the_middle_value_or_the_mean_of_the_two_middle_values(
        self, values, median, minimum, maximum
    ):
        summary = median_and_range(values)
        assert (summary.median, summary.minimum, summary.maximum, summary.n) == (
            median,
            minimum,
            maximum,
            len(values),
        )

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.integers(min_value=-1000, max_value=1000), min_size=1, max_size=40))
    def test_half_the_values_lie_on_each_side_of_the_median(self, values):
        summary = median_and_range(values)
        assert summary.minimum <= summary.median <= summary.maximum
        assert sum(v <= summary.median for v in values) >= len(values) / 2
        assert sum(v >= summary.median for v in values) >= len(values) / 2

    def test_empty_input_is_refused(self):
        with pytest.raises(EmptyValuesError, match="empty"):
            median_and_range([])

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), "3", None, True])
    def test_a_value_that_is_not_a_finite_number_is_refused(self, bad):
        with pytest.raises(InvalidValueError, match=r"values\[1\]"):
            median_and_range([1, bad])

    def test_the_errors_are_value_errors(self):
        assert issubclass(RateInputError, ValueError)
