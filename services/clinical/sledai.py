"""SLEDAI-2K, the disease-activity index of systemic lupus erythematosus (SLE),
and its "clinical" form without serology.

Source: Gladman DD, Ibanez D, Urowitz MB. "Systemic lupus erythematosus disease
activity index 2000." J Rheumatol 2002;29(2):288-291 - the 24 SLEDAI-2K
descriptors and their weights (Table 1 of the article).

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from services.clinical.base import ClinicalInputError, check

__all__ = [
    "InvalidSledaiInputError",
    "SledaiDescriptor",
    "SLEDAI_2K_WEIGHTS",
    "SEROLOGICAL_DESCRIPTORS",
    "sledai_2k",
    "clinical_sledai_2k",
    "descriptor_set",
]


class InvalidSledaiInputError(ClinicalInputError):
    """A SLEDAI-2K descriptor set is invalid."""


class SledaiDescriptor(str, Enum):
    SEIZURE = "seizure"
    PSYCHOSIS = "psychosis"
    ORGANIC_BRAIN_SYNDROME = "organic_brain_syndrome"
    VISUAL_DISTURBANCE = "visual_disturbance"
    CRANIAL_NERVE_DISORDER = "cranial_nerve_disorder"
    LUPUS_HEADACHE = "lupus_headache"
    CVA = "cerebrovascular_accident"
    VASCULITIS = "vasculitis"
    ARTHRITIS = "arthritis"
    MYOSITIS = "myositis"
    URINARY_CASTS = "urinary_casts"
    HAEMATURIA = "haematuria"
    PROTEINURIA = "proteinuria"
    PYURIA = "pyuria"
    RASH = "rash"
    ALOPECIA = "alopecia"
    MUCOSAL_ULCERS = "mucosal_ulcers"
    PLEURISY = "pleurisy"
    PERICARDITIS = "pericarditis"
    LOW_COMPLEMENT = "low_complement"
    INCREASED_DNA_BINDING = "increased_dna_binding"
    FEVER = "fever"
    THROMBOCYTOPENIA = "thrombocytopenia"
    LEUKOPENIA = "leukopenia"


_D = SledaiDescriptor
# Gladman 2002, Table 1 (SLEDAI-2K descriptors and weights).
SLEDAI_2K_WEIGHTS: dict[SledaiDescriptor, int] = {
    _D.SEIZURE: 8,
    _D.PSYCHOSIS: 8,
    _D.ORGANIC_BRAIN_SYNDROME: 8,
    _D.VISUAL_DISTURBANCE: 8,
    _D.CRANIAL_NERVE_DISORDER: 8,
    _D.LUPUS_HEADACHE: 8,
    _D.CVA: 8,
    _D.VASCULITIS: 8,
    _D.ARTHRITIS: 4,
    _D.MYOSITIS: 4,
    _D.URINARY_CASTS: 4,
    _D.HAEMATURIA: 4,
    _D.PROTEINURIA: 4,
    _D.PYURIA: 4,
    _D.RASH: 2,
    _D.ALOPECIA: 2,
    _D.MUCOSAL_ULCERS: 2,
    _D.PLEURISY: 2,
    _D.PERICARDITIS: 2,
    _D.LOW_COMPLEMENT: 2,
    _D.INCREASED_DNA_BINDING: 2,
    _D.FEVER: 1,
    _D.THROMBOCYTOPENIA: 1,
    _D.LEUKOPENIA: 1,
}

# "Clinical SLEDAI" (used by DORIS 2021) = SLEDAI-2K without the serological
# descriptors low complement and increased DNA binding.
SEROLOGICAL_DESCRIPTORS = frozenset({_D.LOW_COMPLEMENT, _D.INCREASED_DNA_BINDING})


def descriptor_set(descriptors: Iterable[SledaiDescriptor]) -> frozenset[SledaiDescriptor]:
    """The descriptors present, each once (Gladman 2002: each descriptor scores once)."""
    if isinstance(descriptors, (str, bytes)):
        raise InvalidSledaiInputError(
            f"descriptors={descriptors!r} must be a collection of SledaiDescriptor"
        )
    items = list(descriptors)
    check("descriptors", items, list[SledaiDescriptor], InvalidSledaiInputError)
    result = frozenset(items)
    if len(result) != len(items):
        dupes = sorted({d.value for d in items if items.count(d) > 1})
        raise InvalidSledaiInputError(
            f"descriptors lists {dupes} more than once; each SLEDAI-2K descriptor scores once"
        )
    return result


def sledai_2k(descriptors: Iterable[SledaiDescriptor]) -> int:
    """SLEDAI-2K total (0..105): sum of the weights of the descriptors
    present (Gladman 2002)."""
    return sum(SLEDAI_2K_WEIGHTS[d] for d in descriptor_set(descriptors))


def clinical_sledai_2k(descriptors: Iterable[SledaiDescriptor]) -> int:
    """SLEDAI-2K excluding low complement and increased DNA binding."""
    return sum(
        SLEDAI_2K_WEIGHTS[d]
        for d in descriptor_set(descriptors)
        if d not in SEROLOGICAL_DESCRIPTORS
    )
