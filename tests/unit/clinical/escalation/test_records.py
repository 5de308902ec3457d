"""Per-patient DLT records read into per-level state, and the 3+3 decision from them.

Cap: seed 001 ("A maximum of 6 patients will be enrolled in two different steps").
"""

from datetime import date, datetime, timedelta

import pytest

from services.clinical.escalation.core import Action, InvalidDesignError
from services.clinical.escalation.records import (
    NK_PH_POSITIVE_ALL_PHASE_I,
    EscalationProgramme,
    InvalidPatientRecordError,
    PatientDltRecord,
    decide_from_records,
    level_states_from_records,
)

A = Action


D0 = date(2025, 1, 1)


def rec(pid, level, infused_days_ago, dlt_day=None, today=D0 + timedelta(days=100)):
    infusion = today - timedelta(days=infused_days_ago)
    return PatientDltRecord(pid, level, infusion, None if dlt_day is None else infusion + timedelta(days=dlt_day))


TODAY = D0 + timedelta(days=100)


class TestDltObservationWindow:
    def test_patient_becomes_evaluable_on_the_day_the_window_closes(self):
        # window 28 d: 28 days since infusion -> evaluable; 27 -> still pending.
        states = level_states_from_records([rec("a", 1, 28), rec("b", 1, 27)], TODAY, 28, 2)
        assert (states[0].evaluable, states[0].pending) == (1, 1)

    def test_dlt_makes_a_patient_evaluable_before_the_window_closes(self):
        states = level_states_from_records([rec("a", 2, 5, dlt_day=3)], TODAY, 28, 2)
        assert (states[1].evaluable, states[1].dlts, states[1].pending) == (1, 1, 0)

    def test_dlt_on_the_last_day_of_the_window_counts(self):
        states = level_states_from_records([rec("a", 1, 40, dlt_day=28)], TODAY, 28, 1)
        assert states[0].dlts == 1

    @pytest.mark.parametrize(
        "record, field",
        [
            pytest.param(rec("a", 1, 40, dlt_day=29), "outside the 28-day DLT window", id="dlt-after-window"),
            pytest.param(rec("a", 1, 10, dlt_day=-1), "dlt_date", id="dlt-before-infusion"),
            pytest.param(rec("a", 1, 2, dlt_day=5), "dlt_date", id="dlt-in-the-future"),
            pytest.param(rec("a", 1, -1), "infusion_date", id="infusion-in-the-future"),
            pytest.param(rec("a", 3, 10), "dose_level", id="level-not-planned"),
            pytest.param(PatientDltRecord("a", 1, datetime(2025, 1, 1, 8, 0)), "infusion_date", id="datetime"),
        ],
    )
    def test_impossible_record_is_refused(self, record, field):
        with pytest.raises(InvalidPatientRecordError, match=field):
            level_states_from_records([record], TODAY, 28, 2)

    def test_duplicate_patient_is_refused(self):
        with pytest.raises(InvalidPatientRecordError, match="patient_id 'a'"):
            level_states_from_records([rec("a", 1, 40), rec("a", 1, 40)], TODAY, 28, 2)

    def test_window_is_a_validated_programme_parameter(self):
        with pytest.raises(InvalidDesignError, match="dlt_window_days"):
            EscalationProgramme("x", 2, 6, 0)

    def test_nk_programme_waits_while_second_step_is_in_window_then_stops_at_cap(self):
        # Seed 001: two steps of 3, cap 6.
        first = [rec(f"p{i}", 1, 60) for i in range(3)]
        second = [rec(f"q{i}", 2, 10) for i in range(3)]
        d = decide_from_records(NK_PH_POSITIVE_ALL_PHASE_I, first + second, TODAY)
        assert d.action is A.WAIT
        later = TODAY + timedelta(days=30)
        d = decide_from_records(NK_PH_POSITIVE_ALL_PHASE_I, first + second, later)
        assert d.action is A.STOP_MAX_SAMPLE_SIZE and "MTD not established" in d.reason
