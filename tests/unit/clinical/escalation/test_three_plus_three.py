"""Classic 3+3 dose escalation.

Rules: Storer BE, Biometrics 1989;45:925-937; Le Tourneau C, Lee JJ, Siu LL,
J Natl Cancer Inst 2009;101:708-720 ("3+3 design": 0/3 escalate; 1/3 expand to
6; <=1/6 escalate; >=2/3 or >=2/6 the dose exceeds the MTD; MTD = highest dose
with <=1/6).  Cap: seed 001 ("A maximum of 6 patients will be enrolled in two
different steps").
"""

import csv
import hashlib
import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.clinical.escalation.core import (
    Action,
    DoseLevelState,
    InvalidDesignError,
    InvalidDoseLevelStateError,
)
from services.clinical.escalation.three_plus_three import (
    AT_HIGHEST_LEVEL_TREATED,
    AT_HIGHEST_PLANNED_LEVEL,
    BELOW_A_LEVEL_ABOVE_THE_MTD,
    EXCEEDS_MTD,
    decide,
)

A = Action


def levels(*counts, total=3):
    """levels((3, 0), (3, 1)) -> states for levels 1..total; a count may be (evaluable, dlts, pending)."""
    out = []
    for i in range(total):
        if i < len(counts):
            out.append(DoseLevelState(i + 1, *counts[i]))
        else:
            out.append(DoseLevelState(i + 1))
    return out


class TestThreePlusThreeRules:
    # Every row: Le Tourneau et al. JNCI 2009;101:708-720, 3+3 description (and Storer 1989).
    @pytest.mark.parametrize(
        "state, action, next_level, mtd, enrol",
        [
            pytest.param(levels(), A.START, 1, None, 3, id="nothing-treated-start-3-at-level-1"),
            pytest.param(levels((3, 0)), A.ESCALATE, 2, None, 3, id="0of3-escalate"),
            pytest.param(levels((3, 1)), A.EXPAND, 1, None, 3, id="1of3-expand-to-6-same-level"),
            pytest.param(levels((6, 1)), A.ESCALATE, 2, None, 3, id="1of6-escalate"),
            pytest.param(levels((6, 0)), A.ESCALATE, 2, None, 3, id="0of6-escalate"),
            pytest.param(levels((3, 2)), A.STOP_LOWEST_DOSE_TOXIC, None, None, 0, id="2of3-at-lowest-stop"),
            pytest.param(levels((6, 2)), A.STOP_LOWEST_DOSE_TOXIC, None, None, 0, id="2of6-at-lowest-stop"),
            pytest.param(levels((3, 0), (3, 2)), A.DE_ESCALATE, 1, None, 3, id="2of3-deescalate-expand-previous"),
            pytest.param(levels((3, 0), (3, 3)), A.DE_ESCALATE, 1, None, 3, id="3of3-deescalate"),
            pytest.param(levels((3, 0), (6, 2)), A.DE_ESCALATE, 1, None, 3, id="2of6-deescalate"),
            pytest.param(levels((6, 1), (3, 2)), A.STOP_MTD_FOUND, None, 1, 0, id="previous-had-1of6-mtd"),
            pytest.param(levels((3, 0), (6, 1), (6, 2)), A.STOP_MTD_FOUND, None, 2, 0, id="1of6-then-2of6-mtd"),
            pytest.param(levels((6, 0), (3, 2)), A.STOP_MTD_FOUND, None, 1, 0, id="0of6-below-toxic-mtd"),
            pytest.param(levels((6, 2), (3, 2)), A.STOP_LOWEST_DOSE_TOXIC, None, None, 0, id="expanded-lowest-2of6"),
        ],
    )
    def test_rule_table(self, state, action, next_level, mtd, enrol):
        d = decide(state)
        assert (d.action, d.next_dose_level, d.mtd, d.patients_to_enrol) == (action, next_level, mtd, enrol)

    def test_one_dlt_in_three_expands_but_two_dlts_exceed_the_mtd(self):
        # Boundary 1/3 vs 2/3 at level 2 (Le Tourneau 2009).
        assert decide(levels((3, 0), (3, 1))).action is A.EXPAND
        assert decide(levels((3, 0), (3, 2))).action is A.DE_ESCALATE

    def test_one_dlt_in_six_escalates_but_two_dlts_in_six_exceed_the_mtd(self):
        # Boundary 1/6 vs 2/6 at level 2 (Le Tourneau 2009).
        assert decide(levels((3, 0), (6, 1))).action is A.ESCALATE
        assert decide(levels((3, 0), (6, 2))).action is A.DE_ESCALATE

    def test_zero_of_three_at_highest_level_expands_to_six_before_stopping(self):
        # Judgement call: the MTD criterion (<=1/6) needs 6 patients at the top dose.
        d = decide(levels((3, 0), (3, 0), (3, 0)))
        assert (d.action, d.next_dose_level, d.patients_to_enrol) == (A.EXPAND, 3, 3)

    def test_one_of_six_at_highest_level_stops_with_highest_dose_safe(self):
        d = decide(levels((3, 0), (3, 0), (6, 1)))
        assert (d.action, d.mtd, d.highest_tolerated_level) == (A.STOP_HIGHEST_DOSE_SAFE, None, 3)

    def test_two_dlts_in_first_two_patients_already_exceed_the_mtd(self):
        assert decide(levels((3, 0), (2, 2))).action is A.DE_ESCALATE

    def test_incomplete_cohort_is_completed_before_deciding(self):
        d = decide(levels((2, 0)))
        assert (d.action, d.next_dose_level, d.patients_to_enrol) == (A.COMPLETE_COHORT, 1, 1)
        d = decide(levels((3, 0), (4, 1)))
        assert (d.action, d.next_dose_level, d.patients_to_enrol) == (A.COMPLETE_COHORT, 2, 2)

    def test_reason_quotes_the_counts(self):
        assert "1 of 3 patients had a DLT at level 1" in decide(levels((3, 1))).reason


