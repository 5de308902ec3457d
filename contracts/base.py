"""Base classes shared by every contract model."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError, to_jsonable_python


class Contract(BaseModel):
    """A frozen, strict-by-default message body. Unknown fields are refused, not dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class EventPayload(Contract):
    """The payload of one event type. `event_type` is stable forever; `schema_version` bumps
    on every incompatible change, with an upcaster from the previous version."""

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class CommandPayload(Contract):
    """The payload of one inbound command. Commands are verbs; they may be refused."""

    command_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


M = TypeVar("M", bound=BaseModel)


def from_json(model: type[M], data: str | bytes | Mapping[str, Any]) -> M:
    """`data`, JSON from outside, as `model`, strictly (issue 12 item 5): every value must be
    of its field's JSON type, nothing is coerced: `"no"` or `0` is not a boolean, `"12"` is
    not a number, `12` is not text. Dates and times are JSON strings in the documented form
    (`YYYY-MM-DD`; ISO 8601 with a UTC offset), UUIDs strings and enumerations their values,
    as JSON has no types of their own. Every edge decodes what it is sent with this: HTTP
    bodies (infra/runtime/http.py), load files (infra/tooling/loader.py) and the payloads of
    command envelopes from the topics (contracts/registry.py, `parse_command`).

    A mapping is JSON already decoded (an envelope's `payload`, a load file's line) and is
    validated as the JSON it was read from (pydantic's strict mode on a Python mapping would
    refuse a date as a string).

    Text is printable (issue 12 item 6): a string or a key holding a control character (NUL
    and the other C0 and C1 codes but tab, line feed and carriage return) or half of a
    surrogate pair, or a number that is not finite (`NaN`, `Infinity`), is refused naming
    where it is, whatever the model: PostgreSQL stores no NUL in text nor a NaN in JSON,
    and neither is anything a person typed."""
    raw: Any = data
    if not isinstance(data, (str, bytes, bytearray)):
        data = json.dumps(data, default=to_jsonable_python, ensure_ascii=False)
    else:
        try:
            raw = pydantic_core.from_json(data, allow_inf_nan=True)
        except ValueError:
            raw = None  # not JSON: the model's validation says where
    found = [InitErrorDetails(type=PydanticCustomError("unprintable", "{what}", {"what": what}), loc=loc,
                              input=value) for loc, what, value in unprintable(raw)]
    if found:  # before the model's own checks, which would find only "not a valid string" in a lone surrogate
        raise ValidationError.from_exception_data(model.__name__, found)
    return model.model_validate_json(data, strict=True)


# Allowed among the control characters: tab, line feed, carriage return.
_WHITESPACE_CONTROLS = frozenset("\t\n\r")


def unprintable_character(text: str) -> tuple[int, str] | None:
    """The first character of `text` that is not printable text: a control character (Unicode
    category Cc: C0, DEL, C1; tab, line feed and carriage return allowed) or a lone surrogate
    (Cs), with its index; None if there is none."""
    for i, ch in enumerate(text):
        if ch in _WHITESPACE_CONTROLS:
            continue
        if unicodedata.category(ch) in ("Cc", "Cs"):
            return i, ch
    return None


def describe_unprintable(text: str) -> str | None:
    """Why `text` is not printable text, in words; None if it is."""
    found = unprintable_character(text)
    if found is None:
        return None
    i, ch = found
    kind = "half of a surrogate pair" if unicodedata.category(ch) == "Cs" else "a control character"
    return f"text must be printable: character {i + 1} is {kind} (U+{ord(ch):04X})"


def unprintable(value: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str, Any]]:
    """Where decoded JSON holds text that is not printable, or a number that is not finite:
    (location, why, the value)."""
    if isinstance(value, str):
        why = describe_unprintable(value)
        if why is not None:
            yield loc, why, value
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield loc, f"a number must be finite, not {value}", value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_loc = loc + (key if isinstance(key, (str, int)) else repr(key),)
            if isinstance(key, str) and (why := describe_unprintable(key)) is not None:
                yield loc + (repr(key),), f"a field name: {why}", key
                continue
            yield from unprintable(item, key_loc)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from unprintable(item, loc + (i,))
