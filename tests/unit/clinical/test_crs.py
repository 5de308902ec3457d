"""ASTCT CRS grading - Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638, "ASTCT CRS Consensus Grading" table (Table 6) and footnotes."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.crs import (
    CrsDriver,
    CrsObservation,
    Hypotension,
    InvalidObservationError,
    OxygenSupport,
    grade_crs,
)

H = Hypotension
O = OxygenSupport


def obs(temp=38.5, hypotension=H.NONE, oxygen=O.NONE, flow=None, therapy=False, died=False):
    return CrsObservation(
        temperature_c=temp,
        hypotension=hypotension,
        oxygen=oxygen,
        oxygen_flow_l_min=flow,
        antipyretic_or_anticytokine_given=therapy,
        died_of_crs=died,
    )


class TestFeverThreshold:
    # Table 6 footnote: fever is temperature >= 38 degC.
    @pytest.mark.parametrize(
        "temp, grade",
        [
            pytest.param(37.9, 0, id="37.9C-below-fever-threshold-no-CRS"),
            pytest.param(38.0, 1, id="38.0C-fever-threshold-grade-1"),
            pytest.param(40.2, 1, id="high-fever-alone-still-grade-1"),
        ],
    )
    def test_fever_alone_is_grade_1_from_38_degrees(self, temp, grade):
        assert grade_crs(obs(temp=temp)).grade == grade

    def test_fever_alone_is_driven_by_fever(self):
        result = grade_crs(obs(temp=38.0))
        assert (result.grade, result.driver) == (1, CrsDriver.FEVER)

    def test_hypotension_without_fever_or_prior_therapy_is_not_crs(self):
        # Table 6: each grade requires fever; no prior antipyretic/anticytokine.
        result = grade_crs(obs(temp=37.9, hypotension=H.MULTIPLE_VASOPRESSORS, oxygen=O.CPAP))
        assert (result.grade, result.driver) == (0, None)

    def test_after_tocilizumab_hypoxia_grades_without_fever(self):
        # Table 6 footnote: after antipyretic/anticytokine therapy fever is no
        # longer required; grading is driven by hypotension and/or hypoxia.
        result = grade_crs(obs(temp=36.8, oxygen=O.FACEMASK, therapy=True))
        assert (result.grade, result.driver) == (3, CrsDriver.HYPOXIA)

    def test_after_therapy_without_fever_hypotension_or_hypoxia_is_grade_0(self):
        # Judgement call documented in crs.grade_crs.
        assert grade_crs(obs(temp=36.8, therapy=True)).grade == 0

    def test_after_therapy_with_persisting_fever_alone_is_grade_1(self):
        assert grade_crs(obs(temp=38.4, therapy=True)).grade == 1


class TestHypotensionRow:
    # Table 6, hypotension row.
    @pytest.mark.parametrize(
        "hypotension, grade",
        [
            pytest.param(H.NOT_REQUIRING_VASOPRESSORS, 2, id="T6-grade2-no-vasopressors"),
            pytest.param(H.ONE_VASOPRESSOR, 3, id="T6-grade3-one-vasopressor-with-or-without-vasopressin"),
            pytest.param(H.MULTIPLE_VASOPRESSORS, 4, id="T6-grade4-multiple-vasopressors-excl-vasopressin"),
        ],
    )
    def test_febrile_hypotension_grades_by_vasopressor_need(self, hypotension, grade):
        result = grade_crs(obs(hypotension=hypotension))
        assert (result.grade, result.driver) == (grade, CrsDriver.HYPOTENSION)


class TestHypoxiaRow:
    # Table 6, hypoxia row and footnote on low/high flow (<=6 vs >6 L/min).
    @pytest.mark.parametrize(
        "oxygen, flow, grade",
        [
            pytest.param(O.NASAL_CANNULA, 2.0, 2, id="T6-low-flow-NC-2L"),
            pytest.param(O.NASAL_CANNULA, 6.0, 2, id="T6-footnote-NC-exactly-6L-is-low-flow"),
            pytest.param(O.NASAL_CANNULA, 6.5, 3, id="T6-footnote-NC-6.5L-is-high-flow"),
            pytest.param(O.NASAL_CANNULA, 40.0, 3, id="T6-heated-high-flow-NC-40L"),
            pytest.param(O.BLOW_BY, None, 2, id="T6-footnote-blow-by-is-low-flow"),
            pytest.param(O.FACEMASK, 5.0, 3, id="T6-grade3-facemask-regardless-of-flow"),
            pytest.param(O.NONREBREATHER_MASK, 15.0, 3, id="T6-grade3-nonrebreather"),
            pytest.param(O.VENTURI_MASK, None, 3, id="T6-grade3-venturi"),
            pytest.param(O.CPAP, None, 4, id="T6-grade4-CPAP"),
            pytest.param(O.BIPAP, None, 4, id="T6-grade4-BiPAP"),
            pytest.param(O.MECHANICAL_VENTILATION, None, 4, id="T6-grade4-intubation"),
        ],
    )
    def test_febrile_hypoxia_grades_by_oxygen_delivery(self, oxygen, flow, grade):
        result = grade_crs(obs(oxygen=oxygen, flow=flow))
        assert (result.grade, result.driver) == (grade, CrsDriver.HYPOXIA)

    def test_nasal_cannula_at_six_litres_is_grade_2(self):
        assert grade_crs(obs(oxygen=O.NASAL_CANNULA, flow=6.0)).grade == 2

    def test_nasal_cannula_at_six_and_a_half_litres_is_grade_3(self):
        assert grade_crs(obs(oxygen=O.NASAL_CANNULA, flow=6.5)).grade == 3


class TestMoreSevereEventDecides:
    def test_papers_example_vasopressor_plus_low_flow_is_grade_3_by_hypotension(self):
        # Table 6 footnote example: 39.5 degC, hypotension on 1 vasopressor,
        # hypoxia on low-flow NC -> grade 3.
        result = grade_crs(obs(39.5, H.ONE_VASOPRESSOR, O.NASAL_CANNULA, 3.0))
        assert (result.grade, result.driver) == (3, CrsDriver.HYPOTENSION)
        assert result.drivers == (CrsDriver.HYPOTENSION,)

    def test_hypoxia_drives_when_it_is_the_more_severe_event(self):
        result = grade_crs(obs(hypotension=H.NOT_REQUIRING_VASOPRESSORS, oxygen=O.BIPAP))
        assert (result.grade, result.driver) == (4, CrsDriver.HYPOXIA)

    def test_equal_hypotension_and_hypoxia_are_both_reported_as_drivers(self):
        result = grade_crs(obs(hypotension=H.ONE_VASOPRESSOR, oxygen=O.FACEMASK))
        assert result.grade == 3
        assert result.drivers == (CrsDriver.HYPOTENSION, CrsDriver.HYPOXIA)

    def test_death_due_to_crs_is_grade_5(self):
        result = grade_crs(obs(temp=36.0, died=True))
        assert (result.grade, result.driver) == (5, CrsDriver.DEATH)


class TestInvalidCrsInput:
    @pytest.mark.parametrize(
        "kwargs, field",
        [
            pytest.param({"temp": 55}, "temperature_c", id="temperature-too-high"),
            pytest.param({"temp": 24.9}, "temperature_c", id="temperature-too-low"),
            pytest.param({"temp": float("nan")}, "temperature_c", id="temperature-nan"),
            pytest.param({"temp": "38"}, "temperature_c", id="temperature-string"),
            pytest.param({"oxygen": O.NASAL_CANNULA}, "oxygen_flow_l_min", id="nc-without-flow"),
            pytest.param({"oxygen": O.NASAL_CANNULA, "flow": 0}, "oxygen_flow_l_min", id="nc-zero-flow"),
            pytest.param({"oxygen": O.NASAL_CANNULA, "flow": -1}, "oxygen_flow_l_min", id="negative-flow"),
            pytest.param({"flow": 2.0}, "oxygen_flow_l_min", id="flow-without-device"),
            pytest.param({"hypotension": "none"}, "hypotension", id="hypotension-not-enum"),
            pytest.param({"oxygen": "cpap"}, "oxygen", id="oxygen-not-enum"),
            pytest.param({"therapy": 1}, "antipyretic_or_anticytokine_given", id="therapy-not-bool"),
        ],
    )
    def test_invalid_field_raises_error_naming_it(self, kwargs, field):
        with pytest.raises(InvalidObservationError, match=field):
            obs(**kwargs)

    def test_invalid_observation_error_is_a_value_error(self):
        assert issubclass(InvalidObservationError, ValueError)


# --- monotonicity -----------------------------------------------------------
# Severity levels written out from Table 6 (independent of the module's maps).
_HYPOTENSION_ORDER = [H.NONE, H.NOT_REQUIRING_VASOPRESSORS, H.ONE_VASOPRESSOR, H.MULTIPLE_VASOPRESSORS]


def _oxygen_at_level(level):
    flows_low = st.floats(min_value=0.5, max_value=6.0)
    flows_high = st.floats(min_value=6.01, max_value=60.0)
    return [
        st.just((O.NONE, None)),
        st.one_of(st.just((O.BLOW_BY, None)), flows_low.map(lambda f: (O.NASAL_CANNULA, f))),
        st.one_of(
            flows_high.map(lambda f: (O.NASAL_CANNULA, f)),
            st.sampled_from([(O.FACEMASK, None), (O.NONREBREATHER_MASK, None), (O.VENTURI_MASK, None)]),
        ),
        st.sampled_from([(O.CPAP, None), (O.BIPAP, None), (O.MECHANICAL_VENTILATION, None)]),
    ][level]


@st.composite
def _ordered_pair(draw):
    """Two observations, the second at least as severe in every input."""
    t1 = draw(st.floats(min_value=35.0, max_value=41.0))
    t2 = draw(st.floats(min_value=t1, max_value=41.5))
    h1 = draw(st.integers(0, 3))
    h2 = draw(st.integers(h1, 3))
    o1 = draw(st.integers(0, 3))
    o2 = draw(st.integers(o1, 3))
    tx1 = draw(st.booleans())
    tx2 = tx1 or draw(st.booleans())
    d1 = draw(st.booleans())
    d2 = d1 or draw(st.booleans())
    ox1, f1 = draw(_oxygen_at_level(o1))
    ox2, f2 = draw(_oxygen_at_level(o2))
    a = obs(t1, _HYPOTENSION_ORDER[h1], ox1, f1, tx1, d1)
    b = obs(t2, _HYPOTENSION_ORDER[h2], ox2, f2, tx2, d2)
    return a, b


class TestCrsMonotonicity:
    @given(_ordered_pair())
    def test_making_any_input_more_severe_never_lowers_the_grade(self, pair):
        a, b = pair
        assert grade_crs(b).grade >= grade_crs(a).grade

    @given(_ordered_pair())
    def test_grade_is_always_between_0_and_5(self, pair):
        assert 0 <= grade_crs(pair[0]).grade <= 5
