"""Autoimmune-disease endpoints for CD19 CAR-T in systemic lupus
erythematosus (SLE): SLEDAI-2K and DORIS remission.

Sources:
* Gladman DD, Ibanez D, Urowitz MB. "Systemic lupus erythematosus disease
  activity index 2000." J Rheumatol 2002;29(2):288-291 - the 24 SLEDAI-2K
  descriptors and their weights (Table 1 of the article).
* van Vollenhoven RF, Bertsias G, Doria A, et al. "2021 DORIS definition of
  remission in SLE: final recommendations from an international task
  force." Lupus Sci Med 2021;8:e000538 (final recommendation, Table 2):
  clinical SLEDAI = 0 and physician/evaluator global assessment < 0.5
  (0-3 scale), irrespective of serology; the patient may be on
  antimalarials, prednisolone <= 5 mg/day, and stable immunosuppressives
  including biologics.  (The brief cited Ann Rheum Dis 2021; the 2021 final
  DORIS definition is in Lupus Sci Med.)
* van Vollenhoven R, Voskuyl A, Bertsias G, et al. "A framework for
  remission in SLE: consensus findings from a large international task
  force on definitions of remission in SLE (DORIS)." Ann Rheum Dis
  2017;76:554-561 - "remission off therapy": same clinical criteria with no
  glucocorticoids and no immunosuppressives/biologics, maintenance
  antimalarials allowed.  Encoded as ``drug_free_remission``; antimalarials
  are allowed by default, and ``antimalarials_allowed_drug_free=False``
  gives a strictly treatment-free reading.

Pure domain code: no I/O, stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "InvalidSledaiInputError",
    "InvalidDorisInputError",
    "SledaiDescriptor",
    "SLEDAI_2K_WEIGHTS",
    "SEROLOGICAL_DESCRIPTORS",
    "sledai_2k",
    "clinical_sledai_2k",
    "DORIS_PGA_LIMIT",
    "DORIS_PREDNISONE_MAX_MG_PER_DAY",
    "DorisInput",
    "DorisResult",
    "doris_remission",
]


class InvalidSledaiInputError(ValueError):
    """A SLEDAI-2K descriptor set is invalid."""


class InvalidDorisInputError(ValueError):
    """A DORIS input field is invalid."""


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


def _descriptor_set(descriptors: Iterable[SledaiDescriptor]) -> frozenset[SledaiDescriptor]:
    if isinstance(descriptors, (str, bytes)):
        raise InvalidSledaiInputError(
            f"descriptors={descriptors!r} must be a collection of SledaiDescriptor"
        )
    items = list(descriptors)
    for d in items:
        if not isinstance(d, SledaiDescriptor):
            raise InvalidSledaiInputError(f"descriptors contains {d!r}, not a SledaiDescriptor")
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
    return sum(SLEDAI_2K_WEIGHTS[d] for d in _descriptor_set(descriptors))


def clinical_sledai_2k(descriptors: Iterable[SledaiDescriptor]) -> int:
    """SLEDAI-2K excluding low complement and increased DNA binding."""
    return sum(
        SLEDAI_2K_WEIGHTS[d]
        for d in _descriptor_set(descriptors)
        if d not in SEROLOGICAL_DESCRIPTORS
    )


# DORIS 2021: physician global assessment "< 0.5" on the 0-3 scale.
DORIS_PGA_LIMIT = 0.5
# DORIS 2021: prednisolone (or equivalent) "5 mg/day or less".
DORIS_PREDNISONE_MAX_MG_PER_DAY = 5.0


@dataclass(frozen=True)
class DorisInput:
    """Inputs for DORIS.  ``maintenance_stable``: antimalarial /
    immunosuppressive / biologic doses unchanged (DORIS 2021 allows these
    only when stable)."""

    descriptors: frozenset[SledaiDescriptor]
    physician_global_assessment: float
    prednisone_equivalent_mg_per_day: float
    on_antimalarial: bool = False
    on_immunosuppressive: bool = False
    on_biologic: bool = False
    maintenance_stable: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "descriptors", _descriptor_set(self.descriptors))
        except InvalidSledaiInputError as exc:
            raise InvalidDorisInputError(str(exc)) from exc
        for name, hi in (
            ("physician_global_assessment", 3.0),
            ("prednisone_equivalent_mg_per_day", 2000.0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidDorisInputError(f"{name}={v!r} is not a finite number")
            if not 0.0 <= v <= hi:
                raise InvalidDorisInputError(f"{name}={v} is outside 0..{hi:g}")
        for name in ("on_antimalarial", "on_immunosuppressive", "on_biologic", "maintenance_stable"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidDorisInputError(f"{name}={getattr(self, name)!r} is not a bool")


@dataclass(frozen=True)
class DorisResult:
    remission: bool
    drug_free_remission: bool
    clinical_sledai: int
    unmet: tuple[str, ...]  # DORIS criteria not met (empty when in remission)


def doris_remission(
    inp: DorisInput, *, antimalarials_allowed_drug_free: bool = True
) -> DorisResult:
    """DORIS 2021 remission, plus remission off therapy (DORIS 2017)."""
    if not isinstance(inp, DorisInput):
        raise InvalidDorisInputError(f"inp={inp!r} is not a DorisInput")
    if not isinstance(antimalarials_allowed_drug_free, bool):
        raise InvalidDorisInputError(
            f"antimalarials_allowed_drug_free={antimalarials_allowed_drug_free!r} is not a bool"
        )
    csledai = clinical_sledai_2k(inp.descriptors)
    unmet: list[str] = []
    # DORIS 2021: clinical SLEDAI = 0 (serology ignored).
    if csledai != 0:
        unmet.append(f"clinical_sledai={csledai} (must be 0)")
    # DORIS 2021: PGA < 0.5 (0-3).
    if not inp.physician_global_assessment < DORIS_PGA_LIMIT:
        unmet.append(
            f"physician_global_assessment={inp.physician_global_assessment} (must be < 0.5)"
        )
    # DORIS 2021: prednisolone <= 5 mg/day.
    if inp.prednisone_equivalent_mg_per_day > DORIS_PREDNISONE_MAX_MG_PER_DAY:
        unmet.append(
            f"prednisone_equivalent_mg_per_day={inp.prednisone_equivalent_mg_per_day} "
            "(must be <= 5)"
        )
    # DORIS 2021: antimalarials, immunosuppressives and biologics only if stable.
    on_maintenance = inp.on_antimalarial or inp.on_immunosuppressive or inp.on_biologic
    if on_maintenance and not inp.maintenance_stable:
        unmet.append("maintenance_stable=False (maintenance therapy must be stable)")
    remission = not unmet

    # DORIS 2017 "remission off therapy": no glucocorticoids, no
    # immunosuppressives (incl. biologics); antimalarials allowed.
    drug_free = (
        remission
        and inp.prednisone_equivalent_mg_per_day == 0
        and not inp.on_immunosuppressive
        and not inp.on_biologic
        and (antimalarials_allowed_drug_free or not inp.on_antimalarial)
    )
    return DorisResult(remission, drug_free, csledai, tuple(unmet))
