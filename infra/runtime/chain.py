"""The tamper-evident log: every event of a store is linked into one hash chain, in
position order, after it committed.

Appends take no lock (infra/runtime/eventstore.py), so the chain cannot be computed at
INSERT: a slow transaction may commit position 7 after position 8 did. The relay chains
rows only up to its horizon (infra/runtime/relay.py), below which every position is final,
and before it publishes them; the links go to `<schema>.event_chain` (migration 0004),
append-only like the events table. A row the relay quarantines is chained all the same:
everything here reads the stored values as text, never through the contract.

Link of the event at position p, whose predecessor in the chain (the next lower position
present in the events table) has hash h (32 zero bytes for the first event of a store):

    hash(p) = SHA-256(h || canonical(row p))        previous_hash(p) = h

`canonical(row)` is the UTF-8 bytes of one JSON object holding every stored column of the
row, serialised canonically (the same rules for the object and for the payload in it):
- objects with their keys sorted by Unicode code point, no whitespace anywhere, arrays in
  their order;
- strings with only `"`, `\\` and U+0000..U+001F escaped: `\\"`, `\\\\`, `\\b`, `\\f`, `\\n`,
  `\\r`, `\\t`, others as `\\u00xx` (lower-case hex); everything else as itself (RFC 8785's
  string rule);
- `true`, `false`, `null`;
- numbers of the payload exactly as PostgreSQL prints the stored jsonb value (`1.50` stays
  `1.50`, `1e2` was stored as `100`): never through a binary float, so no change is lost in
  rounding; the columns' integers in plain decimal.
The keys and values: `position`, `stream_version`, `schema_version` (integers); `event_id`,
`correlation_id`, `causation_id` (lower-case hyphenated UUIDs, or null); `stream_id`,
`event_type`, `subject_id`, `actor`, `centre_id` (strings, or null); `occurred_at`,
`recorded_at` (UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, always six fraction digits; years
before 1 AD suffixed ` BC`; `infinity` and `-infinity` as those words); `payload` (the
JSON value). Example (one line in truth):

    {"actor":"test","causation_id":null,"centre_id":null,"correlation_id":"...","event_id":"...",
     "event_type":"enrollment.PatientRegistered","occurred_at":"2025-01-06T09:00:00.000000Z",
     "payload":{"centre_id":"IT-BG-01","subject_id":"S-000000000001"},"position":1,
     "recorded_at":"2025-01-06T09:00:00.123456Z","schema_version":1,"stream_id":"s-1",
     "stream_version":1,"subject_id":"S-000000000001"}

Each link also keeps `payload_hash` = SHA-256(canonical payload), so a verifier can say
whether it was the payload or another column that changed.

The chain alone shows a changed or inserted row; it cannot show the last rows deleted
together with their links. So each store's head (position, hash) is recorded now and then
as a `common.ChainHeadRecorded` event in the store itself, which the relay publishes: the
copies on the broker are out of a database superuser's reach (`celltrail verify`
compares with them).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import asyncpg

from contracts.events import ChainHeadRecorded
from infra.runtime.eventstore import EventStore, Metadata, NewEvent

GENESIS = bytes(32)
HEAD_STREAM = "chain-head"
HEAD_ACTOR = "celltrail-chain"


class _Verbatim(str):
    """Text already in canonical form, written as it is."""


class _Number(_Verbatim):
    """A JSON number kept as the token it was written with."""


# The string rule of the module docstring is exactly what `json.dumps(..., ensure_ascii=False)`
# writes for a string; this is the C function it calls, without its per-call set-up.
_string = json.encoder.encode_basestring


def _serialise(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(str.__str__(value) if isinstance(value, _Verbatim) else _string(value))
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key in sorted(value):
            out.append(_string(key) + ":" if first else "," + _string(key) + ":")
            first = False
            _serialise(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _serialise(item, out)
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    else:
        raise TypeError(f"not a canonical JSON value: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """`value` (dicts, lists, strings, ints, bools, None, numbers parsed by `parse_json`) in
    the canonical form of the module docstring, as UTF-8."""
    out: list[str] = []
    _serialise(value, out)
    return "".join(out).encode()


def parse_json(text: str) -> Any:
    """JSON text with every number kept as its token (see `canonical_json`)."""
    return json.loads(text, parse_int=_Number, parse_float=_Number, parse_constant=_Number)


# Every stored column, rendered in SQL as the text the canonical form names: a row whose
# values the driver or the contract would refuse (a quarantined row) is read all the same.
_UTC = ("CASE WHEN NOT isfinite({c}) THEN {c}::text"
        " ELSE to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        " || CASE WHEN {c} < '0001-01-01 00:00:00+00' THEN ' BC' ELSE '' END END AS {c}")
CANONICAL_COLUMNS = ", ".join([
    "position", "event_id::text AS event_id", "stream_id", "stream_version", "event_type", "schema_version",
    "subject_id", "payload::text AS payload", _UTC.format(c="occurred_at"), _UTC.format(c="recorded_at"),
    "correlation_id::text AS correlation_id", "causation_id::text AS causation_id", "actor", "centre_id",
])


def canonical_event(row: asyncpg.Record | dict[str, Any], payload: bytes | None = None) -> bytes:
    """The canonical encoding of an events row read with `CANONICAL_COLUMNS`; `payload`:
    the row's payload already in canonical form (`canonical_json(parse_json(...))`)."""
    values = dict(row)
    values["payload"] = _Verbatim(payload.decode()) if payload is not None else parse_json(values["payload"])
    return canonical_json(values)


