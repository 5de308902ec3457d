"""Base classes shared by every contract model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic_core import to_jsonable_python


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
    refuse a date as a string)."""
    if not isinstance(data, (str, bytes, bytearray)):
        data = json.dumps(data, default=to_jsonable_python, ensure_ascii=False)
    return model.model_validate_json(data, strict=True)
