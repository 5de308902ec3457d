"""Body-surface area (BSA) from height and weight.

BSA is returned unrounded (m2); callers round for display only.
Pure functions, no I/O.
"""

from __future__ import annotations

from enum import StrEnum
from math import sqrt
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, validated

__all__ = [
    "BsaFormula",
    "HeightCm",
    "InvalidAnthropometryError",
    "WeightKg",
    "body_surface_area",
    "bsa_dubois",
    "bsa_mosteller",
]


class InvalidAnthropometryError(ClinicalInputError):
    pass


# Plausible ranges for any patient, newborn to adult; input guards, not clinical rules.
HeightCm = Annotated[float, Field(ge=30.0, le=250.0)]
WeightKg = Annotated[float, Field(ge=1.0, le=300.0)]


@validated(InvalidAnthropometryError)
def bsa_mosteller(height_cm: HeightCm, weight_kg: WeightKg) -> float:
    """BSA (m2) = sqrt(height_cm x weight_kg / 3600).

    Mosteller RD. Simplified calculation of body-surface area. N Engl J Med 1987;317:1098.
    """
    return sqrt(height_cm * weight_kg / 3600.0)


@validated(InvalidAnthropometryError)
def bsa_dubois(height_cm: HeightCm, weight_kg: WeightKg) -> float:
    """BSA (m2) = 0.007184 x W^0.425 x H^0.725.

    Du Bois D, Du Bois EF. A formula to estimate the approximate surface area
    if height and weight be known. Arch Intern Med 1916;17:863-871.
    """
    return 0.007184 * weight_kg**0.425 * height_cm**0.725


class BsaFormula(StrEnum):
    MOSTELLER = "mosteller"
    DUBOIS = "dubois"


_FORMULAS = {BsaFormula.MOSTELLER: bsa_mosteller, BsaFormula.DUBOIS: bsa_dubois}


@validated(InvalidAnthropometryError)
def body_surface_area(height_cm: HeightCm, weight_kg: WeightKg, formula: BsaFormula = BsaFormula.MOSTELLER) -> float:
    return _FORMULAS[formula](height_cm, weight_kg)
