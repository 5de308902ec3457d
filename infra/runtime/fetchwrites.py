"""What the command and event handlers of one fetch read from and append to their service's
event store, kept until the fetch commits (issue 7, item 8).

Applied one by one, a fetch of enrolments cost per command a query for the subject's stream,
another for the centre's (the same centre each time) and an insert, each a round trip. Here:

- `prefetch` loads every stream the fetch's commands declare they read (`services.kernel.streams.reads`) in
  one query;
- `load` answers from what this fetch has already read or appended, and queries only a
  stream it has not seen;
- `add` checks the expected version against that (a stale one raises
  `ConcurrencyConflictError` at once, as the store would) and keeps the events;
- `flush` appends everything the fetch decided with one statement (`EventStore.append_many`),
  inside the fetch's transaction, so it commits or rolls back with the inbox claims, the
  views and the offsets. The store still checks every stream's version there: a concurrent
  writer (an HTTP request) that appended since makes the whole fetch fail and come again.

A refused message undoes only its own appends: `mark` before it, `undo(mark)` after a
refusal, alongside the rollback of its savepoint (infra/runtime/consumer.py).

`keys`: the outcomes of the fetch's commands that carry an idempotency key
(infra/runtime/idempotency.py), marked, undone and flushed with the events. `commands` and
`scratch`: a service's adapter may read for every command of the fetch with one query (what
only reads, so nothing to undo), as enrollment reads the identities of the fetch's subjects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.base import CommandPayload, EventPayload
from contracts.registry import parse_event
from infra.runtime.eventstore import Append, ConcurrencyConflictError, EventStore, Metadata, NewEvent
from infra.runtime.idempotency import CommandKeys
from services.kernel.streams import declared_reads

@dataclass
class _Stream:
    events: list[EventPayload]
    version: int


@dataclass
class FetchWrites:
    store: EventStore
    conn: asyncpg.Connection
    _streams: dict[str, _Stream] = field(default_factory=dict)
    _pending: list[Append] = field(default_factory=list)
    # (stream id, what it was before) per change to `_streams`, so `undo` can restore it
    _undo: list[tuple[str, _Stream | None]] = field(default_factory=list)
    keys: CommandKeys | None = None
    # the fetch's commands, and a place for adapters to keep what they read for the whole
    # fetch with one query (enrollment's identities: services/enrollment/bootstrap.py)
    commands: Sequence[CommandPayload] = ()
    scratch: dict[str, object] = field(default_factory=dict)

    async def prefetch(self, stream_ids: Iterable[str]) -> None:
        wanted = sorted({s for s in stream_ids if s not in self._streams})
        if not wanted:
            return
        loaded = await self.store.load_many(self.conn, wanted)
        for stream_id in wanted:
            envelopes = loaded.get(stream_id, [])
            self._set(stream_id, _Stream([parse_event(e) for e in envelopes], len(envelopes)))

    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]:
        stream = self._streams.get(stream_id)
        if stream is None:
            await self.prefetch([stream_id])
            stream = self._streams[stream_id]
        return list(stream.events), stream.version

    async def add(self, stream_id: str, expected_version: int, events: Sequence[NewEvent], meta: Metadata) -> None:
        if not events:
            return
        _, version = await self.load(stream_id)
        if version != expected_version:
            raise ConcurrencyConflictError(stream_id, expected_version, version)
        stream = self._streams[stream_id]
        self._set(stream_id, _Stream(stream.events + [e.payload for e in events], version + len(events)))
        self._pending.append(Append(stream_id, expected_version, list(events), meta))

    def mark(self) -> tuple[int, int, int]:
        return len(self._undo), len(self._pending), self.keys.mark() if self.keys is not None else 0

    def added_since(self, mark: tuple[int, int, int]) -> list[tuple[str, str]]:
        """(stream id, event type) of each event added since `mark`."""
        return [(a.stream_id, e.payload.event_type) for a in self._pending[mark[1]:] for e in a.events]

    def undo(self, mark: tuple[int, int, int]) -> None:
        changes, pending, keys = mark
        if self.keys is not None:
            self.keys.undo(keys)
        while len(self._undo) > changes:
            stream_id, before = self._undo.pop()
            if before is None:
                del self._streams[stream_id]
            else:
                self._streams[stream_id] = before
        del self._pending[pending:]

    async def flush(self) -> None:
        """Append what the fetch decided, in the order it was decided, with one statement."""
        if self._pending:
            pending, self._pending = self._pending, []
            self._undo.clear()
            await self.store.append_many(self.conn, pending)
        if self.keys is not None:
            await self.keys.flush(self.conn)

    def _set(self, stream_id: str, stream: _Stream) -> None:
        self._undo.append((stream_id, self._streams.get(stream_id)))
        self._streams[stream_id] = stream


def commands_reads(handlers: dict[str, Callable], commands: Iterable[tuple[str, CommandPayload]]) -> list[str]:
    """The streams the handlers of `commands` (type, payload) declare they read."""
    found: list[str] = []
    for command_type, payload in commands:
        declared = declared_reads(handlers.get(command_type))
        if declared is not None:
            found.extend(declared(payload))
    return found
