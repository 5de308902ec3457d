"""Programme eligibility criteria.

Generic thresholds below are test fixtures (a hypothetical programme), checked
on both sides of each boundary; the seed-programme rows cite the seeds:
000 (CARCIK-CD19, r/r BCP-ALL, adult and paediatric), 001 (NK cells, Ph+ ALL in
CHR with MRD, >= 60 years or not eligible for other post-CHR treatment),
003 (CD19 CAR-T, refractory SLE).
"""

from datetime import date, datetime

import pytest

from services.clinical.eligibility import (
    CARCIK_CD19_RR_BCP_ALL,
    CD19_CAR_T_REFRACTORY_SLE,
    NK_PH_POSITIVE_ALL_MRD,
    Candidate,
    CreatinineLimit,
    CreatinineUnit,
    Criterion,
    Diagnosis,
    DiseaseStatus,
    EligibilityCriteria,
    InvalidCandidateError,
    InvalidCriteriaError,
    PhStatus,
    age_in_completed_years,
    evaluate,
)

FULL = EligibilityCriteria(
    name="fixture",
    min_age=18,
    max_age=70,
    diagnoses=frozenset({Diagnosis.BCP_ALL}),
    cd19_required=True,
    ph_status=PhStatus.NEGATIVE,
    disease_statuses=frozenset({DiseaseStatus.RELAPSED, DiseaseStatus.REFRACTORY}),
    min_prior_lines=2,
    max_ecog=1,
    max_creatinine=CreatinineLimit(1.5, CreatinineUnit.X_ULN),
    max_bilirubin_x_uln=1.5,
    max_alt_x_uln=2.5,
    max_ast_x_uln=2.5,
    min_lvef_pct=45,
    min_spo2_pct=92,
)

GOOD = dict(
    age_years=40,
    diagnosis=Diagnosis.BCP_ALL,
    cd19_positive=True,
    ph_status=PhStatus.NEGATIVE,
    disease_status=DiseaseStatus.RELAPSED,
    prior_lines=2,
    ecog=1,
    creatinine_mg_dl=1.0,
    creatinine_uln_mg_dl=1.0,
    bilirubin_x_uln=1.0,
    alt_x_uln=1.0,
    ast_x_uln=1.0,
    lvef_pct=60,
    spo2_pct=97,
)


def candidate(**overrides):
    return Candidate(**{**GOOD, **overrides})


def failures(criteria, cand):
    return [(f.criterion, f.reason) for f in evaluate(criteria, cand).failures]


