"""BOIN design.

Liu S, Yuan Y. J R Stat Soc C 2015;64:507-523 (boundaries, elimination, MTD
selection); Yuan Y, Hess KR, Hilsenbeck SG, Gilbert MR. Clin Cancer Res
2016;22:4291-4301 (table of boundaries by target); the authors' CRAN package
BOIN, R/get.boundary.R and R/select.mtd.R (decision table, isotonic MTD
selection); MD Anderson "Template for protocol preparation" of the BOIN design
(decision table for target 0.3, cohorts of 3 up to 30 patients).
"""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.clinical.escalation.boin import (
    BoinDesign,
    boin_boundaries,
    boin_decide,
    boin_decision_table,
    boin_eliminated_from,
)
from services.clinical.escalation.core import (
    Action,
    DoseLevelState,
    InvalidDesignError,
    InvalidDoseLevelStateError,
)
from tests.unit.clinical.escalation.states import state

A = Action
L = DoseLevelState


class TestBoinBoundaries:
    # Yuan et al. Clin Cancer Res 2016, table of lambda_e / lambda_d (3 decimals;
    # the table truncates lambda_d(0.3) = 0.35852 to 0.358, hence tolerance 1e-3).
    @pytest.mark.parametrize(
        "target, lambda_e, lambda_d",
        [
            pytest.param(0.30, 0.236, 0.358, id="phi-0.30-Yuan2016"),
            pytest.param(0.25, 0.197, 0.298, id="phi-0.25-Yuan2016"),
            pytest.param(0.20, 0.157, 0.238, id="phi-0.20-Yuan2016"),
        ],
    )
    def test_published_boundaries_are_reproduced(self, target, lambda_e, lambda_d):
        b = boin_boundaries(target)
        assert b.lambda_e == pytest.approx(lambda_e, abs=1e-3)
        assert b.lambda_d == pytest.approx(lambda_d, abs=1e-3)

    def test_default_phi1_and_phi2_are_0_6_and_1_4_times_the_target(self):
        b = boin_boundaries(0.25)
        assert (b.phi1, b.phi2) == pytest.approx((0.15, 0.35))

    @pytest.mark.parametrize(
        "target, phi1, phi2, field",
        [
            (0.0, None, None, "target"),
            (1.0, None, None, "target"),
            (0.3, 0.3, None, "phi1"),
            (0.3, None, 0.3, "phi2"),
            (0.3, 0.0, None, "phi1"),
            (float("nan"), None, None, "target"),
        ],
    )
    def test_invalid_target_or_interval_is_refused(self, target, phi1, phi2, field):
        with pytest.raises(InvalidDesignError, match=field):
            boin_boundaries(target, phi1, phi2)

    @given(st.floats(0.05, 0.6), st.floats(0.1, 0.9), st.floats(1.1, 1.6))
    def test_escalation_boundary_is_below_target_and_deescalation_above(self, target, f1, f2):
        assume(target * f2 < 1)
        b = boin_boundaries(target, target * f1, target * f2)
        assert b.lambda_e < target < b.lambda_d


class TestBoinDecisionTable:
    # MD Anderson BOIN protocol template, Table 1 (target 0.3, cohorts of 3):
    # n:        3  6  9 12 15 18 21 24 27 30
    # escalate  0  1  2  2  3  4  4  5  6  7   (# DLT <=)
    # de-esc.   2  3  4  5  6  7  8  9 10 11   (# DLT >=)
    # eliminate 3  4  5  7  8  9 10 11 12 14   (# DLT >=)
    # n=3 row also in the brief / Yuan 2016: escalate y<=0, de-escalate y>=2, eliminate y>=3.
    @pytest.mark.parametrize(
        "n, esc, dees, elim",
        [
            pytest.param(3, 0, 2, 3, id="n3"),
            pytest.param(6, 1, 3, 4, id="n6"),
            pytest.param(9, 2, 4, 5, id="n9"),
            pytest.param(12, 2, 5, 7, id="n12"),
            pytest.param(15, 3, 6, 8, id="n15"),
            pytest.param(18, 4, 7, 9, id="n18"),
            pytest.param(21, 4, 8, 10, id="n21"),
            pytest.param(24, 5, 9, 11, id="n24"),
            pytest.param(27, 6, 10, 12, id="n27"),
            pytest.param(30, 7, 11, 14, id="n30"),
        ],
    )
    def test_published_decision_table_for_target_0_3(self, n, esc, dees, elim):
        row = boin_decision_table(0.3, 30)[n - 1]
        assert (row.n, row.escalate_if_dlts_at_most, row.deescalate_if_dlts_at_least, row.eliminate_if_dlts_at_least) == (
            n,
            esc,
            dees,
            elim,
        )

    def test_deescalation_count_is_capped_at_the_elimination_count(self):
        # BOIN R/get.boundary.R: "if (b.d[i] > elim[i]) b.d[i] = elim[i]".  Target 0.5,
        # cutoff 0.8, n=20: ceil(lambda_d x 20) = 13 but elimination starts at 12.
        row = boin_decision_table(0.5, 20, elimination_cutoff=0.8)[19]
        assert (row.deescalate_if_dlts_at_least, row.eliminate_if_dlts_at_least) == (12, 12)

    def test_no_elimination_below_three_patients(self):
        # BOIN R/get.boundary.R: elimination only when n >= 3.
        assert [r.eliminate_if_dlts_at_least for r in boin_decision_table(0.3, 2)] == [None, None]


