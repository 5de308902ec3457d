"""Base classes shared by every contract model."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


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