class TestEveryThresholdBothSides:
    @pytest.mark.parametrize(
        "overrides, expected",
        [
            pytest.param({"age_years": 18}, [], id="age-18-at-minimum"),
            pytest.param({"age_years": 17}, [(Criterion.AGE, "age 17 is below the minimum 18")], id="age-17"),
            pytest.param({"age_years": 70}, [], id="age-70-at-maximum"),
            pytest.param({"age_years": 71}, [(Criterion.AGE, "age 71 is above the maximum 70")], id="age-71"),
            pytest.param({"prior_lines": 1}, [(Criterion.PRIOR_LINES, "1 prior lines is below the minimum 2")], id="lines-1"),
            pytest.param({"ecog": 2}, [(Criterion.ECOG, "ECOG 2 exceeds the maximum 1")], id="ecog-2"),
            pytest.param({"ecog": 0}, [], id="ecog-0"),
            pytest.param({"creatinine_mg_dl": 1.5}, [], id="creatinine-1.5xULN"),
            pytest.param(
                {"creatinine_mg_dl": 1.51},
                [(Criterion.CREATININE, "creatinine 1.51 x ULN exceeds the maximum 1.5 x ULN")],
                id="creatinine-1.51xULN",
            ),
            pytest.param({"bilirubin_x_uln": 1.5}, [], id="bilirubin-1.5"),
            pytest.param(
                {"bilirubin_x_uln": 1.6},
                [(Criterion.BILIRUBIN, "bilirubin 1.6 x ULN exceeds the maximum 1.5 x ULN")],
                id="bilirubin-1.6",
            ),
            pytest.param({"alt_x_uln": 2.5}, [], id="alt-2.5"),
            pytest.param({"alt_x_uln": 2.6}, [(Criterion.ALT, "ALT 2.6 x ULN exceeds the maximum 2.5 x ULN")], id="alt-2.6"),
            pytest.param({"ast_x_uln": 2.5}, [], id="ast-2.5"),
            pytest.param({"ast_x_uln": 2.6}, [(Criterion.AST, "AST 2.6 x ULN exceeds the maximum 2.5 x ULN")], id="ast-2.6"),
            pytest.param({"lvef_pct": 45}, [], id="lvef-45"),
            pytest.param({"lvef_pct": 44.9}, [(Criterion.LVEF, "LVEF 44.9% is below the minimum 45%")], id="lvef-44.9"),
            pytest.param({"spo2_pct": 92}, [], id="spo2-92"),
            pytest.param({"spo2_pct": 91}, [(Criterion.SPO2, "SpO2 91% is below the minimum 92%")], id="spo2-91"),
            pytest.param(
                {"cd19_positive": False},
                [(Criterion.CD19, "disease is CD19-negative; CD19 expression is required")],
                id="cd19-negative",
            ),
            pytest.param(
                {"ph_status": PhStatus.POSITIVE},
                [(Criterion.PH_STATUS, "Philadelphia status Ph+; Ph- is required")],
                id="ph-positive",
            ),
            pytest.param(
                {"disease_status": DiseaseStatus.CR_MRD_NEGATIVE},
                [(Criterion.DISEASE_STATUS, "disease status CR MRD-negative is not refractory or relapsed")],
                id="mrd-negative-cr",
            ),
            pytest.param(
                {"diagnosis": Diagnosis.T_ALL},
                [(Criterion.DIAGNOSIS, "diagnosis T-cell ALL is not B-cell precursor ALL")],
                id="t-all",
            ),
        ],
    )
    def test_threshold(self, overrides, expected):
        assert failures(FULL, candidate(**overrides)) == expected

    def test_creatinine_limit_in_mg_per_dl(self):
        crit = EligibilityCriteria(name="x", max_creatinine=CreatinineLimit(1.5, CreatinineUnit.MG_DL))
        assert failures(crit, Candidate(creatinine_mg_dl=1.5)) == []
        assert failures(crit, Candidate(creatinine_mg_dl=1.6)) == [
            (Criterion.CREATININE, "creatinine 1.6 mg/dL exceeds the maximum 1.5 mg/dL")
        ]

    def test_creatinine_as_multiple_of_uln_needs_the_uln(self):
        assert failures(FULL, candidate(creatinine_uln_mg_dl=None)) == [
            (Criterion.CREATININE, "creatinine upper limit of normal not recorded (needed for x ULN)")
        ]


class TestMissingFactsFail:
    def test_each_missing_fact_is_a_failure_not_a_pass(self):
        result = evaluate(FULL, Candidate())
        assert not result.eligible
        reasons = {f.criterion: f.reason for f in result.failures}
        assert reasons[Criterion.ECOG] == "ECOG not recorded"
        assert reasons[Criterion.AGE] == "age not recorded"
        assert len(result.failures) == 13  # every active criterion

    def test_all_failures_are_returned_together(self):
        result = evaluate(FULL, candidate(age_years=8, ecog=3, lvef_pct=30))
        assert [f.criterion for f in result.failures] == [Criterion.AGE, Criterion.ECOG, Criterion.LVEF]
        assert result.failures[0].reason == "age 8 is below the minimum 18"

    def test_unused_criteria_are_not_checked(self):
        assert evaluate(EligibilityCriteria(name="empty"), Candidate()).eligible


