"""ALL response - NCCN ALL guidelines "Response Assessment" (CR, CRi, MRD
< 0.01 %, relapse) and the CAR-CIK protocol's day-28 readings (seed 000)."""

import pytest

from services.clinical.response_all import (
    AllAssessment,
    InvalidResponseAssessmentError,
    MrdStatus,
    PriorStatus,
    ResponseCategory as R,
    all_response,
    carcik_day28_readings,
)

P = PriorStatus


def assess(blasts=1.0, circ=False, emd=False, anc=2500, plt=150_000, flow=None, mol=None):
    return AllAssessment(blasts, circ, emd, anc, plt, flow, mol)


class TestCompleteRemission:
    @pytest.mark.parametrize(
        "kwargs, category",
        [
            pytest.param({}, R.CR, id="NCCN-CR-all-criteria-met"),
            pytest.param({"blasts": 4.9}, R.CR, id="NCCN-marrow-blasts-4.9-below-5"),
            pytest.param({"blasts": 5.0}, R.NO_RESPONSE, id="NCCN-marrow-blasts-5.0-not-CR"),
            pytest.param({"circ": True}, R.NO_RESPONSE, id="NCCN-circulating-blasts-not-CR"),
            pytest.param({"emd": True}, R.NO_RESPONSE, id="NCCN-extramedullary-disease-not-CR"),
            pytest.param({"anc": 1000}, R.CR, id="ANC-1000-recovered"),
            pytest.param({"anc": 999}, R.CRI, id="ANC-999-CRi"),
            pytest.param({"plt": 100_000}, R.CR, id="platelets-100k-recovered"),
            pytest.param({"plt": 99_999}, R.CRI, id="platelets-99999-CRi"),
            pytest.param({"anc": 200, "plt": 20_000}, R.CRI, id="both-counts-low-CRi"),
        ],
    )
    def test_category_at_each_threshold(self, kwargs, category):
        assert all_response(assess(**kwargs)).category is category


class TestMrd:
    @pytest.mark.parametrize(
        "flow, mol, status",
        [
            pytest.param(0.0099, None, MrdStatus.NEGATIVE, id="NCCN-flow-MRD-0.0099-negative"),
            pytest.param(0.01, None, MrdStatus.POSITIVE, id="NCCN-flow-MRD-0.01-positive"),
            pytest.param(None, 0.0099, MrdStatus.NEGATIVE, id="molecular-MRD-0.0099-negative"),
            pytest.param(None, 0.01, MrdStatus.POSITIVE, id="molecular-MRD-0.01-positive"),
            pytest.param(0.0, 0.02, MrdStatus.POSITIVE, id="any-positive-assay-makes-MRD-positive"),
            pytest.param(None, None, MrdStatus.NOT_ASSESSED, id="no-MRD-assay"),
        ],
    )
    def test_mrd_status_uses_the_0_01_percent_cut_off(self, flow, mol, status):
        assert all_response(assess(flow=flow, mol=mol)).mrd is status

    def test_cr_with_mrd_below_0_01_percent_is_mrd_negative_cr(self):
        assert all_response(assess(mol=0.001)).mrd_negative_cr is True

    def test_cri_with_negative_mrd_is_not_mrd_negative_cr(self):
        assert all_response(assess(anc=500, mol=0.001)).mrd_negative_cr is False

    def test_cr_without_mrd_assessment_is_not_mrd_negative_cr(self):
        assert all_response(assess()).mrd_negative_cr is False


class TestRelapse:
    @pytest.mark.parametrize(
        "kwargs",
        [
            pytest.param({"blasts": 5.0}, id="NCCN-relapse-marrow-blasts-5"),
            pytest.param({"circ": True}, id="NCCN-relapse-blasts-in-blood"),
            pytest.param({"emd": True}, id="NCCN-relapse-extramedullary"),
        ],
    )
    @pytest.mark.parametrize("prior", [P.HAEMATOLOGICAL_REMISSION, P.MRD_NEGATIVE_REMISSION])
    def test_disease_after_remission_is_haematological_relapse(self, kwargs, prior):
        assert all_response(assess(**kwargs), prior).category is R.HAEMATOLOGICAL_RELAPSE

    def test_disease_without_prior_remission_is_no_response(self):
        assert all_response(assess(blasts=30), P.NOT_IN_REMISSION).category is R.NO_RESPONSE

    def test_mrd_reaching_0_01_after_mrd_negativity_is_molecular_relapse(self):
        result = all_response(assess(mol=0.01), P.MRD_NEGATIVE_REMISSION)
        assert result.category is R.MOLECULAR_RELAPSE

    def test_mrd_0_0099_after_mrd_negativity_stays_in_cr(self):
        result = all_response(assess(mol=0.0099), P.MRD_NEGATIVE_REMISSION)
        assert result.category is R.CR and result.mrd_negative_cr

    def test_positive_mrd_without_prior_mrd_negativity_is_not_molecular_relapse(self):
        assert all_response(assess(mol=0.5), P.HAEMATOLOGICAL_REMISSION).category is R.CR


class TestCarCikDay28Readings:
    # Seed 000 (CAR-CIK): morphology < 5 %, flow < 5 %, molecular < 0.01 %.
    def test_three_readings_at_their_boundaries(self):
        below = carcik_day28_readings(assess(blasts=4.9, flow=4.9, mol=0.0099))
        at = carcik_day28_readings(assess(blasts=5.0, flow=5.0, mol=0.01))
        assert (below.morphology_response, below.flow_response, below.molecular_response) == (True, True, True)
        assert (at.morphology_response, at.flow_response, at.molecular_response) == (False, False, False)

    def test_readings_can_disagree(self):
        r = carcik_day28_readings(assess(blasts=0.5, flow=0.8, mol=0.3))
        assert (r.morphology_response, r.flow_response, r.molecular_response) == (True, True, False)

    def test_missing_measurements_read_as_none(self):
        r = carcik_day28_readings(assess())
        assert (r.flow_response, r.molecular_response) == (None, None)


class TestInvalidAssessment:
    @pytest.mark.parametrize(
        "kwargs, field",
        [
            pytest.param({"blasts": 100.1}, "marrow_blasts_pct", id="blasts-over-100"),
            pytest.param({"blasts": -0.1}, "marrow_blasts_pct", id="negative-blasts"),
            pytest.param({"anc": -1}, "anc_per_ul", id="negative-anc"),
            pytest.param({"plt": float("nan")}, "platelets_per_ul", id="nan-platelets"),
            pytest.param({"flow": 101}, "flow_mrd_pct", id="flow-over-100"),
            pytest.param({"mol": -0.001}, "molecular_mrd_pct", id="negative-molecular"),
            pytest.param({"circ": "no"}, "circulating_blasts", id="circulating-not-bool"),
        ],
    )
    def test_invalid_field_raises_error_naming_it(self, kwargs, field):
        with pytest.raises(InvalidResponseAssessmentError, match=field):
            assess(**kwargs)

    def test_prior_must_be_a_prior_status(self):
        with pytest.raises(InvalidResponseAssessmentError, match="prior"):
            all_response(assess(), "CR")
