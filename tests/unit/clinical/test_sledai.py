"""SLEDAI-2K (Gladman DD et al., J Rheumatol 2002;29:288-291, Table 1)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.clinical.sledai import (
    InvalidSledaiInputError,
    SledaiDescriptor as S,
    clinical_sledai_2k,
    sledai_2k,
)

# Weights typed in from Gladman 2002, Table 1 (independent of the module).
PUBLISHED_WEIGHTS = {
    S.SEIZURE: 8, S.PSYCHOSIS: 8, S.ORGANIC_BRAIN_SYNDROME: 8, S.VISUAL_DISTURBANCE: 8,
    S.CRANIAL_NERVE_DISORDER: 8, S.LUPUS_HEADACHE: 8, S.CVA: 8, S.VASCULITIS: 8,
    S.ARTHRITIS: 4, S.MYOSITIS: 4, S.URINARY_CASTS: 4, S.HAEMATURIA: 4, S.PROTEINURIA: 4, S.PYURIA: 4,
    S.RASH: 2, S.ALOPECIA: 2, S.MUCOSAL_ULCERS: 2, S.PLEURISY: 2, S.PERICARDITIS: 2,
    S.LOW_COMPLEMENT: 2, S.INCREASED_DNA_BINDING: 2,
    S.FEVER: 1, S.THROMBOCYTOPENIA: 1, S.LEUKOPENIA: 1,
}

# Illustrative descriptor sets that sum to the totals reported in seed 003
# (pSLE patients #1 and #3, SLEDAI-2K 22 and 38).  They are constructed to be
# compatible with the listed organ involvement; they are NOT the patients'
# recorded descriptor sets, which the seed does not give.
SET_22 = {S.RASH, S.ARTHRITIS, S.PROTEINURIA, S.HAEMATURIA, S.PLEURISY,
          S.THROMBOCYTOPENIA, S.LOW_COMPLEMENT, S.INCREASED_DNA_BINDING, S.FEVER}  # 2+4+4+4+2+1+2+2+1
SET_38 = {S.VISUAL_DISTURBANCE, S.RASH, S.ALOPECIA, S.ARTHRITIS, S.PROTEINURIA, S.HAEMATURIA,
          S.URINARY_CASTS, S.PLEURISY, S.PERICARDITIS, S.THROMBOCYTOPENIA, S.LOW_COMPLEMENT,
          S.INCREASED_DNA_BINDING, S.FEVER}  # 8+2+2+4+4+4+4+2+2+1+2+2+1


class TestSledai2k:
    def test_there_are_24_descriptors_with_the_published_weights(self):
        assert len(S) == 24
        for d, w in PUBLISHED_WEIGHTS.items():
            assert sledai_2k([d]) == w, d

    @pytest.mark.parametrize(
        "descriptors, total, clinical",
        [
            pytest.param(set(), 0, 0, id="no-activity"),
            pytest.param(SET_22, 22, 18, id="seed003-pt1-total-22-constructed"),
            pytest.param(SET_38, 38, 34, id="seed003-pt3-total-38-constructed"),
            pytest.param(set(S), 105, 101, id="Gladman2002-maximum-105"),
            pytest.param({S.LOW_COMPLEMENT, S.INCREASED_DNA_BINDING}, 4, 0, id="serology-only-clinical-0"),
        ],
    )
    def test_total_and_clinical_score(self, descriptors, total, clinical):
        assert (sledai_2k(descriptors), clinical_sledai_2k(descriptors)) == (total, clinical)

    def test_a_descriptor_listed_twice_is_rejected(self):
        with pytest.raises(InvalidSledaiInputError, match="arthritis"):
            sledai_2k([S.ARTHRITIS, S.ARTHRITIS])

    def test_unknown_descriptor_is_rejected(self):
        with pytest.raises(InvalidSledaiInputError, match="descriptors"):
            sledai_2k(["arthritis"])

    @given(st.sets(st.sampled_from(list(S))))
    def test_score_is_the_sum_of_published_weights(self, descriptors):
        assert sledai_2k(descriptors) == sum(PUBLISHED_WEIGHTS[d] for d in descriptors)
        serology = PUBLISHED_WEIGHTS[S.LOW_COMPLEMENT] * (S.LOW_COMPLEMENT in descriptors) + \
            PUBLISHED_WEIGHTS[S.INCREASED_DNA_BINDING] * (S.INCREASED_DNA_BINDING in descriptors)
        assert clinical_sledai_2k(descriptors) == sledai_2k(descriptors) - serology