class TestBoinElimination:
    # beta(1,1) prior -> posterior Beta(y+1, n-y+1); hand values:
    # n=3,y=3: P(p>0.3) = 1 - 0.3^4 = 0.9919 > 0.95 -> eliminate.
    # n=3,y=2: P(p>0.3) = 1 - I_0.3(3,2) = 1 - (4*0.3^3*0.7 + 0.3^4) = 0.9163 -> keep.
    # n=2,y=2: P = 1 - 0.3^3 = 0.973 > 0.95 but n < 3 -> keep.
    @pytest.mark.parametrize(
        "counts, eliminated",
        [
            pytest.param([(3, 3)], 1, id="3of3-eliminated"),
            pytest.param([(3, 2)], None, id="2of3-kept"),
            pytest.param([(2, 2)], None, id="2of2-kept-n-below-3"),
            pytest.param([(3, 0), (3, 3), (0, 0)], 2, id="level-2-and-above"),
            pytest.param([(3, 0), (6, 4)], 2, id="4of6-eliminated"),
            pytest.param([(3, 0), (6, 3)], None, id="3of6-kept"),
        ],
    )
    def test_posterior_probability_rule(self, counts, eliminated):
        assert boin_eliminated_from(state(*counts, total=3), 0.3) == eliminated

    def test_hand_computed_posterior_matches_the_threshold_side(self):
        assert 1 - 0.3**4 > 0.95 > 1 - (4 * 0.3**3 * 0.7 + 0.3**4)


