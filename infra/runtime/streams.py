"""The event store bound to one transaction and one message's metadata: the adapter behind
the kernel's `Streams` port (services.kernel.streams)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from contracts.base import EventPayload
from contracts.registry import parse_event
from infra.runtime.eventstore import EventStore, Metadata, NewEvent
from infra.runtime.fetchwrites import FetchWrites
from infra.runtime.wiring import Factory


class PgStreams:
    """`writes`: the fetch's (a consumer's handler), through which loads and appends go;
    None (an HTTP request) reads and appends at once."""

    def __init__(self, conn: asyncpg.Connection, store: EventStore, meta: Metadata,
                 writes: FetchWrites | None = None) -> None:
        self.conn, self.store, self.meta, self.writes = conn, store, meta, writes

    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]:
        if self.writes is not None:
            return await self.writes.load(stream_id)
        envelopes = await self.store.load(self.conn, stream_id)
        return [parse_event(e) for e in envelopes], len(envelopes)

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None, centre_id: str | None = None,
                     event_ids: list[uuid.UUID] | None = None) -> None:
        ids = event_ids or [None] * len(events)
        new = [NewEvent(e, occurred_at=occurred_at, subject_id=subject_id, centre_id=centre_id, event_id=i)
               for e, i in zip(events, ids)]
        if self.writes is not None:
            await self.writes.add(stream_id, expected_version, new, self.meta)
        else:
            await self.store.append(self.conn, stream_id, expected_version, new, self.meta)


def pg_streams(store: EventStore) -> Factory:
    """The `streams` dependency of a service whose events live in `store`: on the message's
    transaction, every append carrying the message's metadata."""
    return lambda uow: PgStreams(uow.conn, store, uow.meta, uow.writes)
