"""Time types. Every instant and date a contract carries lies in [1900-01-01, 2200-01-01) UTC.

Why bounded: an unbounded date let `"registered_on": "0001-01-01"` through; the driver stored
it as `-infinity`, which then could not be read back, and the relay publishing that store
stopped. 1900 is before the birth of any living patient; 2200 is far enough ahead for any
planned date and well inside what Python, PostgreSQL and JSON consumers represent. Each
events table enforces the same bounds with a CHECK (migration 0002).

A value that is not one (not parsable, of the wrong type, without a UTC offset, out of the
bounds) is refused with one message naming the form expected and the value received
(issue 12 item 5): `expected a date as YYYY-MM-DD (from 1900-01-01 to 2199-12-31), got
"2025-13-01"`. The published JSON Schemas are unchanged by it (the check wraps the same
validation).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    TypeAdapter,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError, ValidationError

EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)  # exclusive

DATE_FORM = "YYYY-MM-DD"
INSTANT_FORM = "ISO 8601 with a UTC offset, e.g. 2025-03-01T09:30:00+01:00"

# How much of a refused value a message repeats: enough to recognise it, never a whole payload.
_SHOWN = 60


def shown(value: Any) -> str:
    """A received value as a message quotes it: as JSON where it is JSON (`"2025-13-01"`,
    `20250301`), shortened past 60 characters."""
    if isinstance(value, (date, datetime)):
        text = repr(value.isoformat())
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


def _withheld(value: Any) -> str:
    kind = {str: "text", bool: "a boolean", int: "a number", float: "a number", type(None): "null",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    return f"{kind} (not repeated here: an identifier)"


def _naming(kind: str, expected: str, parsed_as: type, *, echo: bool = True) -> WrapValidator:
    """The wrapped validation, its refusal restated as `expected <form>, got <value>`; for an
    identifier (`echo` False), the kind of value received instead of the value, since a
    refusal is recorded and logged."""
    as_json = TypeAdapter(parsed_as)

    def validate(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        try:
            try:
                return handler(value)
            except ValidationError:
                if not (isinstance(value, str) and info.mode == "json"):
                    raise
            # A wrapped validation is handed a JSON string as a Python one, which strict mode
            # refuses (strict JSON takes a date or time only as a string): read it as strict
            # JSON reads one (YYYY-MM-DD; RFC 3339), then check the value as before.
            return handler(as_json.validate_json(json.dumps(value), strict=True))
        except ValidationError:
            raise PydanticCustomError(kind, "expected {expected}, got {received}",
                                      {"expected": expected,
                                       "received": shown(value) if echo else _withheld(value)}) from None

    return WrapValidator(validate)


Instant = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST,
                                         description="with a UTC offset; from 1900-01-01 to before 2200-01-01 UTC"),
                    _naming("instant", f"a time in {INSTANT_FORM} (from 1900-01-01 to before 2200-01-01 UTC)",
                            datetime)]
ClinicalDate = Annotated[date, Field(ge=EARLIEST.date(), lt=LATEST.date(),
                                     description="from 1900-01-01 to 2199-12-31"),
                         _naming("clinical_date", f"a date as {DATE_FORM} (from 1900-01-01 to 2199-12-31)", date)]

# A date of birth (a direct identifier, kept by enrollment only): a ClinicalDate whose
# refusal says what kind of value came instead of repeating it.
BirthDate = Annotated[date, Field(ge=EARLIEST.date(), lt=LATEST.date(),
                                  description="from 1900-01-01 to 2199-12-31"),
                      _naming("clinical_date", f"a date as {DATE_FORM} (from 1900-01-01 to 2199-12-31)", date,
                              echo=False)]


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime"}  # a machine's own zone, where it has one


def _known_time_zone(name: str) -> str:
    """`name` if it is a zone of the IANA time zone database (tzdata) that `zoneinfo.ZoneInfo`
    reads; not a directory of it (`Europe`) nor a machine's own files (`localtime`)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    else:
        if name in _zone_names():
            return name
    raise ValueError(f"{name!r} is not a time zone of the IANA database (e.g. 'Europe/Rome')")


# A centre's named time zone (issue 11 item 5): an IANA name, whose rules (DST included) give a
# UTC instant's date and time at the site. The pattern keeps out paths (`../`) and odd names
# before the database is asked.
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
                                    description="an IANA time zone name, e.g. Europe/Rome"),
                         AfterValidator(_known_time_zone)]