class TestBoinDecide:
    design = BoinDesign(target=0.3, n_dose_levels=5)

    @pytest.mark.parametrize(
        "counts, current, action, next_level",
        [
            # Decision rule (Liu & Yuan 2015): p <= 0.2365 escalate, p >= 0.3585 de-escalate.
            pytest.param([(3, 0), (3, 0)], 2, A.ESCALATE, 3, id="0of3-escalate"),
            pytest.param([(3, 0), (3, 1)], 2, A.STAY, 2, id="1of3-stay"),
            pytest.param([(3, 0), (3, 2)], 2, A.DE_ESCALATE, 1, id="2of3-deescalate"),
            pytest.param([(3, 0), (6, 1)], 2, A.ESCALATE, 3, id="1of6-escalate"),
            pytest.param([(3, 0), (6, 2)], 2, A.STAY, 2, id="2of6-stay"),
            pytest.param([(3, 0), (6, 3)], 2, A.DE_ESCALATE, 1, id="3of6-deescalate"),
            pytest.param([(3, 0), (9, 2)], 2, A.ESCALATE, 3, id="2of9-escalate"),
            pytest.param([(3, 0), (9, 3)], 2, A.STAY, 2, id="3of9-stay"),
            pytest.param([(3, 0), (9, 4)], 2, A.DE_ESCALATE, 1, id="4of9-deescalate"),
            pytest.param([(3, 2)], 1, A.STAY, 1, id="deescalate-at-lowest-stays"),
            pytest.param([(3, 3)], 1, A.STOP_LOWEST_DOSE_TOXIC, None, id="lowest-eliminated-stop"),
            pytest.param([(3, 0), (3, 3)], 2, A.DE_ESCALATE, 1, id="current-eliminated"),
            pytest.param([(3, 0), (6, 4), (3, 0)], 3, A.DE_ESCALATE, 1, id="current-above-eliminated"),
            pytest.param([(3, 0), (3, 3), (0, 0)], 1, A.STAY, 1, id="never-escalate-into-eliminated"),
            pytest.param([], 1, A.START, 1, id="start"),
            pytest.param([(3, 0), (0, 0)], 2, A.STAY, 2, id="new-level-treat-here"),
        ],
    )
    def test_decision_rule(self, counts, current, action, next_level):
        d = boin_decide(self.design, state(*counts), current)
        assert (d.action, d.next_dose_level) == (action, next_level)

    @pytest.mark.parametrize(
        "n, y, action",
        [
            # lambda_e(0.3) = 0.23649, lambda_d(0.3) = 0.35852 (Liu & Yuan 2015 closed form):
            pytest.param(55, 13, A.ESCALATE, id="13of55=0.23636-just-below-lambda_e"),
            pytest.param(38, 9, A.STAY, id="9of38=0.23684-just-above-lambda_e"),
            pytest.param(53, 19, A.STAY, id="19of53=0.35849-just-below-lambda_d"),
            pytest.param(39, 14, A.DE_ESCALATE, id="14of39=0.35897-just-above-lambda_d"),
        ],
    )
    def test_observed_rate_next_to_each_boundary(self, n, y, action):
        assert boin_decide(BoinDesign(0.3, 3), state((3, 0), (n, y), total=3), 2).action is action

    def test_escalation_at_the_highest_level_stays(self):
        d = boin_decide(BoinDesign(0.3, 2), state((3, 0), (3, 0), total=2), 2)
        assert (d.action, d.next_dose_level) == (A.STAY, 2)

    def test_max_sample_size_stops_and_selects_the_mtd(self):
        d = boin_decide(BoinDesign(0.3, 3, max_sample_size=12), state((3, 0), (6, 1), (3, 2), total=3), 3)
        assert d.action is A.STOP_MAX_SAMPLE_SIZE and d.mtd == 2 and d.patients_to_enrol == 0

    def test_one_place_left_under_the_cap_is_not_a_cohort(self):
        d = boin_decide(BoinDesign(0.3, 3, max_sample_size=10), state((3, 0), (6, 1), total=3), 2)
        assert d.action is A.STOP_MAX_SAMPLE_SIZE

    def test_pending_patient_that_could_change_the_decision_gives_wait(self):
        d = boin_decide(self.design, state((3, 0), (2, 0, 1)), 2)
        assert d.action is A.WAIT

    def test_current_level_outside_the_design_is_refused(self):
        with pytest.raises(InvalidDoseLevelStateError, match="current_level"):
            boin_decide(self.design, state(), 6)

    def test_state_with_wrong_number_of_levels_is_refused(self):
        with pytest.raises(InvalidDoseLevelStateError, match="n_dose_levels=5"):
            boin_decide(self.design, state(total=4), 1)


@st.composite
def boin_states(draw):
    k = draw(st.integers(1, 5))
    counts = []
    for _ in range(k):
        n = draw(st.integers(0, 12))
        counts.append((n, draw(st.integers(0, n))))
    return k, [L(i + 1, n, y) for i, (n, y) in enumerate(counts)], draw(st.integers(1, k))


class TestBoinInvariants:
    @given(boin_states(), st.one_of(st.none(), st.integers(3, 60)))
    def test_never_proposes_an_eliminated_dose_nor_treating_beyond_the_cap(self, drawn, cap):
        # Liu & Yuan 2015 elimination rule; cap as in the BOIN R package (ncohort x cohortsize).
        k, levels_state, current = drawn
        d = boin_decide(BoinDesign(0.3, k, max_sample_size=cap), levels_state, current)
        eliminated = boin_eliminated_from(levels_state, 0.3)
        if eliminated is not None and d.next_dose_level is not None:
            assert d.next_dose_level < eliminated
        treated = sum(s.treated for s in levels_state)
        if cap is not None and d.patients_to_enrol:
            assert treated + d.patients_to_enrol <= cap
