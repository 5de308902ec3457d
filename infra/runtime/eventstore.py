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
from contracts.envelope import EventEnvelope, upcast_actor_v1
from contracts.ids import PRINCIPAL_ID_PATTERN

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PRINCIPAL_ID = re.compile(PRINCIPAL_ID_PATTERN)


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

    def __post_init__(self) -> None:
        # Nothing appends an event whose actor is not a principal id (issue 8, item 4).
        if not _PRINCIPAL_ID.match(self.actor):
            raise ValueError(f"an event's actor must be a principal id ({PRINCIPAL_ID_PATTERN}), not {self.actor!r}")


@dataclass(frozen=True)
class Append:
    """`events` for `stream_id`, expected at `expected_version` (see `EventStore.append_many`)."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]
    meta: Metadata


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
        correlation_id=row["correlation_id"], causation_id=row["causation_id"],
        actor=upcast_actor_v1(row["actor"]),
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
        # Every stream's version checked against the store, the rows inserted in the order
        # given (positions follow it) only if none is stale, and one NOTIFY: one statement.
        self._append = (
            "WITH batch AS (SELECT * FROM unnest($1::text[], $2::int[], $3::uuid[], $4::text[], $5::int[],"
            "   $6::text[], $7::text[], $8::timestamptz[], $9::text[], $10::uuid[], $11::uuid[], $12::text[])"
            "  WITH ORDINALITY AS b(stream_id, stream_version, event_id, event_type, schema_version, subject_id,"
            "   payload, occurred_at, centre_id, correlation_id, causation_id, actor, n)),"
            " stale AS (SELECT x.stream_id, x.actual FROM"
            "  (SELECT b.stream_id, min(b.stream_version) - 1 AS expected,"
            f"    (SELECT coalesce(max(e.stream_version), 0) FROM {self.table} e WHERE e.stream_id = b.stream_id)"
            "     AS actual FROM batch b GROUP BY b.stream_id) x WHERE x.actual <> x.expected),"
            f" appended AS (INSERT INTO {self.table} (event_id, stream_id, stream_version, event_type,"
            "  schema_version, subject_id, payload, occurred_at, recorded_at, correlation_id, causation_id, actor,"
            "  centre_id)"
            "  SELECT b.event_id, b.stream_id, b.stream_version, b.event_type, b.schema_version, b.subject_id,"
            "   b.payload::jsonb, b.occurred_at, $13, b.correlation_id, b.causation_id, b.actor, b.centre_id"
            "  FROM batch b WHERE NOT EXISTS (SELECT 1 FROM stale) ORDER BY b.n"
            "  RETURNING event_id, position)"
            " SELECT (SELECT array_agg(stream_id ORDER BY stream_id) FROM stale) AS stale,"
            "  (SELECT array_agg(actual ORDER BY stream_id) FROM stale) AS actual,"
            "  (SELECT array_agg(event_id) FROM appended) AS event_ids,"
            "  (SELECT array_agg(position) FROM appended) AS positions,"
            "  (SELECT count(pg_notify($14, '')) FROM appended) AS notified")

    async def load(self, conn: asyncpg.Connection, stream_id: str) -> list[EventEnvelope]:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE stream_id = $1 ORDER BY stream_version", stream_id)
        return [_row_to_envelope(r) for r in rows]

    async def load_many(self, conn: asyncpg.Connection, stream_ids: Sequence[str]) -> dict[str, list[EventEnvelope]]:
        """Several streams in one query: each one's events in order (a stream never written
        is absent)."""
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM {self.table} WHERE stream_id = ANY($1::text[])"
            " ORDER BY stream_id, stream_version", list(stream_ids))
        found: dict[str, list[EventEnvelope]] = {}
        for r in rows:
            found.setdefault(r["stream_id"], []).append(_row_to_envelope(r))
        return found

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
        """Append `events` at `expected_version + 1...`. Must run inside a transaction."""
        return await self.append_many(conn, [Append(stream_id, expected_version, events, meta)])

    async def append_many(self, conn: asyncpg.Connection, appends: Sequence["Append"]) -> list[EventEnvelope]:
        """Several appends as one statement: all or none (a stale expected version anywhere
        raises `ConcurrencyConflictError` and appends nothing). Positions follow the order
        given. Entries for one stream follow each other's versions (each expects the
        version the one before it leaves), as a fetch's messages decide them. One round
        trip where an append took three and each further stream three more (the profiles in
        docs/benchmark.md). Must run inside a transaction."""
        if not conn.is_in_transaction():
            raise RuntimeError("EventStore.append must run inside a transaction")
        after: dict[str, int] = {}
        for a in appends:
            if a.stream_id in after and after[a.stream_id] != a.expected_version:
                raise ValueError(f"append_many: {a.stream_id} expected at {a.expected_version} after an append "
                                 f"that leaves it at {after[a.stream_id]}")
            after[a.stream_id] = a.expected_version + len(a.events)
        now = datetime.now(timezone.utc)
        envelopes = [
            EventEnvelope(
                event_id=ev.event_id or uuid.uuid4(), event_type=ev.payload.event_type,
                schema_version=ev.payload.schema_version, stream_id=a.stream_id,
                stream_version=a.expected_version + i, subject_id=ev.subject_id,
                occurred_at=ev.occurred_at, recorded_at=now, correlation_id=a.meta.correlation_id,
                causation_id=a.meta.causation_id, actor=a.meta.actor, centre_id=ev.centre_id,
                payload=ev.payload.model_dump(mode="json"),
            )
            for a in appends for i, ev in enumerate(a.events, start=1)
        ]
        try:
            row = await conn.fetchrow(
                self._append, [e.stream_id for e in envelopes], [e.stream_version for e in envelopes],
                [e.event_id for e in envelopes], [e.event_type for e in envelopes],
                [e.schema_version for e in envelopes], [e.subject_id for e in envelopes],
                [json.dumps(e.payload) for e in envelopes], [e.occurred_at for e in envelopes],
                [e.centre_id for e in envelopes], [e.correlation_id for e in envelopes],
                [e.causation_id for e in envelopes], [e.actor for e in envelopes], now, self.channel)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_stream_version_unique":
                stream = next(iter(a.stream_id for a in appends if f"({a.stream_id}," in (exc.detail or "")),
                              appends[0].stream_id)
                expected = next(a.expected_version for a in appends if a.stream_id == stream)
                raise ConcurrencyConflictError(stream, expected, None) from exc
            raise
        if row["stale"]:
            stream, actual = row["stale"][0], row["actual"][0]
            expected = next(a.expected_version for a in appends if a.stream_id == stream)
            raise ConcurrencyConflictError(stream, expected, actual)
        positions = dict(zip(row["event_ids"] or (), row["positions"] or ()))
        return [e.model_copy(update={"position": positions[e.event_id]}) for e in envelopes]

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
