"""Clinical dates: a fact's day is where it happened; study day 0 is the infusion day."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from services.clinical.study_days import StudyDayError
from services.kernel.clinical_dates import clinical_date, days_between, start_of_day, study_day

CET = timezone(timedelta(hours=1))


class TestClinicalDate:
    def test_an_infusion_at_half_past_midnight_cet_is_on_that_cet_day(self):
        assert clinical_date(datetime(2024, 3, 2, 0, 30, tzinfo=CET)) == date(2024, 3, 2)

    def test_the_same_instant_read_in_utc_is_on_the_day_before(self):
        assert clinical_date(datetime(2024, 3, 1, 23, 30, tzinfo=timezone.utc)) == date(2024, 3, 1)

    def test_a_time_without_its_offset_has_no_clinical_date(self):
        with pytest.raises(ValueError, match="offset"):
            clinical_date(datetime(2024, 3, 2, 0, 30))


class TestStartOfDay:
    def test_a_dated_fact_is_stored_at_midnight_utc_of_its_date(self):
        assert start_of_day(date(2024, 3, 4)) == datetime(2024, 3, 4, tzinfo=timezone.utc)

    def test_its_date_reads_back_unchanged(self):
        assert clinical_date(start_of_day(date(2024, 2, 29))) == date(2024, 2, 29)


class TestStudyDay:
    @pytest.mark.parametrize(
        "on, day",
        [
            pytest.param(date(2024, 3, 1), 0, id="infusion-day-is-day-0"),
            pytest.param(date(2024, 2, 29), -1, id="day-before-is-day-minus-1"),
            # CAR-CIK protocol (seed 000): primary endpoint at day 28 after the first infusion
            pytest.param(date(2024, 3, 29), 28, id="day-28"),
        ],
    )
    def test_the_study_day_counts_from_the_infusion_day_as_day_0(self, on, day):
        assert study_day(on, date(2024, 3, 1)) == day

    def test_a_leap_day_counts_as_a_day(self):
        assert study_day(date(2024, 3, 1), date(2024, 2, 1)) == 29

    def test_a_time_of_day_is_refused_so_it_cannot_shift_the_count(self):
        with pytest.raises(StudyDayError, match="input should be a valid date"):
            study_day(datetime(2024, 3, 29, 23, 0, tzinfo=timezone.utc), date(2024, 3, 1))


class TestDaysBetween:
    def test_days_between_is_negative_when_the_end_is_earlier(self):
        assert days_between(date(2024, 3, 27), date(2024, 3, 10)) == -17
