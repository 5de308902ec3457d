"""DORIS remission of systemic lupus erythematosus (SLE), for CD19 CAR-T in SLE.

Sources:
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
The clinical SLEDAI-2K itself is in ``services.clinical.sledai``.

Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, check_fields, validated
from services.clinical.sledai import (
    InvalidSledaiInputError,
    SledaiDescriptor,
    clinical_sledai_2k,
    descriptor_set,
)

__all__ = [
    "InvalidDorisInputError",
    "DORIS_PGA_LIMIT",
    "DORIS_PREDNISONE_MAX_MG_PER_DAY",
    "DorisInput",
    "DorisResult",
    "doris_remission",
]


class InvalidDorisInputError(ClinicalInputError):
    """A DORIS input field is invalid."""


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
    physician_global_assessment: Annotated[float, Field(ge=0.0, le=3.0)]  # DORIS 2021: 0-3 scale
    prednisone_equivalent_mg_per_day: Annotated[float, Field(ge=0.0, le=2000.0)]
    on_antimalarial: bool = False
    on_immunosuppressive: bool = False
    on_biologic: bool = False
    maintenance_stable: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "descriptors", descriptor_set(self.descriptors))
        except InvalidSledaiInputError as exc:
            raise InvalidDorisInputError(str(exc)) from exc
        check_fields(self, InvalidDorisInputError)


@dataclass(frozen=True)
class DorisResult:
    remission: bool
    drug_free_remission: bool
    clinical_sledai: int
    unmet: tuple[str, ...]  # DORIS criteria not met (empty when in remission)


@validated(InvalidDorisInputError)
def doris_remission(
    inp: DorisInput, *, antimalarials_allowed_drug_free: bool = True
) -> DorisResult:
    """DORIS 2021 remission, plus remission off therapy (DORIS 2017)."""
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