class TestSeedProgrammes:
    def test_carcik_accepts_a_child_with_relapsed_cd19_positive_bcp_all(self):
        # Seed 000: adult and paediatric r/r BCP-ALL, CD19-directed product.
        child = Candidate(age_years=8, diagnosis=Diagnosis.BCP_ALL, cd19_positive=True, disease_status=DiseaseStatus.RELAPSED)
        assert evaluate(CARCIK_CD19_RR_BCP_ALL, child).eligible

    def test_carcik_refuses_cd19_negative_disease_in_remission(self):
        cand = Candidate(diagnosis=Diagnosis.BCP_ALL, cd19_positive=False, disease_status=DiseaseStatus.CR_MRD_NEGATIVE)
        assert [f.criterion for f in evaluate(CARCIK_CD19_RR_BCP_ALL, cand).failures] == [
            Criterion.CD19,
            Criterion.DISEASE_STATUS,
        ]

    NK_BASE = dict(diagnosis=Diagnosis.BCP_ALL, ph_status=PhStatus.POSITIVE, disease_status=DiseaseStatus.CR_MRD_POSITIVE)

    @pytest.mark.parametrize(
        "age, other_treatment, eligible",
        [
            pytest.param(60, True, True, id="60-years-even-if-fit-for-other-treatment"),
            pytest.param(59, True, False, id="59-and-fit-for-other-treatment"),
            pytest.param(59, False, True, id="59-but-not-eligible-for-other-treatment"),
            pytest.param(45, None, False, id="45-other-treatment-unknown"),
            pytest.param(None, False, True, id="age-unknown-but-not-eligible-for-other-treatment"),
            pytest.param(None, None, False, id="age-and-other-treatment-unknown"),
        ],
    )
    def test_nk_age_or_not_eligible_for_other_treatment_disjunction(self, age, other_treatment, eligible):
        # Seed 001: ">=60 years or not eligible for other post-CHR treatment modalities".
        cand = Candidate(age_years=age, eligible_for_other_treatment=other_treatment, **self.NK_BASE)
        assert evaluate(NK_PH_POSITIVE_ALL_MRD, cand).eligible is eligible

    def test_nk_refuses_ph_negative_and_frank_relapse(self):
        # Seed 001: Ph+ ALL in CHR with persistent/recurrent MRD.
        cand = Candidate(
            age_years=65, diagnosis=Diagnosis.BCP_ALL, ph_status=PhStatus.NEGATIVE, disease_status=DiseaseStatus.RELAPSED
        )
        assert [f.criterion for f in evaluate(NK_PH_POSITIVE_ALL_MRD, cand).failures] == [
            Criterion.PH_STATUS,
            Criterion.DISEASE_STATUS,
        ]

    def test_autoimmune_programme_takes_refractory_sle_only(self):
        # Seed 003: CD19 CAR-T in refractory SLE.
        sle = Candidate(diagnosis=Diagnosis.SLE, disease_status=DiseaseStatus.REFRACTORY)
        jdm = Candidate(diagnosis=Diagnosis.JUVENILE_DERMATOMYOSITIS, disease_status=DiseaseStatus.REFRACTORY)
        assert evaluate(CD19_CAR_T_REFRACTORY_SLE, sle).eligible
        assert not evaluate(CD19_CAR_T_REFRACTORY_SLE, jdm).eligible


class TestAgeInCompletedYears:
    @pytest.mark.parametrize(
        "dob, on, age",
        [
            pytest.param(date(2007, 5, 10), date(2025, 5, 9), 17, id="day-before-18th-birthday"),
            pytest.param(date(2007, 5, 10), date(2025, 5, 10), 18, id="on-18th-birthday"),
            pytest.param(date(2008, 2, 29), date(2026, 2, 28), 17, id="leap-day-birth-non-leap-year"),
            pytest.param(date(2008, 2, 29), date(2026, 3, 1), 18, id="leap-day-birth-after-feb"),
        ],
    )
    def test_birthday_boundary(self, dob, on, age):
        assert age_in_completed_years(dob, on) == age

    def test_birth_after_the_date_is_refused(self):
        with pytest.raises(InvalidCandidateError, match="date_of_birth"):
            age_in_completed_years(date(2025, 1, 2), date(2025, 1, 1))

    def test_datetime_is_refused(self):
        with pytest.raises(InvalidCandidateError, match="^on = datetime"):
            age_in_completed_years(date(2000, 1, 1), datetime(2025, 1, 1, 12))


class TestInvalidInput:
    @pytest.mark.parametrize(
        "kwargs, field",
        [
            ({"min_age": 30, "max_age": 20}, "min_age 30 is above max_age 20"),
            ({"max_ecog": 6}, "max_ecog"),
            ({"min_spo2_pct": 0}, "min_spo2_pct"),
            ({"max_alt_x_uln": -1}, "max_alt_x_uln"),
            ({"min_age_waived_if_ineligible_for_other_treatment": True}, "needs a min_age"),
            ({"diagnoses": frozenset()}, "diagnoses"),
            ({"disease_statuses": frozenset({"relapsed"})}, "disease_statuses"),
        ],
    )
    def test_invalid_criteria_are_refused(self, kwargs, field):
        with pytest.raises(InvalidCriteriaError, match=field):
            EligibilityCriteria(name="bad", **kwargs)

    @pytest.mark.parametrize(
        "kwargs, field",
        [
            ({"age_years": -1}, "age_years"),
            ({"ecog": 6}, "ecog"),
            ({"ecog": True}, "ecog"),
            ({"lvef_pct": 101}, "lvef_pct"),
            ({"creatinine_uln_mg_dl": 0}, "creatinine_uln_mg_dl"),
            ({"diagnosis": "BCP-ALL"}, "diagnosis"),
            ({"cd19_positive": 1}, "cd19_positive"),
        ],
    )
    def test_invalid_candidate_is_refused(self, kwargs, field):
        with pytest.raises(InvalidCandidateError, match=field):
            Candidate(**kwargs)
