"""Shared helpers of the clinical rules: checks by declared types, banded tables, rounding."""

from dataclasses import dataclass
from typing import Annotated

import pytest
from pydantic import Field

from services.clinical.base import ClinicalInputError, band, check, check_fields, round_half_up, validated


class BadInput(ClinicalInputError):
    pass


class BadLimit(ClinicalInputError):
    pass


@validated(BadInput, {"limit": BadLimit})
def scaled(value: Annotated[float, Field(ge=0)], limit: Annotated[int, Field(ge=1)] = 1) -> float:
    return value / limit


@dataclass(frozen=True)
class Reading:
    day: int
    value: Annotated[float, Field(ge=0)]

    def __post_init__(self) -> None:
        check_fields(self, BadInput)


class TestChecksByDeclaredType:
    def test_a_positional_argument_is_named_by_its_parameter(self):
        with pytest.raises(BadInput, match=r"^value = -1: input should be greater than or equal to 0$"):
            scaled(-1)

    def test_an_argument_can_raise_its_own_error_class(self):
        with pytest.raises(BadLimit, match="^limit = True"):
            scaled(1.0, limit=True)

    def test_no_coercion_a_numeric_string_is_not_a_number(self):
        with pytest.raises(BadInput, match="value = '3'"):
            scaled("3")

    def test_the_first_failing_field_in_declared_order_is_reported(self):
        with pytest.raises(BadInput, match="^day = 1.5"):
            Reading(1.5, -1)

    def test_an_item_of_a_collection_is_named_by_its_index(self):
        with pytest.raises(BadInput, match=r"^values\[1\] = nan: input should be a finite number$"):
            check("values", [1.0, float("nan")], list[float], BadInput)

    def test_the_errors_are_value_errors(self):
        assert issubclass(ClinicalInputError, ValueError)


class TestBandedTable:
    ROWS = ((10, "a"), (5, "b"), (0, "c"))

    @pytest.mark.parametrize("value, entry", [(12, "a"), (10, "a"), (9.9, "b"), (5, "b"), (0, "c")])
    def test_the_first_row_whose_lower_bound_is_reached_gives_the_entry(self, value, entry):
        assert band(value, self.ROWS) == entry

    def test_a_value_below_the_lowest_band_is_refused(self):
        with pytest.raises(ValueError, match="below the lowest band"):
            band(-1, self.ROWS)


class TestRoundHalfUp:
    @pytest.mark.parametrize("value, increment, rounded", [(42.5, 1, 43.0), (47.495, 1, 47.0), (0.25, 0.1, 0.3)])
    def test_halves_round_up_not_to_even(self, value, increment, rounded):
        assert round_half_up(value, increment) == rounded
