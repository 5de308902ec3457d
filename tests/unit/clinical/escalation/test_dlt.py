"""Dose-limiting toxicities from adverse events (Le Tourneau C, Lee JJ, Siu LL. J Natl Cancer
Inst 2009;101:708-720: "usually defined as any grade 3 or 4 non-haematological toxicity or
grade 4 haematological toxicity", attributed to the treatment, in the DLT observation period)."""

from __future__ import annotations

import pytest

from services.clinical.escalation.dlt import (
    AdverseEventFacts,
    DltDefinition,
    InvalidDltDefinitionError,
    is_dose_limiting,
)

USUAL = DltDefinition(haematological_terms=frozenset({"Neutrophil count decreased", "Platelet count decreased"}))


@pytest.mark.parametrize(("term", "grade", "attribution", "day", "dlt"), [
    ("Febrile neutropenia", 3, "possible", 9, True),  # non-haematological grade 3
    ("Cytokine release syndrome", 2, "definite", 2, False),  # grade 2: never
    ("Neutrophil count decreased", 3, "probable", 5, False),  # haematological grade 3: not yet
    ("neutrophil count decreased ", 4, "probable", 5, True),  # grade 4, the term read case-insensitively
    ("Sepsis", 4, "unlikely", 10, False),  # not attributed
    ("Sepsis", 4, "unrelated", 10, False),
    ("Hypotension", 3, "possible", 0, True),  # the infusion day opens the window
    ("Hypotension", 3, "possible", 28, True),  # and its last day closes it
    ("Hypotension", 3, "possible", 29, False),
    ("Hypotension", 3, "possible", -1, False),  # before the infusion
    ("Death NOS", 5, "possible", 20, True),
])
def test_le_tourneaus_usual_definition(term, grade, attribution, day, dlt):
    assert is_dose_limiting(AdverseEventFacts(term, grade, attribution, day), USUAL, 28) is dlt


def test_a_protocol_may_ask_more_or_less():
    strict = DltDefinition(min_grade=4, min_attribution="probable")
    assert not is_dose_limiting(AdverseEventFacts("Hypotension", 3, "definite", 3), strict, 28)
    assert not is_dose_limiting(AdverseEventFacts("Hypotension", 4, "possible", 3), strict, 28)
    assert is_dose_limiting(AdverseEventFacts("Hypotension", 4, "probable", 3), strict, 28)


@pytest.mark.parametrize(("build", "field"), [
    (lambda: DltDefinition(min_grade=6), "min_grade"),
    (lambda: DltDefinition(min_attribution="likely"), "min_attribution"),
    (lambda: AdverseEventFacts("Sepsis", 0, "possible", 1), "grade"),
    (lambda: AdverseEventFacts("Sepsis", 3, "maybe", 1), "attribution"),
    (lambda: is_dose_limiting(AdverseEventFacts("Sepsis", 3, "possible", 1), USUAL, 0), "window_days"),
])
def test_invalid_input_is_refused_naming_the_field(build, field):
    with pytest.raises(InvalidDltDefinitionError, match=field):
        build()
