"""Ports of the enrollment service: what its handlers need from the outside world."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from contracts.base import EventPayload


class Streams(Protocol):
    """The event store, inside the handler's transaction."""

    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]: ...

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None,
                     centre_id: str | None = None) -> None: ...


class Identities(Protocol):
    """The only place direct identifiers live; never published."""

    async def find(self, centre_id: str, hospital_record_number: str) -> str | None: ...

    async def add(self, subject_id: str, centre_id: str, hospital_record_number: str,
                  family_name: str, given_name: str, date_of_birth: date) -> None: ...
