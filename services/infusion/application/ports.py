"""Ports of the infusion service."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from contracts.base import EventPayload
from services.infusion.domain.model import ReleasedProduct


class Streams(Protocol):
    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]: ...

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None,
                     centre_id: str | None = None) -> None: ...


class ReleasedProducts(Protocol):
    """Releases learnt from manufacturing's events, never from its tables."""

    async def get(self, coi_id: str) -> ReleasedProduct | None: ...

    async def add(self, product: ReleasedProduct, lot_number: str) -> None: ...