class TestThreePlusThreeSampleSizeCap:
    def test_nk_cap_of_six_in_two_steps_stops_and_says_mtd_not_established(self):
        # Seed 001: max 6 patients, two steps.
        d = decide(levels((3, 0), (3, 0), total=2), max_sample_size=6)
        assert d.action is A.STOP_MAX_SAMPLE_SIZE
        assert d.next_dose_level is None and d.mtd is None and d.patients_to_enrol == 0
        assert "cap of 6 reached" in d.reason and "MTD not established" in d.reason

    def test_cap_reason_names_the_highest_dose_with_at_most_one_dlt_in_six(self):
        d = decide(levels((3, 0), (6, 1), (3, 1)), max_sample_size=12)
        assert d.action is A.STOP_MAX_SAMPLE_SIZE
        assert d.highest_tolerated_level == 2
        assert "highest dose with <=1/6 DLT is level 2" in d.reason

    def test_cap_exactly_fitting_the_next_cohort_lets_it_proceed(self):
        # 6 treated + 3 = 9 <= 9: allowed; with a cap of 8 only 2 places remain: stop.
        assert decide(levels((3, 0), (3, 0)), max_sample_size=9).action is A.ESCALATE
        assert decide(levels((3, 0), (3, 0)), max_sample_size=8).action is A.STOP_MAX_SAMPLE_SIZE

    def test_completing_a_cohort_within_the_cap_is_allowed(self):
        d = decide(levels((5, 1)), max_sample_size=6)
        assert (d.action, d.patients_to_enrol) == (A.COMPLETE_COHORT, 1)

    def test_mtd_found_at_the_cap_is_reported_as_mtd_found(self):
        d = decide(levels((6, 1), (3, 2)), max_sample_size=9)
        assert (d.action, d.mtd) == (A.STOP_MTD_FOUND, 1)

    def test_cap_reached_with_patients_in_window_waits_and_says_enrolment_is_closed(self):
        d = decide(levels((3, 0), (0, 0, 3), total=2), max_sample_size=6)
        assert d.action is A.WAIT and "cap of 6" in d.reason and d.patients_to_enrol == 0

    @pytest.mark.parametrize("cap", [0, -1, 2.5, True])
    def test_invalid_cap_is_refused(self, cap):
        with pytest.raises(InvalidDesignError, match="max_sample_size"):
            decide(levels(), max_sample_size=cap)


class TestThreePlusThreePendingPatients:
    def test_patient_in_window_whose_outcome_matters_gives_wait(self):
        d = decide(levels((2, 0, 1)))
        assert (d.action, d.next_dose_level) == (A.WAIT, None)
        assert "escalate to level 2" in d.reason and "expand to level 1" in d.reason

    def test_decision_already_fixed_by_two_dlts_does_not_wait(self):
        d = decide(levels((3, 0), (2, 2, 1)))
        assert (d.action, d.next_dose_level) == (A.DE_ESCALATE, 1)
        assert "cannot change this decision" in d.reason

    def test_pending_patient_counts_towards_the_cap(self):
        # 3 + 2 evaluable + 1 pending = 6 treated: nobody else may be enrolled.
        d = decide(levels((3, 0), (2, 0, 1), total=3), max_sample_size=6)
        assert d.action is A.WAIT and "cap of 6" in d.reason


