"""Ports of the projection service."""

from __future__ import annotations

import uuid
from typing import Protocol

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope
from services.projection.domain.subject_view import SubjectView


class ReadModels(Protocol):
    async def mark_applied(self, event_id: uuid.UUID) -> bool: ...

    async def get(self, subject_id: str) -> SubjectView | None: ...

    async def put(self, view: SubjectView) -> None: ...


class Outcomes(Protocol):
    """Publishes outcome events (through the projection's own store and relay), each once."""

    async def emit(self, outcome: EventPayload, key: str, cause: EventEnvelope) -> None: ...