@dataclass(frozen=True)
class Link:
    position: int
    previous_hash: bytes
    hash: bytes
    payload_hash: bytes


def link(previous_hash: bytes, row: asyncpg.Record | dict[str, Any]) -> Link:
    payload = canonical_json(parse_json(row["payload"]))  # once, for both hashes
    return Link(row["position"], previous_hash,
                hashlib.sha256(previous_hash + canonical_event(row, payload)).digest(),
                hashlib.sha256(payload).digest())


class EventChain:
    """Extends one store's chain in position order; only up to a horizon (relay.py)."""

    def __init__(self, store: EventStore, *, batch_size: int = 500) -> None:
        self.store, self.batch_size = store, batch_size
        self.table = f"{store.schema}.event_chain"

    async def head(self, conn: asyncpg.Connection) -> tuple[int, bytes]:
        """(position, hash) of the last link; (0, GENESIS) for an empty chain."""
        row = await conn.fetchrow(f"SELECT position, hash FROM {self.table} ORDER BY position DESC LIMIT 1")
        return (row["position"], row["hash"]) if row else (0, GENESIS)

    async def extend(self, conn: asyncpg.Connection, upto: int) -> int:
        """Link every row past the chain's head up to `upto`; return how many were linked.
        Two chainers racing both start at the same head and collide on the first position
        (primary key): the loser's transaction rolls back and it retries."""
        linked = 0
        while True:
            position, previous = await self.head(conn)
            rows = await conn.fetch(f"SELECT {CANONICAL_COLUMNS} FROM {self.store.table}"
                                    " WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3",
                                    position, upto, self.batch_size)
            if not rows:
                return linked
            links = []
            for row in rows:
                links.append(link(previous, row))
                previous = links[-1].hash
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO {self.table} (position, previous_hash, hash, payload_hash) VALUES ($1, $2, $3, $4)",
                    [(k.position, k.previous_hash, k.hash, k.payload_hash) for k in links])
            linked += len(links)
            if len(rows) < self.batch_size:
                return linked  # reached `upto`: no need to ask again


class HeadRecorder:
    """Records the chain's head as a `common.ChainHeadRecorded` event in the store itself,
    at most every `interval` seconds and only when links other than the last recorded
    head's own were added since (so a head event never calls for another by itself)."""

    def __init__(self, chain: EventChain, interval: float) -> None:
        self.chain, self.interval = chain, interval
        self._last = time.monotonic()

    async def record_if_due(self, conn: asyncpg.Connection) -> ChainHeadRecorded | None:
        if time.monotonic() - self._last < self.interval:
            return None
        store = self.chain.store
        position, head = await self.chain.head(conn)
        last = await conn.fetchrow(f"SELECT max(position) AS position, max(stream_version) AS version"
                                   f" FROM {store.table} WHERE stream_id = $1", HEAD_STREAM)
        self._last = time.monotonic()
        if position == 0 or (last["position"] or 0) >= position:
            return None
        event = ChainHeadRecorded(store=store.schema, position=position, hash=head.hex())
        async with conn.transaction():
            await store.append(conn, HEAD_STREAM, last["version"] or 0,
                               [NewEvent(event, occurred_at=datetime.now(timezone.utc))],
                               Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor=HEAD_ACTOR))
        return event
