"""Study days: day 0 is the infusion date (seeds: "day -5 .. -3", "day 28")."""

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.study_days import StudyDayError, date_for_study_day, study_day

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