class TestThreePlusThreeStateValidation:
    @pytest.mark.parametrize(
        "state, field",
        [
            pytest.param([], "levels_state", id="empty"),
            pytest.param([DoseLevelState(2)], "position 1 holds level 2", id="not-starting-at-1"),
            pytest.param(levels((7, 0)), "at most 6", id="more-than-6-at-a-level"),
            pytest.param(levels((0, 0), (3, 0)), "never skips", id="skipped-level"),
        ],
    )
    def test_inconsistent_state_is_refused(self, state, field):
        with pytest.raises(InvalidDoseLevelStateError, match=field):
            decide(state)

    @pytest.mark.parametrize(
        "kwargs, field",
        [
            ({"evaluable": 3, "dlts": 4}, "dlts at level 1"),
            ({"evaluable": -1}, "evaluable"),
            ({"pending": -1}, "pending"),
            ({"evaluable": 2.0}, "evaluable"),
        ],
    )
    def test_impossible_counts_are_refused(self, kwargs, field):
        with pytest.raises(InvalidDoseLevelStateError, match=field):
            DoseLevelState(1, **kwargs)


# ---------------------------------------------------------------- properties


@st.composite
def arbitrary_states(draw):
    """Valid (contiguous, <= 6 per level) but otherwise arbitrary 3+3 states."""
    k = draw(st.integers(1, 5))
    tried = draw(st.integers(0, k))
    out = []
    for i in range(k):
        if i < tried:
            treated = draw(st.integers(1, 6))
            pending = draw(st.integers(0, treated))
            evaluable = treated - pending
            dlts = draw(st.integers(0, evaluable))
            out.append(DoseLevelState(i + 1, evaluable, dlts, pending))
        else:
            out.append(DoseLevelState(i + 1))
    return out


class TestThreePlusThreeInvariants:
    @settings(max_examples=300, deadline=None)
    @given(arbitrary_states(), st.one_of(st.none(), st.integers(1, 30)))
    def test_never_proposes_a_dose_at_or_above_a_level_with_two_dlts(self, state, cap):
        d = decide(state, cap)
        toxic = [s.level for s in state if s.dlts >= 2]
        if toxic and d.next_dose_level is not None:
            assert d.next_dose_level < min(toxic)

    @settings(max_examples=300, deadline=None)
    @given(arbitrary_states(), st.integers(1, 30))
    def test_never_proposes_treating_beyond_the_cap(self, state, cap):
        d = decide(state, cap)
        treated = sum(s.treated for s in state)
        if treated >= cap:
            assert d.patients_to_enrol == 0
        else:
            assert treated + d.patients_to_enrol <= cap

    @settings(max_examples=200, deadline=None)
    @given(st.integers(1, 5), st.one_of(st.none(), st.integers(3, 30)), st.data())
    def test_simulated_trials_respect_toxic_doses_and_cap_and_terminate(self, k, cap, data):
        state = [DoseLevelState(i + 1) for i in range(k)]
        for _ in range(50):
            d = decide(state, cap)
            if d.action.value.startswith("stop"):
                break
            toxic = [s.level for s in state if s.dlts >= 2]
            if toxic:
                assert d.next_dose_level < min(toxic)
            treated = sum(s.treated for s in state)
            assert cap is None or treated + d.patients_to_enrol <= cap
            i = d.next_dose_level - 1
            new_dlts = data.draw(st.integers(0, d.patients_to_enrol))
            s = state[i]
            state[i] = DoseLevelState(s.level, s.evaluable + d.patients_to_enrol, s.dlts + new_dlts)
        else:
            pytest.fail("3+3 did not stop within 50 decisions")
        if d.action is A.STOP_MTD_FOUND:
            mtd = state[d.mtd - 1]
            assert mtd.evaluable == 6 and mtd.dlts <= 1 and state[d.mtd].dlts >= 2


# ---------------------------------------------------------------- the tables


