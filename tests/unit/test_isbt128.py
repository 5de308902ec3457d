"""ISBT 128-shaped identifiers (contracts/isbt128.py): the ISO 7064 MOD 37-2 check character
against the published worked example, and what a mistyped identifier gets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import isbt128
from contracts.isbt128 import ALPHABET, IdentifierError, check_character, checksum, issue, parse

# UK Red Book (JPAC), Annex 2 "ISBT 128 check character calculation", Table A2.2: donation
# number G123 498 654 321, sum of weighted values 148354, mod 37 = 21, 38 - 21 = 17, checksum
# 17, barcode check characters 77, eye-readable check character H.
RED_BOOK = "G123498654321"


def test_the_red_book_worked_example() -> None:
    weighted = sum(isbt128._VALUE[c] * 2 ** n for n, c in enumerate(reversed(RED_BOOK), start=1))
    assert weighted == 148354 and weighted % 37 == 21
    assert checksum(RED_BOOK) == 17
    assert checksum(RED_BOOK) + 60 == 77  # the barcode check characters
    assert check_character(RED_BOOK) == "H"


def test_the_character_values_are_table_a2_1() -> None:
    assert [isbt128._VALUE[c] for c in "09AZ*"] == [0, 9, 10, 35, 36]


@pytest.mark.parametrize("text", ["G123498654321H", "G1234 98 654321 H", "g1234 98 654321 h"])
def test_compact_and_label_forms_read_the_same(text: str) -> None:
    parsed = parse(text)
    assert (parsed.facility, parsed.year, parsed.sequence) == ("G1234", 98, 654321)
    assert str(parsed) == "G123498654321H" and parsed.eye_readable == "G1234 98 654321 H"


@pytest.mark.parametrize(("text", "message"), [
    ("G123498654321K", "check character 'K' does not match G123498654321 (expected 'H'); the identifier was "
                       "mistyped or misread"),
    ("G123498654312H", "check character 'H' does not match G123498654312"),  # two digits swapped
    ("G12349865432H", "has 13 characters; an identifier has 14"),
    ("1123498654321H", "is not facility (1 letter, 4 digits)"),
    ("G123498000000U", "sequence 000000 is never issued"),
    ("COI-0001-A", "has 10 characters"),
])
def test_a_mistyped_identifier_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(IdentifierError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text)


def test_issue_makes_identifiers_that_parse_back() -> None:
    made = issue("W0001", 2026, 42)
    assert str(made).startswith("W000126000042") and parse(str(made)) == made


def test_issue_refuses_what_is_not_a_facility_or_a_sequence() -> None:
    with pytest.raises(IdentifierError, match="not one letter and four digits"):
        issue("CTR-A", 2026, 1)
    with pytest.raises(IdentifierError, match="outside 1..999999"):
        issue("W0001", 2026, 1_000_000)


identifiers = st.builds(issue, st.from_regex(r"[A-Z][0-9]{4}", fullmatch=True), st.integers(0, 99),
                        st.integers(1, 999_999)).map(str)


@given(identifiers, st.integers(0, 13), st.sampled_from(ALPHABET))
def test_every_single_character_error_is_caught(ident: str, at: int, wrong: str) -> None:
    """ISO 7064 MOD 37-2 detects every single substitution."""
    if wrong == ident[at]:
        return
    typed = ident[:at] + wrong + ident[at + 1:]
    with pytest.raises(IdentifierError):
        parse(typed)


@given(identifiers, st.integers(0, 12))
def test_every_swap_of_adjacent_characters_is_caught(ident: str, at: int) -> None:
    """... and every transposition of two adjacent characters."""
    if ident[at] == ident[at + 1]:
        return
    typed = ident[:at] + ident[at + 1] + ident[at] + ident[at + 2:]
    with pytest.raises(IdentifierError):
        parse(typed)


def test_remembered_normalisation_still_refuses_what_it_refused() -> None:
    """normalise/normalise_unit remember valid identifiers (decoding cost): a refused one is
    refused every time, a non-text value is refused by name, not by the cache's TypeError."""
    good = str(isbt128.issue("W0001", 2025, 11))
    assert isbt128.normalise(good) == isbt128.normalise(good.lower()) == good
    assert isbt128.normalise_unit(good + "A0") == good + "A0"
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    for _ in range(2):
        with pytest.raises(isbt128.IdentifierError, match="check character"):
            isbt128.normalise(bad)
        with pytest.raises(isbt128.IdentifierError, match="check character"):
            isbt128.normalise_unit(bad + "A0")
    for value in ([good], {"coi": good}, 12):
        with pytest.raises(isbt128.IdentifierError, match="is text"):
            isbt128.normalise(value)  # type: ignore[arg-type]
        with pytest.raises(isbt128.IdentifierError, match="is text"):
            isbt128.normalise_unit(value)  # type: ignore[arg-type]
