"""Ports of the assessment service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from contracts.base import EventPayload


class Streams(Protocol):
    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]: ...

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None,
                     centre_id: str | None = None) -> None: ...


class Infusions(Protocol):
    """Infusions learnt from infusion's events."""

    async def first_infusion_on(self, subject_id: str) -> date | None: ...

    async def add(self, subject_id: str, infusion_number: int, infused_at: datetime) -> None: ...
