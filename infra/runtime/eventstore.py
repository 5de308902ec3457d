"""Append-only PostgreSQL event store, one per service schema, and the consumer inbox.

Appends take no table lock: transactions appending to different streams run and commit in
parallel. Optimistic concurrency per stream is the expected-version check backed by
`UNIQUE (stream_id, stream_version)`: of two transactions appending the same version, the
second waits on the index until the first commits and then fails; both paths raise
`ConcurrencyConflictError`.

Positions therefore become visible out of order (a slow transaction may commit position 7
after a fast one committed 8); reading them safely is the relay's job (infra/relay.py).
What it needs from every writer, the column default enforces (migration 0002): a
transaction's id is assigned before it draws a position.
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
    """Another writer appended to the stream since it was loaded. `actual` is None when the
    other writer was still in flight at the check and won at the unique index."""

    def __init__(self, stream_id: str, expected: int, actual: int | None) -> None:
        found = actual if actual is not None else "a concurrent append"
        super().__init__(f"stream {stream_id!r}: expected version {expected}, found {found}")
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


@dataclass(frozen=True)
class Unreadable:
    """A stored row that cannot be made into an envelope, e.g. a time stored before the
    range check existed (`-infinity` reads back as a naive date; year 0 not at all)."""

    position: int
    error: str


# What a row's values can raise while being decoded (by the driver or by the contract);
# connection and server errors are not among them.
_ROW_ERRORS = (ValueError, OverflowError)


def _row_to_envelope(row: asyncpg.Record) -> EventEnvelope:
    return EventEnvelope(
        event_id=row["event_id"], event_type=row["event_type"], schema_version=row["schema_version"],
        stream_id=row["stream_id"], stream_version=row["stream_version"], position=row["position"],
        subject_id=row["subject_id"], occurred_at=row["occurred_at"], recorded_at=row["recorded_at"],
        correlation_id=row["correlation_id"], causation_id=row["causation_id"], actor=row["actor"],
        centre_id=row["centre_id"], payload=json.loads(row["payload"]),
    )


def _decode(row: asyncpg.Record) -> EventEnvelope | Unreadable:
    try:
        return _row_to_envelope(row)
    except _ROW_ERRORS as exc:
        return Unreadable(row["position"], f"{type(exc).__name__}: {exc}")


class EventStore:
    """Reads and appends events in one schema's `events` table, on a caller's connection
    (so appends join the caller's transaction with any inbox or view writes)."""

    def __init__(self, schema: str) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        self.schema = schema
        self.table = f"{schema}.events"
        self.sequence = f"{schema}.events_position_seq"
        self.channel = f"{schema}_events"
        self._append = (
            f"WITH stored AS (SELECT coalesce(max(stream_version), 0) AS version FROM {self.table}"
            "  WHERE stream_id = $1),"
            f" appended AS (INSERT INTO {self.table} (event_id, stream_id, stream_version, event_type,"
            "  schema_version, subject_id, payload, occurred_at, recorded_at, correlation_id, causation_id, actor,"
            "  centre_id)"
            "  SELECT e.event_id, $1, e.stream_version, e.event_type, e.schema_version, e.subject_id, e.payload::jsonb,"
            "   e.occurred_at, $11, $12, $13, $14, e.centre_id"
            "  FROM unnest($3::uuid[], $4::int[], $5::text[], $6::int[], $7::text[], $8::text[], $9::timestamptz[],"
            "   $10::text[]) WITH ORDINALITY AS e(event_id, stream_version, event_type, schema_version, subject_id,"
            "   payload, occurred_at, centre_id, n), stored"
            "  WHERE stored.version = $2 ORDER BY e.n"
            "  RETURNING position, stream_version)"
            " SELECT (SELECT version FROM stored) AS actual,"
            "  (SELECT array_agg(position ORDER BY stream_version) FROM appended) AS positions,"
            "  (SELECT count(pg_notify($15, '')) FROM appended) AS notified")

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> list[EventEnvelope]:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE stream_id = $1 ORDER BY stream_version", stream_id)
        return [_row_to_envelope(r) for r in rows]

    async def read_range(self, conn: asyncpg.Connection, after: int, upto: int,
                         limit: int) -> list[EventEnvelope | Unreadable]:
        """Rows with `after < position <= upto` in position order; a row that cannot be
        decoded comes back as `Unreadable` instead of failing the others."""
        where = f"FROM {self.table} WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
        try:
            rows = await conn.fetch(f"SELECT {_COLUMNS} {where}", after, upto, limit)
        except _ROW_ERRORS:  # the driver could not decode some row: find it, one row at a time
            positions = await conn.fetch(f"SELECT position {where}", after, upto, limit)
            return [await self._read_one(conn, p["position"]) for p in positions]
        return [_decode(r) for r in rows]

    async def _read_one(self, conn: asyncpg.Connection, position: int) -> EventEnvelope | Unreadable:
        try:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {self.table} WHERE position = $1", position)
        except _ROW_ERRORS as exc:
            return Unreadable(position, f"{type(exc).__name__}: {exc}")
        return _decode(row)

    async def append(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        meta: Metadata,
    ) -> list[EventEnvelope]:
        """Append `events` at `expected_version + 1...`. Must run inside a transaction.

        One statement: the version check, the rows (in stream order, so positions follow
        versions) and the NOTIFY go together, one round trip where three were (the profile
        of the command path, docs/benchmark.md)."""
        if not conn.is_in_transaction():
            raise RuntimeError("EventStore.append must run inside a transaction")
        now = datetime.now(timezone.utc)
        envelopes = [
            EventEnvelope(
                event_id=ev.event_id or uuid.uuid4(), event_type=ev.payload.event_type,
                schema_version=ev.payload.schema_version, stream_id=stream_id,
                stream_version=expected_version + i, subject_id=ev.subject_id,
                occurred_at=ev.occurred_at, recorded_at=now, correlation_id=meta.correlation_id,
                causation_id=meta.causation_id, actor=meta.actor, centre_id=ev.centre_id,
                payload=ev.payload.model_dump(mode="json"),
            )
            for i, ev in enumerate(events, start=1)
        ]
        try:
            row = await conn.fetchrow(
                self._append, stream_id, expected_version, [e.event_id for e in envelopes],
                [e.stream_version for e in envelopes], [e.event_type for e in envelopes],
                [e.schema_version for e in envelopes], [e.subject_id for e in envelopes],
                [json.dumps(e.payload) for e in envelopes], [e.occurred_at for e in envelopes],
                [e.centre_id for e in envelopes], now, meta.correlation_id, meta.causation_id, meta.actor,
                self.channel)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_stream_version_unique":
                raise ConcurrencyConflictError(stream_id, expected_version, None) from exc
            raise
        if row["actual"] != expected_version:
            raise ConcurrencyConflictError(stream_id, expected_version, row["actual"])
        return [e.model_copy(update={"position": p}) for e, p in zip(envelopes, row["positions"] or ())]

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
