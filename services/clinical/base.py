"""What every clinical rule module shares: the error base class, input checks by declared
types, half-up rounding and the reader of banded grading tables.

Input checks: a field or argument declares what it accepts with its annotation, e.g.
``Annotated[float, Field(ge=0, le=100)]``, and pydantic checks it in strict mode: no coercion
(a bool is not a number, a str is not an enum member, a datetime is not a date) and NaN or
infinity is not a number. A failure is re-raised as the calling module's own error class (a
``ValueError``), whose message names the field, the value and what was expected. Checks that
relate several fields stay in the modules, next to the rule they protect.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, validate_call

__all__ = [
    "CellsPerUl",
    "ClinicalInputError",
    "Percentage",
    "Probability",
    "STRICT",
    "band",
    "check",
    "check_fields",
    "round_half_up",
    "validated",
]

STRICT = ConfigDict(strict=True, allow_inf_nan=False)

# A count of cells per microlitre (= per mm3).
CellsPerUl = Annotated[float, Field(ge=0)]
# A percentage, 0 to 100 inclusive.
Percentage = Annotated[float, Field(ge=0, le=100)]
# A probability or confidence level strictly between 0 and 1.
Probability = Annotated[float, Field(gt=0, lt=1)]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
Errors = Mapping[str, type[ValueError]] | None


class ClinicalInputError(ValueError):
    """Base class of every invalid-input error raised by the clinical rules."""


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter:
    # Wrapped in a 1-tuple: TypeAdapter takes no config for a bare dataclass type.
    return TypeAdapter(tuple[annotation], config=STRICT)  # type: ignore[valid-type]


@functools.cache
def _field_adapters(cls: type) -> tuple[tuple[str, TypeAdapter], ...]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f.name, _adapter(hints[f.name])) for f in dataclasses.fields(cls))


def check(name: str, value: Any, annotation: Any, error: type[ValueError]) -> None:
    """Check one value against a (hashable) annotation; raise ``error`` naming ``name``."""
    try:
        _adapter(annotation).validate_python((value,))
    except ValidationError as exc:
        raise _translated(exc, name, error, None) from exc


def check_fields(instance: Any, error: type[ValueError], errors_by_field: Errors = None) -> None:
    """Check every field of a dataclass instance against its declared type, in field order.

    Raises ``error`` (or ``errors_by_field[name]``) for the first field that fails.
    """
    for name, adapter in _field_adapters(type(instance)):
        try:
            adapter.validate_python((getattr(instance, name),))
        except ValidationError as exc:
            raise _translated(exc, name, error, errors_by_field) from exc


def validated(error: type[ValueError], errors_by_field: Errors = None) -> Callable[[F], F]:
    """Decorator: check a function's arguments against its annotations (``pydantic.validate_call``).

    A failing argument raises ``error`` (or ``errors_by_field[name]``) naming the argument.
    """

    def decorate(func: F) -> F:
        checked = validate_call(config=STRICT)(func)
        names = list(inspect.signature(func).parameters)

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return checked(*args, **kwargs)
            except ValidationError as exc:
                if exc.title != func.__name__:  # not about this call's arguments
                    raise
                first = exc.errors()[0]["loc"][0]  # a positional argument is located by index
                name = names[first] if isinstance(first, int) else str(first)
                raise _translated(exc, name, error, errors_by_field) from exc

        return typing.cast(F, call)

    return decorate


def _translated(exc: ValidationError, name: str, error: type[ValueError], errors_by_field: Errors) -> ValueError:
    """The first error, as ``error`` naming the value's path: ``name[index].field = value: message``."""
    first = exc.errors()[0]
    # loc[0] is the 1-tuple's index (checks) or the argument (validate_call); ``name`` replaces it.
    path = name + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"][1:])
    message = first["msg"][:1].lower() + first["msg"][1:]
    return (errors_by_field or {}).get(name, error)(f"{path} = {first['input']!r}: {message}")


def round_half_up(value: float, increment: float) -> float:
    """``value`` rounded to a multiple of ``increment``, halves away from zero (not to even)."""
    # Decimal(str(x)) uses the shortest repr, so 47.5 is 47.5 and not 47.4999...
    steps = (Decimal(str(value)) / Decimal(str(increment))).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return float(steps * Decimal(str(increment)))


def band(value: float, rows: Sequence[tuple[float, T]]) -> T:
    """Read a banded table: the entry of the first row whose lower bound ``value`` reaches.

    ``rows`` run from the highest lower bound down, as grading tables are printed;
    the last bound must be the smallest value the input can take.
    """
    for lower, entry in rows:
        if value >= lower:
            return entry
    raise ValueError(f"{value!r} is below the lowest band {rows[-1][0]!r}")
