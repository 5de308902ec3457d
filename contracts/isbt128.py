"""Chain-of-identity and unit identifiers shaped like ISBT 128 (docs/identifiers.md).

An identifier is an ISBT 128 Donation Identification Number (DIN) data structure followed
by its check character:

    F F F F F  Y Y  S S S S S S  K
    facility   year sequence     check

- the facility identification number (FIN) of the issuing facility: one letter and four
  digits (ICCBBA assigns FINs; `A9999`-style, ISBT 128 Standard Technical Specification);
- the two last digits of the year of issue;
- a six-digit sequence number, unique per facility and year;
- the check character of ISO/IEC 7064 MOD 37-2 computed over the 13 characters before it,
  as ISBT 128 computes the DIN's eye-readable check character (one of `0-9`, `A-Z`, `*`).

Written compact (`G123498654321H`) or as printed on a label (`G1234 98 654321 H`); both
read the same. A chain of identity (COI, ICCBBA ST-028 in spirit) and each unit (bag) made
from it have their own identifier of this shape; events bind them together.

A unit (a bag) is named by its COI followed by a two-character division code, as ISBT 128
names the parts of a divided product by the division characters of its product code (the
DIN stays the donation's, the division tells the bags apart): `A0`, `B0`, ... for the first
level, `Aa`, `Ab`, ... for a second. CellTrail reserves `00` (ISBT 128: not divided) for the
collected starting material. So every unit is bound to its COI by its very identifier:
`G123498654321HA0`, printed `G1234 98 654321 H A0`.

Source of the check character: ISO/IEC 7064:2003, pure system MOD 37-2 (radix 2, modulus
37); the worked example of the UK Red Book, Annex 2 "ISBT 128 check character calculation"
(G123 498 654 321 -> checksum 17 -> `H`), which tests/unit/test_isbt128.py reproduces.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"  # ISO 7064 value of each character = its index
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_DATA = re.compile(r"^[A-Z][0-9]{4}[0-9]{2}[0-9]{6}$")


class IdentifierError(ValueError):
    """A malformed identifier, or one whose check character does not match (mistyped)."""


def checksum(data: str) -> int:
    """ISO 7064 MOD 37-2 check value of `data` (characters of `ALPHABET`, no check char):
    every character's value weighted by 2^n, n its position from the right (1 for the last),
    summed; then (38 - sum mod 37) mod 37. Computed by Horner's rule, which gives the same
    sum modulo 37."""
    total = 0
    for c in data:
        try:
            total = ((total + _VALUE[c]) * 2) % 37
        except KeyError:
            raise IdentifierError(f"{c!r} is not an ISO 7064 MOD 37-2 character (0-9, A-Z, *)") from None
    return (38 - total) % 37


def check_character(data: str) -> str:
    return ALPHABET[checksum(data)]


@dataclass(frozen=True, order=True)
class Isbt128Id:
    """A parsed identifier; `str()` is the compact form."""

    facility: str  # the FIN, e.g. "G1234"
    year: int  # two digits, e.g. 26
    sequence: int  # 1 .. 999999

    @property
    def data(self) -> str:
        return f"{self.facility}{self.year:02d}{self.sequence:06d}"

    @property
    def check(self) -> str:
        return check_character(self.data)

    def __str__(self) -> str:
        return self.data + self.check

    @property
    def eye_readable(self) -> str:
        return f"{self.facility} {self.year:02d} {self.sequence:06d} {self.check}"


def issue(facility: str, year: int, sequence: int) -> Isbt128Id:
    """The identifier `sequence` of `facility` in `year` (four-digit or two-digit)."""
    if not re.fullmatch(r"[A-Z][0-9]{4}", facility):
        raise IdentifierError(f"facility identification number {facility!r} is not one letter and four digits")
    if not 1 <= sequence <= 999_999:
        raise IdentifierError(f"sequence {sequence} is outside 1..999999")
    return Isbt128Id(facility, year % 100, sequence)


def parse(text: str) -> Isbt128Id:
    """Read an identifier typed or scanned, compact or with the label's spaces; refuse one
    malformed or with a check character that does not match, saying which."""
    if not isinstance(text, str):
        raise IdentifierError(f"an identifier is text, not {type(text).__name__}")
    compact = text.replace(" ", "").upper()
    if len(compact) != 14:
        raise IdentifierError(f"{text!r} has {len(compact)} characters; an identifier has 14: facility (1 letter, "
                              "4 digits), year (2 digits), sequence (6 digits), check character")
    data, given = compact[:13], compact[13]
    if not _DATA.match(data):
        raise IdentifierError(f"{text!r} is not facility (1 letter, 4 digits), year (2 digits), sequence "
                              "(6 digits) followed by a check character")
    expected = check_character(data)
    if given != expected:
        raise IdentifierError(f"{text!r}: check character {given!r} does not match {data} (expected {expected!r});"
                              " the identifier was mistyped or misread")
    sequence = int(data[7:])
    if sequence == 0:
        raise IdentifierError(f"{text!r}: sequence 000000 is never issued")
    return Isbt128Id(data[:5], int(data[5:7]), sequence)


def normalise(text: str) -> str:
    """The compact form of a valid identifier (IdentifierError otherwise)."""
    if not isinstance(text, str):
        raise IdentifierError(f"an identifier is text, not {type(text).__name__}")
    return _normalised(text)


# Every event of a product's journey names its COI and unit, and every consumer validates
# them: the check character was a tenth of decoding an event (`python -m
# infra.bench.projection_cpu --profile`). A pure function of its text, remembered for the
# identifiers last seen; a refusal is not remembered (lru_cache keeps results only).
@functools.lru_cache(maxsize=1 << 16)
def _normalised(text: str) -> str:
    return str(parse(text))


# ISBT 128 division characters (first level A-Z, second level 0 or a-z); `00` is the
# undivided starting material.
STARTING_MATERIAL = "00"
_DIVISION = re.compile(r"^(?:00|[A-Z][0-9a-z])$")


def check_division(division: str) -> str:
    if not isinstance(division, str) or not _DIVISION.match(division):
        raise IdentifierError(f"{division!r} is not a division code: a capital letter then 0 or a small letter "
                              f"(A0, B0, Ab), or {STARTING_MATERIAL} for the starting material")
    return division


def unit_id(coi: str, division: str) -> str:
    """The identifier of division `division` of COI `coi` (compact)."""
    return normalise(coi) + check_division(division)


def parse_unit(text: str) -> tuple[str, str]:
    """(the COI, the division) of a unit identifier typed or scanned, compact or with the
    label's spaces; refused, saying why, when the COI part is mistyped or the division is not
    one."""
    if not isinstance(text, str):
        raise IdentifierError(f"a unit identifier is text, not {type(text).__name__}")
    compact = text.replace(" ", "")
    if len(compact) != 16:
        raise IdentifierError(f"{text!r} has {len(compact)} characters; a unit identifier has 16: the COI's 14 "
                              "and a two-character division code (A0, B0, or 00 for the starting material)")
    return normalise(compact[:14]), check_division(compact[14:])


def normalise_unit(text: str) -> str:
    if not isinstance(text, str):
        raise IdentifierError(f"a unit identifier is text, not {type(text).__name__}")
    return _normalised_unit(text)


@functools.lru_cache(maxsize=1 << 16)
def _normalised_unit(text: str) -> str:
    coi, division = parse_unit(text)
    return coi + division


def coi_of_unit(unit: str) -> str:
    return parse_unit(unit)[0]


def unit_label(unit: str) -> str:
    coi, division = parse_unit(unit)
    return f"{parse(coi).eye_readable} {division}"
