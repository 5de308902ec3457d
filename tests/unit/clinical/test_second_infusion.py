"""Second CARCIK-CD19 infusion driven by day-28 residual disease (seed 000).

Thresholds from seed 000: morphology and flow cytometry lymphoblasts < 5 %,
molecular positivity < 0.01 % define response; residual disease is a reading
at or above them.  The decision rule (ANY method shows disease, no unresolved
grade >= 3 toxicity) is the module's documented default: the seed is silent.
"""

import pytest

from services.clinical.second_infusion import (
    Day28Assessment,
    DiseaseMethod,
    InvalidAssessmentError,
    InvalidPolicyError,
    InvalidToxicityError,
    SecondInfusionPolicy,
    ToxicityEvent,
    evaluate_second_infusion,
)

NEG = dict(morphology_blasts_pct=1.0, flow_blasts_pct=0.5, molecular_mrd_pct=0.001)


def assess(**overrides):
    return Day28Assessment(**{**NEG, **overrides})


class TestResidualDiseaseThresholds:
    # Seed 000: "< 5% at morphological evaluation", "< 5% at flow cytometry",
    # "molecular evaluation of disease positivity < 0.01%".
    @pytest.mark.parametrize(
        "overrides, allowed",
        [
            pytest.param({"morphology_blasts_pct": 5.0}, True, id="morphology-5.0-is-disease"),
            pytest.param({"morphology_blasts_pct": 4.99}, False, id="morphology-4.99-is-response"),
            pytest.param({"flow_blasts_pct": 5.0}, True, id="flow-5.0-is-disease"),
            pytest.param({"flow_blasts_pct": 4.99}, False, id="flow-4.99-is-response"),
            pytest.param({"molecular_mrd_pct": 0.01}, True, id="molecular-0.01-is-disease"),
            pytest.param({"molecular_mrd_pct": 0.0099}, False, id="molecular-0.0099-is-response"),
            pytest.param({}, False, id="all-three-negative"),
        ],
    )
    def test_threshold_both_sides(self, overrides, allowed):
        assert evaluate_second_infusion(assess(**overrides), []).allowed is allowed

    def test_disease_by_any_single_method_is_enough(self):
        result = evaluate_second_infusion(assess(molecular_mrd_pct=0.5), [])
        assert result.allowed
        assert "residual disease by molecular MRD: 0.5% >= 0.01%" in result.reasons


class TestMissingReadings:
    def test_all_readings_missing_is_not_allowed_and_names_them(self):
        result = evaluate_second_infusion(Day28Assessment(), [])
        assert not result.allowed
        assert any(
            "no day-28 disease assessment recorded" in r
            and "morphology" in r
            and "flow cytometry" in r
            and "molecular MRD" in r
            for r in result.reasons
        )

    def test_negative_available_reading_with_others_missing_is_not_allowed_and_says_what_is_missing(self):
        result = evaluate_second_infusion(Day28Assessment(morphology_blasts_pct=2.0), [])
        assert not result.allowed
        assert any("missing: flow cytometry, molecular MRD" in r for r in result.reasons)

    def test_one_positive_reading_suffices_even_if_others_are_missing(self):
        result = evaluate_second_infusion(Day28Assessment(flow_blasts_pct=12.0), [])
        assert result.allowed


class TestToxicityGate:
    POSITIVE = {"morphology_blasts_pct": 30.0}

    @pytest.mark.parametrize(
        "event, allowed",
        [
            pytest.param(ToxicityEvent("CRS", 3, resolved=False), False, id="unresolved-grade-3-blocks"),
            pytest.param(ToxicityEvent("ICANS", 4, resolved=False), False, id="unresolved-grade-4-blocks"),
            pytest.param(ToxicityEvent("CRS", 3, resolved=True), True, id="resolved-grade-3-allows"),
            pytest.param(ToxicityEvent("neutropenia", 2, resolved=False), True, id="unresolved-grade-2-allows"),
            pytest.param(ToxicityEvent("sepsis", 5, resolved=True), False, id="grade-5-always-blocks"),
        ],
    )
    def test_grade_three_boundary_and_resolution(self, event, allowed):
        assert evaluate_second_infusion(assess(**self.POSITIVE), [event]).allowed is allowed

    def test_every_reason_is_returned(self):
        events = [ToxicityEvent("CRS", 3, False), ToxicityEvent("ICANS", 4, False)]
        result = evaluate_second_infusion(assess(), events)
        assert not result.allowed
        assert "unresolved grade 3 CRS (blocks at grade >= 3)" in result.reasons
        assert "unresolved grade 4 ICANS (blocks at grade >= 3)" in result.reasons
        assert "no residual disease by morphology: 1% < 5%" in result.reasons


class TestProgrammePolicy:
    def test_qualifying_methods_restrict_what_counts_as_residual_disease(self):
        policy = SecondInfusionPolicy(qualifying_methods=frozenset({DiseaseMethod.MORPHOLOGY}))
        assert not evaluate_second_infusion(assess(molecular_mrd_pct=1.0), [], policy).allowed
        assert evaluate_second_infusion(assess(morphology_blasts_pct=6.0), [], policy).allowed

    def test_blocking_grade_is_a_parameter(self):
        policy = SecondInfusionPolicy(blocking_grade=2)
        result = evaluate_second_infusion(assess(flow_blasts_pct=9.0), [ToxicityEvent("CRS", 2, False)], policy)
        assert not result.allowed


class TestInputValidation:
    @pytest.mark.parametrize(
        "kwargs, field",
        [
            ({"morphology_blasts_pct": -0.1}, "morphology_blasts_pct"),
            ({"flow_blasts_pct": 100.1}, "flow_blasts_pct"),
            ({"molecular_mrd_pct": float("nan")}, "molecular_mrd_pct"),
            ({"molecular_mrd_pct": "0.01"}, "molecular_mrd_pct"),
        ],
    )
    def test_impossible_reading_is_refused(self, kwargs, field):
        with pytest.raises(InvalidAssessmentError, match=field):
            Day28Assessment(**kwargs)

    @pytest.mark.parametrize(
        "args, field",
        [
            (("CRS", 0, False), "grade"),
            (("CRS", 6, False), "grade"),
            (("CRS", True, False), "grade"),
            (("", 3, False), "type"),
            (("CRS", 3, "no"), "resolved"),
        ],
    )
    def test_impossible_toxicity_is_refused(self, args, field):
        with pytest.raises(InvalidToxicityError, match=field):
            ToxicityEvent(*args)

    @pytest.mark.parametrize(
        "kwargs, field",
        [
            ({"molecular_threshold_pct": 0}, "molecular_threshold_pct"),
            ({"blocking_grade": 0}, "blocking_grade"),
            ({"qualifying_methods": frozenset()}, "qualifying_methods"),
        ],
    )
    def test_invalid_policy_is_refused(self, kwargs, field):
        with pytest.raises(InvalidPolicyError, match=field):
            SecondInfusionPolicy(**kwargs)
