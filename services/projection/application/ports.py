"""Ports of the projection service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope
from services.projection.domain.subject_view import SubjectView


class ReadModels(Protocol):
    async def get_many(self, subject_ids: Sequence[str]) -> dict[str, SubjectView]: ...

    async def put_many(self, views: Sequence[SubjectView]) -> None: ...


class Outcomes(Protocol):
    """Publishes outcome events (through the projection's own store and relay), each once."""

    async def emit_many(self, items: Sequence[tuple[EventPayload, str, EventEnvelope]]) -> None: ...
