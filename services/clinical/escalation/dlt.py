"""Which adverse events are dose-limiting toxicities (DLTs), by a programme's DLT definition.

Source: Le Tourneau C, Lee JJ, Siu LL. Dose escalation methods in phase I cancer clinical
trials. J Natl Cancer Inst 2009;101:708-720: a DLT is a toxicity, attributed to the treatment,
that occurs in the DLT observation period (usually the first cycle), and is "usually defined as
any grade 3 or 4 non-haematological toxicity or grade 4 haematological toxicity", graded by the
NCI CTCAE. The grades, the terms counted as haematological and the attributions that count are
the protocol's (a programme's `escalation.dlt_rule`, contracts/programmes.py); the defaults
below are Le Tourneau's usual definition with the attributions "possible" or stronger (ICH E2A:
a reasonable possibility of a causal relationship).

Pure functions over frozen dataclasses; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, check_fields, validated

__all__ = ["InvalidDltDefinitionError", "DltDefinition", "AdverseEventFacts", "is_dose_limiting", "ATTRIBUTIONS"]

# ICH E2A's scale, weakest first (contracts/observations.Attribution)
ATTRIBUTIONS = ("unrelated", "unlikely", "possible", "probable", "definite")

Grade = Annotated[int, Field(ge=1, le=5)]


class InvalidDltDefinitionError(ClinicalInputError):
    """A DLT definition or an adverse event given to it is invalid."""


@dataclass(frozen=True)
class DltDefinition:
    """A protocol's DLT definition: the lowest grade that is dose-limiting for a
    non-haematological and for a haematological toxicity (Le Tourneau 2009: 3 and 4), the
    CTCAE v5 terms counted as haematological (compared case-insensitively), and the weakest
    attribution that counts."""

    min_grade: Grade = 3
    min_grade_haematological: Grade = 4
    haematological_terms: frozenset[str] = field(default_factory=frozenset)
    min_attribution: str = "possible"

    def __post_init__(self) -> None:
        check_fields(self, InvalidDltDefinitionError)
        if self.min_attribution not in ATTRIBUTIONS:
            raise InvalidDltDefinitionError(f"min_attribution: {self.min_attribution!r} is not one of {ATTRIBUTIONS}")


@dataclass(frozen=True)
class AdverseEventFacts:
    """An adverse event as the rule reads it: its CTCAE v5 term and grade, its attribution to
    the product, and its onset in days from the first infusion."""

    ctcae_term: Annotated[str, Field(min_length=1)]
    grade: Grade
    attribution: str
    onset_day: int

    def __post_init__(self) -> None:
        check_fields(self, InvalidDltDefinitionError)
        if self.attribution not in ATTRIBUTIONS:
            raise InvalidDltDefinitionError(f"attribution: {self.attribution!r} is not one of {ATTRIBUTIONS}")


@validated(InvalidDltDefinitionError)
def is_dose_limiting(event: AdverseEventFacts, definition: DltDefinition,
                     window_days: Annotated[int, Field(ge=1)]) -> bool:
    """Le Tourneau 2009: within the DLT window (days 0 to `window_days` after the first
    infusion, as `records.py` reads the window), attributed at least as strongly as the
    definition asks, and of at least its grade (the haematological grade for a haematological
    term)."""
    if not 0 <= event.onset_day <= window_days:
        return False
    if ATTRIBUTIONS.index(event.attribution) < ATTRIBUTIONS.index(definition.min_attribution):
        return False
    haematological = event.ctcae_term.strip().lower() in {t.strip().lower() for t in definition.haematological_terms}
    return event.grade >= (definition.min_grade_haematological if haematological else definition.min_grade)
