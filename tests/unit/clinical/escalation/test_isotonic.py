"""Isotonic regression (PAVA) and MTD selection at the end of a BOIN trial.

The authors' CRAN package BOIN, R/select.mtd.R (isotonic MTD selection);
Liu S, Yuan Y. J R Stat Soc C 2015;64:507-523.
"""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.escalation.boin import boin_select_mtd
from services.clinical.escalation.isotonic import IsotonicWeights, pava
from tests.unit.clinical.escalation.states import state


class TestPava:
    @pytest.mark.parametrize(
        "values, weights, expected",
        [
            pytest.param([0.1, 0.2, 0.3], None, (0.1, 0.2, 0.3), id="already-monotone"),
            pytest.param([0.1, 0.4, 0.2], None, (0.1, 0.3, 0.3), id="pool-one-violation"),
            pytest.param([0.4, 0.2], [3, 1], (0.35, 0.35), id="weighted-pool"),
            pytest.param([0.5, 0.3, 0.1], None, (0.3, 0.3, 0.3), id="all-pooled"),
        ],
    )
    def test_pool_adjacent_violators(self, values, weights, expected):
        assert pava(values, weights) == pytest.approx(expected)

    @given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
    def test_result_is_non_decreasing_and_preserves_the_weighted_sum(self, values):
        out = pava(values)
        assert all(a <= b + 1e-12 for a, b in zip(out, out[1:]))
        assert math.isclose(sum(out), sum(values), abs_tol=1e-9)


class TestBoinMtdSelection:
    def test_monotone_estimates_select_the_level_closest_to_target(self):
        # phat = (y+0.05)/(n+0.1): 0.016, 0.172, 0.336, 0.661 -> 0.336 is closest to 0.3.
        sel = boin_select_mtd(0.3, state((3, 0), (6, 1), (6, 2), (3, 2), total=4))
        assert sel.mtd == 3

    def test_pooled_estimate_above_target_selects_the_lower_level(self):
        # (3,2),(3,1) pool to 0.5 (equal weights) > 0.3: select.mtd takes the lowest tied level.
        assert boin_select_mtd(0.3, state((3, 0), (3, 2), (3, 1), total=3)).mtd == 2

    def test_pooled_estimate_below_target_selects_the_higher_level(self):
        # (6,2),(6,1): phat 0.336, 0.172 -> pooled 0.236 (inverse-variance) < 0.3: highest tied level.
        assert boin_select_mtd(0.3, state((3, 0), (6, 2), (6, 1), total=3)).mtd == 3

    def test_inverse_variance_weights_reproduce_the_r_package(self):
        # Hand calculation, BOIN R/select.mtd.R: level 2 (3,2): phat 0.6613, var 0.05463;
        # level 3 (3,0): phat 0.01613, var 0.003871 -> pooled (0.6613/0.05463 + 0.01613/0.003871)
        # / (1/0.05463 + 1/0.003871) = 0.0588 < 0.3 -> highest tied level = 3.
        sel = boin_select_mtd(0.3, state((3, 0), (3, 2), (3, 0), total=3))
        assert sel.mtd == 3
        assert dict(sel.isotonic_estimates)[2] == pytest.approx(0.0588, abs=1e-4)

    def test_sample_size_weights_are_available_and_differ_on_the_same_data(self):
        # n-weighted pool of 0.6613 and 0.0161 = 0.3387 > 0.3 -> lowest tied level = 2.
        sel = boin_select_mtd(0.3, state((3, 0), (3, 2), (3, 0), total=3), weights=IsotonicWeights.SAMPLE_SIZE)
        assert sel.mtd == 2

    def test_eliminated_and_untried_levels_are_not_candidates(self):
        sel = boin_select_mtd(0.3, state((3, 0), (3, 3), (0, 0), total=3))
        assert sel.mtd == 1 and [lvl for lvl, _ in sel.isotonic_estimates] == [1]

    def test_no_mtd_when_the_lowest_level_is_eliminated(self):
        assert boin_select_mtd(0.3, state((3, 3), total=3)).mtd is None

    def test_no_mtd_when_nothing_was_tried(self):
        assert boin_select_mtd(0.3, state(total=3)).mtd is None
