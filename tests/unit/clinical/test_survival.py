"""Kaplan-Meier estimator: published worked examples, lifelines agreement, properties.

lifelines is used here only as an independent reference implementation.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from services.clinical.survival import (
    EmptySurvivalDataError,
    InvalidConfidenceLevelError,
    InvalidEventFlagError,
    InvalidTimeError,
    KaplanMeierEstimate,
    SurvivalDataError,
    TimeBeyondFollowUpError,
    kaplan_meier,
    survival_at,
)

# Freireich et al., Blood 1963;21:699-716: remission times (weeks) of the
# 6-MP arm, n = 21, 9 relapses; event = 0 marks a censored remission.
SIX_MP = [
    (6, 1), (6, 1), (6, 1), (6, 0), (7, 1), (9, 0), (10, 1), (10, 0), (11, 0),
    (13, 1), (16, 1), (17, 0), (19, 0), (20, 0), (22, 1), (23, 1), (25, 0),
    (32, 0), (32, 0), (34, 0), (35, 0),
]

HALF_TOLERANCE = math.sqrt(2.0**-52)


class TestTheSixMercaptopurineWorkedExample:
    """Freireich 6-MP arm as tabulated in Kleinbaum & Klein, *Survival Analysis:
    A Self-Learning Text* (3rd ed. 2012) ch. 2, and Klein & Moeschberger,
    *Survival Analysis* (2nd ed. 2003) Table 4.1A."""

    @pytest.mark.parametrize(
        ("time", "n_at_risk", "n_events", "n_censored", "survival", "std_error"),
        [
            # t(f), n(f), m(f), q(f), S(t(f)): Kleinbaum & Klein ch. 2 table;
            # Greenwood SE: Klein & Moeschberger Table 4.1A.
            (6, 21, 3, 1, 0.857, 0.0764),
            (7, 17, 1, 1, 0.807, 0.0869),
            (10, 15, 1, 2, 0.753, 0.0963),
            (13, 12, 1, 0, 0.690, 0.1068),
            (16, 11, 1, 3, 0.627, 0.1141),
            (22, 7, 1, 0, 0.538, 0.1282),
            (23, 6, 1, 5, 0.448, 0.1346),
        ],
    )
    def test_each_event_time_row_matches_the_published_table(
        self, time, n_at_risk, n_events, n_censored, survival, std_error
    ):
        row = {r.time: r for r in kaplan_meier(SIX_MP).rows}[time]
        assert (row.n_at_risk, row.n_events, row.n_censored) == (n_at_risk, n_events, n_censored)
        assert round(row.survival, 3) == survival
        assert round(row.std_error, 4) == std_error

    def test_the_table_lists_exactly_the_seven_distinct_relapse_times(self):
        estimate = kaplan_meier(SIX_MP)
        assert [r.time for r in estimate.rows] == [6, 7, 10, 13, 16, 22, 23]
        assert (estimate.n_subjects, estimate.n_events) == (21, 9)
        assert estimate.n_censored_before_first_event == 0
        assert estimate.max_follow_up == 35

    def test_the_median_remission_time_is_23_weeks(self):
        # Kleinbaum & Klein ch. 2: median = 23 weeks for the 6-MP group.
        assert kaplan_meier(SIX_MP).median.estimate == 23

    def test_the_log_log_median_interval_is_13_to_not_reached(self):
        # Brookmeyer-Crowley by inversion of the log(-log) pointwise limits:
        # the lower curve first drops to <= 0.5 at week 13 (0.432) and the upper
        # curve never does (0.680 at the last event). Matches lifelines (13, inf).
        # (R's default conf.type = "log" prints 0.95LCL 16, UCL NA for these data.)
        median = kaplan_meier(SIX_MP).median
        assert (median.ci_lower, median.ci_upper) == (13, None)

    def test_every_column_matches_lifelines(self):
        _assert_matches_lifelines(SIX_MP)

    def test_survival_at_fixed_times_reads_the_step_function(self):
        estimate = kaplan_meier(SIX_MP)
        assert survival_at(estimate, 5).survival == 1.0
        assert survival_at(estimate, 12).survival == pytest.approx(0.753, abs=5e-4)
        assert survival_at(estimate, 23).survival == pytest.approx(0.448, abs=5e-4)
        assert survival_at(estimate, 35).survival == pytest.approx(0.448, abs=5e-4)


class TestAgreementWithLifelines:
    @settings(max_examples=40, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=25), st.integers(min_value=0, max_value=1)),
            min_size=1,
            max_size=40,
        )
    )
    def test_tied_integer_data_agree_column_by_column(self, observations):
        _assert_matches_lifelines(observations)

    @pytest.mark.parametrize("seed", range(8))
    def test_seeded_continuous_data_agree_column_by_column(self, seed):
        rng = random.Random(seed)
        n = rng.randint(5, 120)
        observations = []
        for _ in range(n):
            event_time = rng.expovariate(1 / 12)
            censor_time = rng.uniform(0, 36)
            observations.append(
                (min(event_time, censor_time), int(event_time <= censor_time))
            )
        _assert_matches_lifelines(observations)

    @pytest.mark.parametrize("level", [0.80, 0.90, 0.99])
    def test_other_confidence_levels_agree_with_lifelines(self, level):
        _assert_matches_lifelines(SIX_MP, confidence_level=level)


class TestTiesAndBoundaries:
    def test_events_precede_censorings_at_the_same_time(self):
        # Kaplan & Meier 1958: a subject censored at t was at risk at t.
        (row,) = kaplan_meier([(5, 1), (5, 0)]).rows
        assert (row.n_at_risk, row.n_events, row.n_censored) == (2, 1, 1)
        assert row.survival == 0.5

    def test_censorings_before_the_first_event_are_counted_separately(self):
        estimate = kaplan_meier([(1, 0), (2, 0), (3, 1), (4, 0)])
        assert estimate.n_censored_before_first_event == 2
        (row,) = estimate.rows
        assert (row.time, row.n_at_risk, row.n_censored, row.survival) == (3, 2, 1, 0.5)

    def test_all_censored_data_have_no_rows_and_no_median(self):
        estimate = kaplan_meier([(3, 0), (7, 0)])
        assert estimate.rows == ()
        assert (estimate.median.estimate, estimate.median.ci_lower, estimate.median.ci_upper) == (
            None,
            None,
            None,
        )

    def test_standard_error_and_interval_are_undefined_once_survival_reaches_zero(self):
        # Greenwood's term d/(n(n-d)) is infinite when n = d; R reports NA.
        last = kaplan_meier([(1, 1), (2, 1), (3, 1)]).rows[-1]
        assert last.survival == 0.0
        assert (last.std_error, last.ci_lower, last.ci_upper) == (None, None, None)

    def test_an_event_at_time_zero_drops_the_curve_at_the_origin(self):
        # EFS treatment failures are dated at day 0.
        row = kaplan_meier([(0, 1), (5, 0), (9, 1), (9, 0)]).rows[0]
        assert (row.time, row.n_at_risk, row.survival) == (0, 4, 0.75)

    def test_the_order_of_the_observations_does_not_matter(self):
        shuffled = list(SIX_MP)
        random.Random(7).shuffle(shuffled)
        assert kaplan_meier(shuffled) == kaplan_meier(SIX_MP)


class TestTheMedianFollowsRPrintSurvfit:
    def test_a_flat_stretch_exactly_at_one_half_gives_the_midpoint_to_the_next_drop(self):
        # S = .75, .5, .25, 0 at 1..4; R print.survfit midpoint rule -> 2.5.
        assert kaplan_meier([(1, 1), (2, 1), (3, 1), (4, 1)]).median.estimate == 2.5

    def test_a_half_reached_within_rounding_still_uses_the_midpoint(self):
        # R survival's print.survfit comment: survfit(Surv(1:100) ~ 1) gives
        # S = .5 + 1.1e-16 at t = 50; the tolerance sqrt(eps) makes the median 50.5.
        assert kaplan_meier([(t, 1) for t in range(1, 101)]).median.estimate == 50.5

    def test_a_flat_at_one_half_that_never_drops_again_gives_the_time_it_was_reached(self):
        # print.survfit (minmin) takes x[1] when no later value is below 0.5.
        assert kaplan_meier([(1, 1), (2, 1), (3, 0), (4, 0)]).median.estimate == 2

    def test_the_example_from_r_survivals_own_quantile_tests_has_median_9(self):
        # therneau/survival tests/quantile.R, test1 without the NA-status row:
        # S = 6/7, 18/35, 9/35 at 1, 6, 9 -> median 9.
        data = [(9, 1), (1, 1), (1, 0), (6, 1), (6, 1), (8, 0), (10, 0)]
        assert kaplan_meier(data).median.estimate == 9

    def test_a_curve_that_stays_above_one_half_has_no_median(self):
        assert kaplan_meier([(1, 1), (2, 0), (3, 0), (4, 0)]).median.estimate is None


class TestSurvivalAtAFixedTime:
    def test_a_time_between_events_returns_the_last_event_row_with_its_interval(self):
        estimate = kaplan_meier(SIX_MP)
        at_ten = {r.time: r for r in estimate.rows}[10]
        reading = survival_at(estimate, 12.5)
        assert (reading.survival, reading.std_error, reading.ci_lower, reading.ci_upper) == (
            at_ten.survival,
            at_ten.std_error,
            at_ten.ci_lower,
            at_ten.ci_upper,
        )

    def test_before_the_first_event_survival_is_one_with_a_degenerate_interval(self):
        reading = survival_at(kaplan_meier(SIX_MP), 0)
        assert (reading.survival, reading.std_error, reading.ci_lower, reading.ci_upper) == (
            1.0,
            0.0,
            1.0,
            1.0,
        )

    def test_a_time_after_the_last_follow_up_is_refused(self):
        with pytest.raises(TimeBeyondFollowUpError, match="35.5.*35"):
            survival_at(kaplan_meier(SIX_MP), 35.5)

    def test_a_negative_time_is_refused(self):
        with pytest.raises(InvalidTimeError, match="-1"):
            survival_at(kaplan_meier(SIX_MP), -1)


class TestInvalidInputIsRefusedByName:
    @pytest.mark.parametrize(
        ("observations", "error", "message"),
        [
            ([], EmptySurvivalDataError, "empty"),
            ([(3, 1), (-2, 0)], InvalidTimeError, r"observations\[1\]\.time = -2.*negative"),
            ([(float("nan"), 1)], InvalidTimeError, "nan"),
            ([(float("inf"), 0)], InvalidTimeError, "inf"),
            ([("3", 1)], InvalidTimeError, "'3'"),
            ([(3, 2)], InvalidEventFlagError, r"observations\[0\]\.event = 2.*0 or 1"),
            ([(3, 1.0)], InvalidEventFlagError, "1.0"),
            ([(3, "1")], InvalidEventFlagError, "'1'"),
            ([(3,)], SurvivalDataError, r"\(time, event\)"),
        ],
    )
    def test_bad_observations_raise_a_named_error(self, observations, error, message):
        with pytest.raises(error, match=message):
            kaplan_meier(observations)

    @pytest.mark.parametrize("level", [0, 1, 1.5, -0.1])
    def test_a_confidence_level_outside_zero_and_one_is_refused(self, level):
        with pytest.raises(InvalidConfidenceLevelError, match="confidence_level"):
            kaplan_meier(SIX_MP, confidence_level=level)

    def test_the_errors_are_value_errors(self):
        assert issubclass(SurvivalDataError, ValueError)


observations_strategy = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=100, allow_nan=False, allow_infinity=False),
        st.integers(min_value=0, max_value=1),
    ),
    min_size=1,
    max_size=50,
)


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(observations_strategy)
    def test_the_estimate_is_non_increasing_and_within_zero_and_one(self, observations):
        values = [r.survival for r in kaplan_meier(observations).rows]
        assert all(0.0 <= v <= 1.0 for v in values)
        assert all(later <= earlier for earlier, later in zip(values, values[1:]))

    @settings(max_examples=60, deadline=None)
    @given(observations_strategy)
    def test_the_interval_brackets_the_estimate(self, observations):
        for row in kaplan_meier(observations).rows:
            if row.survival > 0:
                assert row.ci_lower <= row.survival <= row.ci_upper
                assert 0.0 <= row.ci_lower and row.ci_upper <= 1.0

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=50))
    def test_without_censoring_the_estimate_is_the_empirical_survival_function(self, times):
        estimate = kaplan_meier([(t, 1) for t in times])
        for row in estimate.rows:
            assert row.survival == pytest.approx(
                sum(t > row.time for t in times) / len(times), abs=1e-12
            )

    @settings(max_examples=60, deadline=None)
    @given(observations_strategy, st.floats(min_value=0, max_value=50))
    def test_extending_follow_up_after_the_last_event_does_not_change_the_table(
        self, observations, extra
    ):
        # Censored subjects already beyond the last event stay in every risk
        # set however long they are followed, so S, SE and CI are unchanged.
        estimate = kaplan_meier(observations)
        if not estimate.rows:
            return
        last_event = estimate.rows[-1].time
        extended = [
            (t + extra, e) if (e == 0 and t > last_event) else (t, e) for t, e in observations
        ]
        assert kaplan_meier(extended).rows == estimate.rows

    @settings(max_examples=60, deadline=None)
    @given(observations_strategy, st.floats(min_value=0, max_value=100))
    def test_adding_a_censoring_after_the_last_event_adds_one_to_every_risk_set(
        self, observations, offset
    ):
        # The brief's "adding a censored observation after the last event does
        # not change S" does not hold: the new subject is at risk at every event
        # time. What holds is that only the risk sets change, by exactly one.
        estimate = kaplan_meier(observations)
        later = estimate.max_follow_up + offset
        widened = kaplan_meier([*observations, (later, 0)])
        assert [(r.time, r.n_events) for r in widened.rows] == [
            (r.time, r.n_events) for r in estimate.rows
        ]
        assert [r.n_at_risk for r in widened.rows] == [r.n_at_risk + 1 for r in estimate.rows]


def test_a_censoring_added_after_the_last_event_does_change_earlier_estimates():
    assert kaplan_meier([(1, 1), (2, 0)]).rows[0].survival == 0.5
    assert kaplan_meier([(1, 1), (2, 0), (3, 0)]).rows[0].survival == pytest.approx(2 / 3)


def _assert_matches_lifelines(observations, confidence_level=0.95):
    ours = kaplan_meier(observations, confidence_level=confidence_level)
    times = [t for t, _ in observations]
    events = [e for _, e in observations]
    kmf = KaplanMeierFitter().fit(times, events, alpha=1 - confidence_level)
    lower_col, upper_col = kmf.confidence_interval_.columns  # lifelines: lower first
    assert "lower" in lower_col and "upper" in upper_col

    table = kmf.event_table
    event_times = table.index[table["observed"] > 0].tolist()
    assert [r.time for r in ours.rows] == pytest.approx(event_times, abs=0)

    for index, row in enumerate(ours.rows):
        at = table.loc[row.time]
        next_time = ours.rows[index + 1].time if index + 1 < len(ours.rows) else math.inf
        censored_in_interval = table["censored"][(table.index >= row.time) & (table.index < next_time)]
        assert (row.n_at_risk, row.n_events, row.n_censored) == (
            at["at_risk"],
            at["observed"],
            censored_in_interval.sum(),
        )
        assert row.survival == pytest.approx(kmf.survival_function_.loc[row.time].iloc[0], abs=1e-9)
        if row.survival == 0:
            # lifelines drops the infinite Greenwood term and reports [0, 0];
            # R (and we) report the SE and interval as undefined.
            assert (row.std_error, row.ci_lower, row.ci_upper) == (None, None, None)
            continue
        # lifelines keeps Greenwood's sum d/(n(n-d)) as _cumulative_sq_ (no public SE).
        lifelines_se = row.survival * math.sqrt(kmf._cumulative_sq_.loc[row.time])
        assert row.std_error == pytest.approx(lifelines_se, abs=1e-9)
        ci = kmf.confidence_interval_.loc[row.time]
        assert row.ci_lower == pytest.approx(ci[lower_col], abs=1e-6)
        assert row.ci_upper == pytest.approx(ci[upper_col], abs=1e-6)

    _assert_median_matches(ours, [r.survival for r in ours.rows], ours.median.estimate, kmf.median_survival_time_)
    medians = median_survival_times(kmf.confidence_interval_)
    _assert_median_matches(ours, [r.ci_lower for r in ours.rows], ours.median.ci_lower, medians[lower_col].iloc[0])
    _assert_median_matches(ours, [r.ci_upper for r in ours.rows], ours.median.ci_upper, medians[upper_col].iloc[0])


def _assert_median_matches(ours: KaplanMeierEstimate, curve, our_value, lifelines_value):
    """lifelines takes the first time with value <= 0.5 exactly, no midpoint rule,
    inf when never reached, and uses 0 where S = 0 (we: undefined)."""
    times = [r.time for r in ours.rows]
    on_half = [i for i, v in enumerate(curve) if v is not None and abs(v - 0.5) < HALF_TOLERANCE]
    if on_half:
        # R's midpoint rule applies; lifelines returns one end of the flat.
        hit = on_half[0]
        drops = [times[j] for j in range(hit + 1, len(times)) if curve[j] is not None and curve[j] < curve[hit]]
        assert our_value == ((times[hit] + drops[0]) / 2 if drops else times[hit])
        # lifelines' S is exp(sum of logs), so it may sit a hair above 0.5 and
        # return the next drop, or inf when there is none.
        assert lifelines_value in (times[hit], *(drops[:1] or [math.inf]))
    elif our_value is None and math.isfinite(lifelines_value):
        assert ours.rows[-1].survival == 0 and lifelines_value == ours.rows[-1].time
    else:
        assert (math.inf if our_value is None else our_value) == lifelines_value


class TestTheIntervalTypes:
    """R ``survfit(Surv(time, status) ~ 1)`` on the 6-MP arm with its default ``conf.type =
    "log"`` (the interval of R's printed summary): exp(log S -/+ 1.96 sqrt(Greenwood sum)),
    capped at 1; and ``"plain"``, S -/+ 1.96 SE(S)."""

    @pytest.mark.parametrize(("time", "lower", "upper"), [
        (6, 0.720, 1.000), (7, 0.653, 0.996), (10, 0.586, 0.968), (13, 0.510, 0.935),
        (16, 0.439, 0.896), (22, 0.337, 0.858), (23, 0.249, 0.807),
    ])
    def test_r_default_log_interval(self, time, lower, upper):
        row = next(r for r in kaplan_meier(SIX_MP, conf_type="log").rows if r.time == time)
        assert (round(row.ci_lower, 3), round(row.ci_upper, 3)) == (lower, upper)

    def test_plain_interval_is_s_plus_minus_z_se_clipped(self):
        est = kaplan_meier(SIX_MP, conf_type="plain")
        first = est.rows[0]
        assert first.ci_upper == 1.0 and first.ci_lower == pytest.approx(0.857 - 1.959964 * 0.0764, abs=1e-3)
        assert est.conf_type == "plain"

    def test_the_log_log_default_is_unchanged(self):
        assert kaplan_meier(SIX_MP).rows == kaplan_meier(SIX_MP, conf_type="log-log").rows

    def test_an_unknown_type_is_refused(self):
        with pytest.raises(InvalidConfidenceLevelError, match="conf_type"):
            kaplan_meier(SIX_MP, conf_type="arcsine")
