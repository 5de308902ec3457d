"""Ports of the manufacturing service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from contracts.base import EventPayload


class Streams(Protocol):
    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]: ...

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None,
                     centre_id: str | None = None) -> None: ...


class Enrolments(Protocol):
    """Which subjects enrollment has enrolled, learnt from its events."""

    async def centre_of(self, subject_id: str) -> str | None: ...

    async def add(self, subject_id: str, programme_id: str, centre_id: str, enrolled_on: date) -> None: ...
