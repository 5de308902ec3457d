"""Append-only PostgreSQL event store, one per service schema, and the consumer inbox.

Commit order versus position order: a bigserial position is taken when a row is inserted,
not when its transaction commits, so a slow transaction can commit position 7 after a fast
one committed position 8. A relay that had already published up to 8 would then skip 7
for ever (the lost-event bug Marten and Axon shipped for years). As in pyeventsourcing's
`_lock_table` (postgres.py), every append takes `LOCK TABLE ... IN EXCLUSIVE MODE` before
inserting: appends to one store are serialised until commit, so positions become visible
strictly in position order and the relay may read `position > checkpoint` safely. Plain
reads (ACCESS SHARE) are not blocked. Throughput per store is bounded by commit latency;
scale-out is by service schema (and, later, by partitioning streams across stores).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def valid_schema(schema: str) -> str:
    """A schema name safe to put in SQL text (names come from code, never from input)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


class ConcurrencyConflictError(Exception):
    """Another writer appended to the stream since it was loaded."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id!r}: expected version {expected}, found {actual}")
        self.stream_id, self.expected, self.actual = stream_id, expected, actual


@dataclass(frozen=True)
class NewEvent:
    """An event decided by an aggregate, not yet stored."""

    payload: EventPayload
    occurred_at: datetime
    subject_id: str | None = None
    centre_id: str | None = None
    event_id: uuid.UUID | None = None  # set for deterministic ids (idempotent emitters)


@dataclass(frozen=True)
class Metadata:
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    actor: str


_COLUMNS = ("position, event_id, stream_id, stream_version, event_type, schema_version, subject_id, "
            "payload, occurred_at, recorded_at, correlation_id, causation_id, actor, centre_id")


def _row_to_envelope(row: asyncpg.Record) -> EventEnvelope:
    return EventEnvelope(
        event_id=row["event_id"], event_type=row["event_type"], schema_version=row["schema_version"],
        stream_id=row["stream_id"], stream_version=row["stream_version"], position=row["position"],
        subject_id=row["subject_id"], occurred_at=row["occurred_at"], recorded_at=row["recorded_at"],
        correlation_id=row["correlation_id"], causation_id=row["causation_id"], actor=row["actor"],
        centre_id=row["centre_id"], payload=json.loads(row["payload"]),
    )


class EventStore:
    """Reads and appends events in one schema's `events` table, on a caller's connection
    (so appends join the caller's transaction with any inbox or view writes)."""

    def __init__(self, schema: str) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        self.table = f"{schema}.events"
        self.channel = f"{schema}_events"

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> list[EventEnvelope]:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE stream_id = $1 ORDER BY stream_version", stream_id)
        return [_row_to_envelope(r) for r in rows]

    async def read_after(self, conn: asyncpg.Connection, position: int, limit: int) -> list[EventEnvelope]:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE position > $1 ORDER BY position LIMIT $2",
            position, limit)
        return [_row_to_envelope(r) for r in rows]

    async def append(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        meta: Metadata,
    ) -> list[EventEnvelope]:
        """Append `events` at `expected_version + 1...`. Must run inside a transaction."""
        if not conn.is_in_transaction():
            raise RuntimeError("EventStore.append must run inside a transaction")
        await conn.execute(f"LOCK TABLE {self.table} IN EXCLUSIVE MODE")
        actual = await conn.fetchval(
            f"SELECT coalesce(max(stream_version), 0) FROM {self.table} WHERE stream_id = $1", stream_id)
        if actual != expected_version:
            raise ConcurrencyConflictError(stream_id, expected_version, actual)
        now = datetime.now(timezone.utc)
        stored: list[EventEnvelope] = []
        for i, ev in enumerate(events, start=1):
            env = EventEnvelope(
                event_id=ev.event_id or uuid.uuid4(), event_type=ev.payload.event_type,
                schema_version=ev.payload.schema_version, stream_id=stream_id,
                stream_version=expected_version + i, subject_id=ev.subject_id,
                occurred_at=ev.occurred_at, recorded_at=now, correlation_id=meta.correlation_id,
                causation_id=meta.causation_id, actor=meta.actor, centre_id=ev.centre_id,
                payload=ev.payload.model_dump(mode="json"),
            )
            position = await conn.fetchval(
                f"INSERT INTO {self.table} (event_id, stream_id, stream_version, event_type, schema_version,"
                " subject_id, payload, occurred_at, recorded_at, correlation_id, causation_id, actor, centre_id)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9,$10,$11,$12,$13) RETURNING position",
                env.event_id, env.stream_id, env.stream_version, env.event_type, env.schema_version,
                env.subject_id, json.dumps(env.payload), env.occurred_at, env.recorded_at,
                env.correlation_id, env.causation_id, env.actor, env.centre_id,
            )
            stored.append(env.model_copy(update={"position": position}))
        await conn.execute("SELECT pg_notify($1, '')", self.channel)
        return stored

    async def contains(self, conn: asyncpg.Connection, event_id: uuid.UUID) -> bool:
        return bool(await conn.fetchval(f"SELECT 1 FROM {self.table} WHERE event_id = $1", event_id))


class Inbox:
    """Exactly-once effect for at-least-once delivery: claim a message id inside the
    transaction that applies it; a redelivered message cannot claim it again."""

    def __init__(self, schema: str, consumer: str) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.table = f"{schema}.inbox"
        self.consumer = consumer

    async def claim(self, conn: asyncpg.Connection, message_id: uuid.UUID) -> bool:
        row = await conn.fetchval(
            f"INSERT INTO {self.table} (consumer, message_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING 1", self.consumer, message_id)
        return row == 1
