"""Outcome events go through the projection's own append-only store and outbox relay to
celltrail.outcomes.v1. Their ids are derived from what they are about, so replaying the
topics (rebuild) re-derives the same ids and publishes nothing twice."""

from __future__ import annotations

from datetime import datetime, timezone

import asyncpg

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope
from infra.eventstore import EventStore, NewEvent
from infra.messaging import event_metadata, stable_id


class StoredOutcomes:
    def __init__(self, conn: asyncpg.Connection, store: EventStore) -> None:
        self.conn, self.store = conn, store

    async def emit(self, outcome: EventPayload, key: str, cause: EventEnvelope) -> None:
        event_id = stable_id("outcome", key)
        if await self.store.contains(self.conn, event_id):
            return
        stream = f"outcomes-{cause.subject_id}"
        version = len(await self.store.load(self.conn, stream))
        await self.store.append(self.conn, stream, version, [
            NewEvent(outcome, occurred_at=datetime.now(timezone.utc), subject_id=cause.subject_id,
                     event_id=event_id)], event_metadata(cause, "projection"))