class TestThreePlusThreeTables:
    def test_the_table_has_one_row_for_every_count_of_patients_and_dlts_up_to_six(self):
        assert set(AT_HIGHEST_LEVEL_TREATED) == {(n, d) for n in range(1, 7) for d in range(n + 1)}

    def test_two_or_more_dlts_and_only_they_exceed_the_mtd(self):
        # Le Tourneau 2009: ">= 2 of 3 or >= 2 of 6 patients with DLT": the dose exceeds the MTD.
        for (n, d), step in AT_HIGHEST_LEVEL_TREATED.items():
            assert (step is EXCEEDS_MTD) == (d >= 2), (n, d)

    def test_rows_below_the_highest_planned_level(self):
        expected = {
            # Storer 1989; Le Tourneau 2009: 0/3 escalate, 1/3 three more, <=1/6 escalate.
            (3, 0): (A.ESCALATE, 3),
            (3, 1): (A.EXPAND, 3),
            (6, 0): (A.ESCALATE, 3),
            (6, 1): (A.ESCALATE, 3),
            # A cohort of 3 (or of 6) is completed before the rule is read.
            (1, 0): (A.COMPLETE_COHORT, 2),
            (2, 1): (A.COMPLETE_COHORT, 1),
            (4, 1): (A.COMPLETE_COHORT, 2),
            (5, 0): (A.COMPLETE_COHORT, 1),
        }
        rows = {key: AT_HIGHEST_LEVEL_TREATED[key] for key in expected}
        assert {key: (step.action, step.enrol) for key, step in rows.items()} == expected

    def test_rows_at_the_highest_planned_level(self):
        # 0/3 at the top: expand to 6 (judgement call: the MTD criterion needs 6 patients);
        # <= 1/6 at the top: the MTD is not reached within the planned doses (Le Tourneau 2009).
        assert {key: step.action for key, step in AT_HIGHEST_PLANNED_LEVEL.items()} == {
            (3, 0): A.EXPAND,
            (6, 0): A.STOP_HIGHEST_DOSE_SAFE,
            (6, 1): A.STOP_HIGHEST_DOSE_SAFE,
        }

    def test_rows_below_a_level_that_exceeds_the_mtd(self):
        # Le Tourneau 2009: no level below: stop; 3 below: de-escalate and treat 3 more there;
        # 6 below (<= 1 DLT): that level is the MTD; an incomplete cohort below is completed first.
        assert {key: (step.action, step.enrol) for key, step in BELOW_A_LEVEL_ABOVE_THE_MTD.items()} == {
            None: (A.STOP_LOWEST_DOSE_TOXIC, 0),
            1: (A.COMPLETE_COHORT, 2),
            2: (A.COMPLETE_COHORT, 1),
            3: (A.DE_ESCALATE, 3),
            4: (A.COMPLETE_COHORT, 2),
            5: (A.COMPLETE_COHORT, 1),
            6: (A.STOP_MTD_FOUND, 0),
        }


# Decisions of the if-chain the tables replaced (services/enrollment/domain/dose_escalation.py,
# `_three_plus_three_core`, at commit db3c9cf), computed from it before it was deleted.
PINNED = Path(__file__).with_name("three_plus_three_pinned.csv")
PINNED_DIGEST = "39cdadc72930d1fcc09ee249b45fd54ef4158d39c6f495e67eea008d505968d8"
PINNED_CASES = 35339
_COMPLETE = [(n, d) for n in range(7) for d in range(n + 1)]
_WITH_PENDING = [(t - p, d, p) for t in range(7) for p in range(t + 1) for d in range(t - p + 1)]


def _contiguous(per_level, k):
    for combo in itertools.product(per_level, repeat=k):
        treated = [c[0] + (c[2] if len(c) > 2 else 0) for c in combo]
        if not any(treated[i] == 0 and treated[i + 1] > 0 for i in range(k - 1)):
            yield combo


def _outcome(decision):
    return (
        decision.action.value,
        decision.next_dose_level,
        decision.mtd,
        decision.patients_to_enrol,
        decision.highest_tolerated_level,
    )


class TestTablesDecideAsTheFormerIfChain:
    def test_every_complete_state_of_one_or_two_levels_decides_as_pinned(self):
        with PINNED.open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 1542
        for row in rows:
            counts = [tuple(int(x) for x in level.split("/")) for level in row["levels"].split()]
            expected = tuple(
                row[k] for k in ("action", "next_dose_level", "mtd", "patients_to_enrol", "highest_tolerated_level")
            )
            decision = decide([DoseLevelState(i + 1, *c) for i, c in enumerate(counts)])
            got = tuple("" if v is None else str(v) for v in _outcome(decision))
            assert got == expected, row["levels"]

    def test_every_state_up_to_three_levels_with_pending_patients_and_a_cap_gives_the_pinned_decisions_and_reasons(self):
        # Complete data on 1-3 levels (no cap), and 1-2 levels with pending patients
        # without a cap and with a cap of 6: action, levels, enrolment and reason text.
        cases = [(c, None) for k in (1, 2, 3) for c in _contiguous(_COMPLETE, k)]
        cases += [(c, cap) for k in (1, 2) for c in _contiguous(_WITH_PENDING, k) for cap in (None, 6)]
        digest = hashlib.sha256()
        for combo, cap in cases:
            decision = decide([DoseLevelState(i + 1, *c) for i, c in enumerate(combo)], cap)
            digest.update(repr((combo, cap, _outcome(decision), decision.reason)).encode())
        assert (len(cases), digest.hexdigest()) == (PINNED_CASES, PINNED_DIGEST)
