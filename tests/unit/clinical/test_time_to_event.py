"""Deriving (days, event) pairs for OS, EFS, DOR and TTP from dated facts."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.clinical.survival import kaplan_meier
from services.clinical.time_to_event import (
    DAYS_PER_MONTH,
    FactDateError,
    FactOrderError,
    InvalidLandmarkError,
    SubjectFacts,
    TimeToEvent,
    TimeToEventError,
    TransplantHandling,
    days_to_months,
    duration_of_response,
    event_free_survival,
    overall_survival,
    time_to_progression,
)

INFUSION = dt.date(2024, 1, 10)
CENSOR = TransplantHandling.CENSOR_AT_TRANSPLANT
IGNORE = TransplantHandling.IGNORE_TRANSPLANT
LANDMARK = 90  # days to achieve CR/CRi before counting treatment failure


def day(n: int) -> dt.date:
    return INFUSION + dt.timedelta(days=n)


def facts(last_contact: int, **offsets: int) -> SubjectFacts:
    return SubjectFacts(
        infusion_date=INFUSION,
        last_contact_date=day(last_contact),
        **{f"{name}_date": day(n) for name, n in offsets.items()},
    )


def efs(subject: SubjectFacts, handling: TransplantHandling = IGNORE) -> TimeToEvent:
    return event_free_survival(subject, transplant_handling=handling, response_landmark_days=LANDMARK)


class TestOverallSurvival:
    def test_a_death_is_an_event_at_the_death_date(self):
        assert overall_survival(facts(300, death=300, response=28), transplant_handling=IGNORE) == TimeToEvent(300, 1)

    def test_a_living_subject_is_censored_at_last_contact(self):
        assert overall_survival(facts(400, response=28, relapse=200), transplant_handling=IGNORE) == TimeToEvent(400, 0)

    def test_censoring_at_transplant_stops_follow_up_at_the_transplant(self):
        subject = facts(500, death=500, response=28, transplant=60)
        assert overall_survival(subject, transplant_handling=CENSOR) == TimeToEvent(60, 0)
        assert overall_survival(subject, transplant_handling=IGNORE) == TimeToEvent(500, 1)

    def test_a_death_on_the_transplant_day_still_counts_as_an_event(self):
        subject = facts(60, death=60, response=28, transplant=60)
        assert overall_survival(subject, transplant_handling=CENSOR) == TimeToEvent(60, 1)


class TestEventFreeSurvival:
    def test_a_responder_who_relapses_has_the_event_at_relapse(self):
        assert efs(facts(400, response=28, relapse=180)) == TimeToEvent(180, 1)

    def test_a_responder_who_dies_in_remission_has_the_event_at_death(self):
        assert efs(facts(250, death=250, response=28)) == TimeToEvent(250, 1)

    def test_a_responder_in_continuing_remission_is_censored_at_last_contact(self):
        assert efs(facts(365, response=28)) == TimeToEvent(365, 0)

    def test_no_response_by_the_landmark_is_a_treatment_failure_at_day_zero(self):
        # ELN 2022: failure to achieve CR by the landmark is dated at day 1 of
        # treatment, i.e. elapsed time 0 from infusion.
        assert efs(facts(120)) == TimeToEvent(0, 1)

    def test_a_response_after_the_landmark_does_not_undo_the_failure(self):
        assert efs(facts(200, response=LANDMARK + 1)) == TimeToEvent(0, 1)

    def test_a_response_on_the_landmark_day_counts(self):
        assert efs(facts(200, response=LANDMARK)) == TimeToEvent(200, 0)

    @pytest.mark.parametrize(
        "subject",
        [facts(40, death=40), facts(60, relapse=45)],
        ids=["death before the landmark", "progression before the landmark"],
    )
    def test_death_or_progression_without_response_is_a_failure_at_day_zero(self, subject):
        assert efs(subject) == TimeToEvent(0, 1)

    def test_a_subject_not_yet_at_the_landmark_without_response_is_censored(self):
        assert efs(facts(20)) == TimeToEvent(20, 0)

    def test_censoring_at_transplant_censors_a_responder_at_the_transplant(self):
        subject = facts(400, response=28, transplant=70, relapse=300)
        assert efs(subject, CENSOR) == TimeToEvent(70, 0)
        assert efs(subject, IGNORE) == TimeToEvent(300, 1)

    def test_a_response_after_a_censoring_transplant_is_not_observed(self):
        subject = facts(400, transplant=30, response=45)
        assert efs(subject, CENSOR) == TimeToEvent(30, 0)
        assert efs(subject, IGNORE) == TimeToEvent(400, 0)

    @pytest.mark.parametrize("landmark", [-1, 1.5, True, "90"])
    def test_an_invalid_landmark_is_refused(self, landmark):
        with pytest.raises(InvalidLandmarkError, match="response_landmark_days"):
            event_free_survival(facts(100), transplant_handling=IGNORE, response_landmark_days=landmark)


class TestDurationOfResponse:
    def test_it_runs_from_first_response_to_relapse(self):
        subject = facts(400, response=28, relapse=180)
        assert duration_of_response(subject, transplant_handling=IGNORE) == TimeToEvent(152, 1)

    def test_death_in_remission_ends_the_response(self):
        subject = facts(200, death=200, response=30)
        assert duration_of_response(subject, transplant_handling=IGNORE) == TimeToEvent(170, 1)

    def test_an_ongoing_response_is_censored_at_last_contact(self):
        subject = facts(365, response=30)
        assert duration_of_response(subject, transplant_handling=IGNORE) == TimeToEvent(335, 0)

    def test_non_responders_are_excluded(self):
        assert duration_of_response(facts(365, relapse=60), transplant_handling=IGNORE) is None

    def test_censoring_at_transplant_censors_the_response_at_the_transplant(self):
        subject = facts(365, response=30, transplant=100, relapse=200)
        assert duration_of_response(subject, transplant_handling=CENSOR) == TimeToEvent(70, 0)


class TestTimeToProgression:
    def test_progression_is_the_event(self):
        subject = facts(400, death=400, response=28, relapse=180)
        assert time_to_progression(subject, transplant_handling=IGNORE) == TimeToEvent(180, 1)

    def test_a_death_without_progression_is_censored_at_death(self):
        subject = facts(250, death=250, response=28)
        assert time_to_progression(subject, transplant_handling=IGNORE) == TimeToEvent(250, 0)

    def test_a_living_progression_free_subject_is_censored_at_last_contact(self):
        assert time_to_progression(facts(365, response=28), transplant_handling=IGNORE) == TimeToEvent(365, 0)

    def test_censoring_at_transplant_hides_a_later_progression(self):
        subject = facts(365, response=28, transplant=90, relapse=150)
        assert time_to_progression(subject, transplant_handling=CENSOR) == TimeToEvent(90, 0)


class TestMonths:
    def test_a_month_is_365_25_over_12_days(self):
        assert DAYS_PER_MONTH == 365.25 / 12
        assert days_to_months(365.25) == 12.0

    def test_the_pair_in_months_keeps_the_event_flag(self):
        assert TimeToEvent(days=0, event=1).as_months_pair() == (0.0, 1)
        assert TimeToEvent(days=183, event=0).months == pytest.approx(6.0123, abs=1e-4)

    def test_pairs_feed_the_kaplan_meier_estimator(self):
        subjects = [facts(300, death=300), facts(400), facts(100, death=100)]
        pairs = [overall_survival(s, transplant_handling=IGNORE).as_pair() for s in subjects]
        assert [r.time for r in kaplan_meier(pairs).rows] == [100, 300]


class TestImpossibleFactsAreRefusedByName:
    @pytest.mark.parametrize(
        ("subject", "message"),
        [
            (facts(100, death=-3), r"death_date = 2024-01-07 is before infusion_date"),
            (facts(-1), r"last_contact_date = 2024-01-09 is before infusion_date"),
            (facts(100, response=-5), r"response_date .* before infusion_date"),
            (facts(100, death=50), r"last_contact_date = .* is after death_date"),
            (facts(50, death=50, relapse=60), r"relapse_date = .* is after death_date"),
            (facts(50, death=50, transplant=51), r"transplant_date = .* is after death_date"),
            (facts(100, response=120), r"response_date = .* is after last_contact_date"),
            (facts(100, response=60, relapse=30), r"relapse_date = .* is before the first response_date"),
        ],
    )
    def test_out_of_order_dates_raise_fact_order_error(self, subject, message):
        with pytest.raises(FactOrderError, match=message):
            overall_survival(subject, transplant_handling=IGNORE)

    def test_a_death_after_the_last_recorded_contact_is_accepted(self):
        subject = facts(100, relapse=150, death=200)
        assert overall_survival(subject, transplant_handling=IGNORE) == TimeToEvent(200, 1)

    @pytest.mark.parametrize(
        "bad",
        [None, "2024-01-10", dt.datetime(2024, 1, 10, 8, 0)],
    )
    def test_an_infusion_date_that_is_not_a_calendar_date_is_refused(self, bad):
        subject = SubjectFacts(infusion_date=bad, last_contact_date=day(10))
        with pytest.raises(FactDateError, match="infusion_date"):
            overall_survival(subject, transplant_handling=IGNORE)

    def test_an_unknown_transplant_handling_is_refused(self):
        with pytest.raises(TimeToEventError, match="transplant_handling"):
            overall_survival(facts(10), transplant_handling="censor")

    def test_the_errors_are_value_errors(self):
        assert issubclass(TimeToEventError, ValueError)


@st.composite
def consistent_facts(draw) -> SubjectFacts:
    end = draw(st.integers(min_value=0, max_value=1500))
    dead = draw(st.booleans())
    response = draw(st.none() | st.integers(min_value=0, max_value=end))
    relapse = draw(st.none() | st.integers(min_value=response or 0, max_value=end))
    transplant = draw(st.none() | st.integers(min_value=0, max_value=end))
    last_contact = draw(st.integers(min_value=0, max_value=end)) if dead else end
    offsets = {"response": response, "relapse": relapse, "transplant": transplant}
    if dead:
        offsets["death"] = end
    return facts(last_contact, **{k: v for k, v in offsets.items() if v is not None})


class TestProperties:
    @settings(max_examples=100, deadline=None)
    @given(consistent_facts(), st.sampled_from(list(TransplantHandling)))
    def test_no_endpoint_outlasts_overall_survival(self, subject, handling):
        os_days = overall_survival(subject, transplant_handling=handling).days
        assert 0 <= time_to_progression(subject, transplant_handling=handling).days <= os_days
        assert 0 <= efs(subject, handling).days <= os_days
        dor = duration_of_response(subject, transplant_handling=handling)
        if dor is not None:
            assert 0 <= (subject.response_date - INFUSION).days + dor.days <= os_days

    @settings(max_examples=100, deadline=None)
    @given(consistent_facts())
    def test_censoring_at_transplant_never_lengthens_follow_up(self, subject):
        for endpoint in (overall_survival, time_to_progression):
            censored = endpoint(subject, transplant_handling=CENSOR)
            ignored = endpoint(subject, transplant_handling=IGNORE)
            assert censored.days <= ignored.days
            assert censored.event <= ignored.event

    @settings(max_examples=100, deadline=None)
    @given(consistent_facts())
    def test_without_a_transplant_the_handling_makes_no_difference(self, subject):
        if subject.transplant_date is not None:
            subject = SubjectFacts(
                infusion_date=subject.infusion_date,
                last_contact_date=subject.last_contact_date,
                death_date=subject.death_date,
                relapse_date=subject.relapse_date,
                response_date=subject.response_date,
            )
        for endpoint in (overall_survival, time_to_progression, duration_of_response):
            assert endpoint(subject, transplant_handling=CENSOR) == endpoint(subject, transplant_handling=IGNORE)
        assert efs(subject, CENSOR) == efs(subject, IGNORE)
