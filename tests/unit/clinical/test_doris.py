"""DORIS remission (van Vollenhoven RF et al., Lupus Sci Med 2021;8:e000538;
remission off therapy: Ann Rheum Dis 2017;76:554-561)."""

import pytest

from services.clinical.doris import DorisInput, InvalidDorisInputError, doris_remission
from services.clinical.sledai import SledaiDescriptor as S


def doris(descriptors=(), pga=0.0, pred=0.0, am=False, ims=False, bio=False, stable=True, **kw):
    return doris_remission(DorisInput(frozenset(descriptors), pga, pred, am, ims, bio, stable), **kw)


class TestDorisRemission:
    @pytest.mark.parametrize(
        "kwargs, remission",
        [
            pytest.param({}, True, id="DORIS2021-all-met"),
            pytest.param({"pga": 0.49}, True, id="DORIS2021-PGA-0.49-below-0.5"),
            pytest.param({"pga": 0.5}, False, id="DORIS2021-PGA-0.5-not-below"),
            pytest.param({"pred": 5.0}, True, id="DORIS2021-prednisolone-5-allowed"),
            pytest.param({"pred": 5.1}, False, id="DORIS2021-prednisolone-5.1-too-high"),
            pytest.param({"descriptors": {S.LOW_COMPLEMENT, S.INCREASED_DNA_BINDING}}, True,
                         id="DORIS2021-irrespective-of-serology"),
            pytest.param({"descriptors": {S.FEVER}}, False, id="DORIS2021-clinical-SLEDAI-1"),
            pytest.param({"am": True, "ims": True, "bio": True}, True, id="DORIS2021-stable-maintenance-allowed"),
            pytest.param({"ims": True, "stable": False}, False, id="DORIS2021-unstable-immunosuppression"),
        ],
    )
    def test_remission_criteria(self, kwargs, remission):
        assert doris(**kwargs).remission is remission

    def test_unmet_criteria_are_named(self):
        result = doris(descriptors={S.ARTHRITIS}, pga=1.0, pred=10)
        assert len(result.unmet) == 3
        assert "clinical_sledai=4" in result.unmet[0]


class TestDrugFreeRemission:
    @pytest.mark.parametrize(
        "kwargs, drug_free",
        [
            pytest.param({}, True, id="no-treatment"),
            pytest.param({"am": True}, True, id="DORIS2017-off-therapy-antimalarials-allowed"),
            pytest.param({"pred": 1.0}, False, id="any-glucocorticoid"),
            pytest.param({"ims": True}, False, id="immunosuppressive"),
            pytest.param({"bio": True}, False, id="biologic"),
            pytest.param({"am": True, "antimalarials_allowed_drug_free": False}, False,
                         id="strict-treatment-free-option"),
            pytest.param({"pga": 0.5}, False, id="requires-DORIS-remission"),
        ],
    )
    def test_drug_free_remission(self, kwargs, drug_free):
        assert doris(**kwargs).drug_free_remission is drug_free


class TestInvalidDorisInput:
    @pytest.mark.parametrize(
        "kwargs, field",
        [
            pytest.param({"pga": 3.1}, "physician_global_assessment", id="PGA-above-3"),
            pytest.param({"pga": -0.1}, "physician_global_assessment", id="negative-PGA"),
            pytest.param({"pred": -1}, "prednisone_equivalent_mg_per_day", id="negative-prednisone"),
            pytest.param({"pred": float("nan")}, "prednisone_equivalent_mg_per_day", id="nan-prednisone"),
            pytest.param({"am": "yes"}, "on_antimalarial", id="flag-not-bool"),
            pytest.param({"descriptors": ["fever"]}, "descriptors", id="descriptor-not-enum"),
        ],
    )
    def test_invalid_field_raises_error_naming_it(self, kwargs, field):
        with pytest.raises(InvalidDorisInputError, match=field):
            doris(**kwargs)
