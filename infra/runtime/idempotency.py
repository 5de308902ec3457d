"""Idempotency keys: a resubmitted command gets the original outcome and changes nothing
(issue 12 item 4).

The inbox (infra/runtime/consumer.py) makes a *redelivered* record harmless: it claims the
message id. A *resubmission* (the same file loaded twice, a client retrying after a timeout)
is a new message with a new id. So a command may carry an idempotency key, its submitter's
name for it (`CommandEnvelope.idempotency_key`; the loader derives one from the file and the
line, an HTTP client sends an `Idempotency-Key` header), and each service keeps the outcome of
every keyed command in `<schema>.command_keys` (migrations/versions/0017_command_keys.py):

- from a command topic, in the fetch's transaction, with the events the command caused
  (`FetchWrites` appends both with the fetch's other writes, and a refusal undoes both):
  `accepted` with the streams and types of its events, or `refused` with the
  `CommandRejected` code and reason. A command arriving under a recorded key with the same
  fingerprint (command type, actor and canonical payload) is a resubmission: nothing is
  applied, nothing appended, and its submitter reads the original outcome at
  `GET /command-outcomes?key=` (a topic has no reply channel, and the original's events are
  already published under the original command's id). With another fingerprint it is
  refused as IDEMPOTENCY_KEY_REUSED (a `CommandRejected`, not recorded under the key).
  The key is checked after the command guard (infra/runtime/access/commands.py): only an
  authenticated principal's command is judged by it, and an unauthenticated command's
  refusal is never recorded under its key (it could otherwise claim a key it does not own).
- over HTTP (infra/runtime/edge.py), an endpoint declared `idempotent`: after authentication
  and authorisation the key is claimed (`in_progress`) before the handler runs; the answer
  (2xx, or a 409 refusal of the domain) is then kept and a resubmission is answered the same,
  with `Idempotent-Replayed: true`. Any other answer (invalid body, 5xx) releases the claim,
  so a corrected request may use the key again. A request arriving while the first is still
  running is answered 409 IDEMPOTENCY_KEY_IN_USE with `Retry-After`; a claim left
  `in_progress` for longer than `STALE_CLAIM` (the process died between its commit and the
  answer) is taken over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from contracts.base import CommandPayload
from contracts.envelope import IDEMPOTENCY_KEY_PATTERN, CommandEnvelope
from contracts.errors import CommandRefused, Unauthenticated
from infra.runtime.eventstore import valid_schema
from services.kernel.streams import declared_reads, reads

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STALE_CLAIM = timedelta(minutes=5)
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


class IdempotencyKeyReused(CommandRefused):
    """The key names another command already: the same key with a different body."""

    code = "IDEMPOTENCY_KEY_REUSED"


def valid_key(key: str) -> bool:
    return bool(_KEY.match(key))


def fingerprint(*parts: str | bytes) -> str:
    """SHA-256 of the parts, each length-prefixed (so no two lists of parts collide)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def command_fingerprint(command_type: str, actor: str, payload: CommandPayload) -> str:
    """What a keyed command is: its type, its actor and its payload in canonical JSON (as
    parsed, so two spellings of one instant or number are one command)."""
    canonical = json.dumps(payload.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return fingerprint(command_type, actor, canonical)


@dataclass(frozen=True)
class KeyOutcome:
    """One row of `<schema>.command_keys`."""

    key: str
    command_type: str
    fingerprint: str
    actor: str
    outcome: str  # accepted | refused | in_progress (an HTTP request being answered)
    command_id: uuid.UUID | None = None
    reason_code: str | None = None
    reason: str | None = None
    events: tuple[tuple[str, str], ...] = ()  # (stream id, event type) of each event caused
    http_status: int | None = None
    http_body: bytes | None = None
    recorded_at: datetime | None = None

    def describe(self) -> str:
        """The outcome in the loader's words: `accepted: <event types>` or `refused: CODE: reason`."""
        if self.outcome == "refused":
            return f"refused: {self.reason_code}: {self.reason}"
        if self.http_status is not None:
            return f"answered {self.http_status}"
        return "accepted: " + (", ".join(t for _, t in self.events) or "no events")

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "command_type": self.command_type, "outcome": self.outcome,
                "command_id": str(self.command_id) if self.command_id else None,
                "reason_code": self.reason_code, "reason": self.reason,
                "events": [{"stream_id": s, "event_type": t} for s, t in self.events],
                "http_status": self.http_status,
                "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
                "summary": self.describe()}


_COLUMNS = ("key, command_type, fingerprint, actor, outcome, command_id, reason_code, reason, events, "
            "http_status, http_body, recorded_at")


def _row(r: asyncpg.Record) -> KeyOutcome:
    events = r["events"]
    events = json.loads(events) if isinstance(events, str) else events or []
    return KeyOutcome(r["key"], r["command_type"], r["fingerprint"], r["actor"], r["outcome"], r["command_id"],
                      r["reason_code"], r["reason"], tuple((e["stream_id"], e["event_type"]) for e in events),
                      r["http_status"], bytes(r["http_body"]) if r["http_body"] is not None else None,
                      r["recorded_at"])


async def lookup(conn: asyncpg.Connection, schema: str, key: str) -> KeyOutcome | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {valid_schema(schema)}.command_keys WHERE key = $1", key)
    return _row(row) if row is not None else None


@dataclass
class CommandKeys:
    """The keyed outcomes one fetch reads and decides; written by `flush` with the fetch's
    events (`FetchWrites`), undone with a refused message's savepoint (`mark`, `undo`)."""

    schema: str
    known: dict[str, KeyOutcome] = field(default_factory=dict)
    pending: list[KeyOutcome] = field(default_factory=list)
    resubmissions: int = 0  # commands passed over as resubmissions (kept across undo: a count)

    async def prefetch(self, conn: asyncpg.Connection, keys: Sequence[str]) -> None:
        wanted = sorted({k for k in keys if k not in self.known})
        if not wanted:
            return
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM {valid_schema(self.schema)}.command_keys"
                                " WHERE key = ANY($1::text[])", wanted)
        for r in rows:
            self.known[r["key"]] = _row(r)

    def get(self, key: str) -> KeyOutcome | None:
        return self.known.get(key)

    def decide(self, outcome: KeyOutcome) -> None:
        if outcome.key in self.known:
            raise ValueError(f"key {outcome.key!r} is decided already")
        self.known[outcome.key] = outcome
        self.pending.append(outcome)

    def mark(self) -> int:
        return len(self.pending)

    def undo(self, mark: int) -> None:
        for outcome in self.pending[mark:]:
            del self.known[outcome.key]
        del self.pending[mark:]

    async def flush(self, conn: asyncpg.Connection) -> None:
        """One statement for the fetch. No ON CONFLICT: a key another writer recorded
        meanwhile fails the fetch, which comes again and finds it."""
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        await conn.execute(
            f"INSERT INTO {valid_schema(self.schema)}.command_keys"
            " (key, command_type, fingerprint, actor, outcome, command_id, reason_code, reason, events)"
            " SELECT k, t, f, a, o, c, rc, r, e::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
            " $5::text[], $6::uuid[], $7::text[], $8::text[], $9::text[]) AS x(k, t, f, a, o, c, rc, r, e)",
            [o.key for o in rows], [o.command_type for o in rows], [o.fingerprint for o in rows],
            [o.actor for o in rows], [o.outcome for o in rows], [o.command_id for o in rows],
            [o.reason_code for o in rows], [o.reason for o in rows],
            [json.dumps([{"stream_id": s, "event_type": t} for s, t in o.events]) for o in rows])


def keys_of(envelopes: Sequence[CommandEnvelope]) -> list[str]:
    return [e.idempotency_key for e in envelopes if e.idempotency_key is not None]


def keyed(handlers: Mapping[str, Any]) -> dict[str, Any]:
    """`handlers` (command type -> `(conn, env, payload, writes=...)` handler), each judging
    the command's idempotency key first (module docstring). Goes inside the command guard."""
    return {command_type: _keyed(handler) for command_type, handler in handlers.items()}


def _keyed(handler: Any) -> Any:
    async def keyed_handler(conn: asyncpg.Connection, env: CommandEnvelope, payload: CommandPayload,
                            **context: Any) -> None:
        writes = context.get("writes")
        keys: CommandKeys | None = getattr(writes, "keys", None)
        key = env.idempotency_key
        if key is None or keys is None:
            await handler(conn, env, payload, **context)
            return
        print_ = command_fingerprint(env.command_type, env.actor, payload)
        known = keys.get(key)
        if known is not None:
            if known.fingerprint != print_:
                what = known.command_type + (f" {known.command_id}" if known.command_id else "")
                raise IdempotencyKeyReused(f"idempotency key {key!r} was used for another command ({what}, "
                                           f"{known.outcome}); a new command needs a new key")
            keys.resubmissions += 1
            log.info("command %s (%s) resubmits %s under key %r: original outcome %s; nothing applied",
                     env.command_id, env.command_type, known.command_id, key, known.describe())
            return
        mark = writes.mark()
        await handler(conn, env, payload, **context)
        keys.decide(KeyOutcome(key, env.command_type, print_, env.actor, "accepted", env.command_id,
                               events=tuple(writes.added_since(mark))))

    keyed_handler.__qualname__ = f"keyed({getattr(handler, '__qualname__', handler)})"
    declared = declared_reads(handler)
    return reads(declared)(keyed_handler) if declared else keyed_handler


def remember_refusal(writes: Any, env: CommandEnvelope, payload: CommandPayload, exc: CommandRefused) -> None:
    """A keyed command refused: its outcome under its key (after its savepoint was undone),
    unless the refusal says the command was not its sender's to key (unauthenticated) or
    the key is another command's."""
    keys: CommandKeys | None = getattr(writes, "keys", None)
    key = env.idempotency_key
    if key is None or keys is None or keys.get(key) is not None \
            or isinstance(exc, (Unauthenticated, IdempotencyKeyReused)):
        return
    keys.decide(KeyOutcome(key, env.command_type, command_fingerprint(env.command_type, env.actor, payload),
                           env.actor, "refused", env.command_id, reason_code=exc.code, reason=exc.reason))


# -- HTTP ------------------------------------------------------------------------------------


async def claim(conn: asyncpg.Connection, schema: str, key: str, route: str, print_: str,
                actor: str) -> KeyOutcome | None:
    """Claim `key` for a request about to run (None), or what is recorded under it: an answer
    to replay, another request's fingerprint, or a request still running."""
    table = f"{valid_schema(schema)}.command_keys"
    inserted = await conn.fetchval(
        f"INSERT INTO {table} (key, command_type, fingerprint, actor, outcome) VALUES ($1, $2, $3, $4, 'in_progress')"
        " ON CONFLICT (key) DO NOTHING RETURNING key", key, route, print_, actor)
    if inserted is not None:
        return None
    known = await lookup(conn, schema, key)
    if known is None:  # released meanwhile: claim it again
        return await claim(conn, schema, key, route, print_, actor)
    if known.outcome == "in_progress" and known.fingerprint == print_:
        taken = await conn.fetchval(
            f"UPDATE {table} SET recorded_at = now() WHERE key = $1 AND outcome = 'in_progress'"
            " AND recorded_at < now() - $2::interval RETURNING key", key, STALE_CLAIM)
        if taken is not None:
            return None
    return known


async def answer(conn: asyncpg.Connection, schema: str, key: str, status: int, body: bytes, *,
                 refused: tuple[str, str] | None = None) -> None:
    await conn.execute(
        f"UPDATE {valid_schema(schema)}.command_keys SET outcome = $2, http_status = $3, http_body = $4,"
        " reason_code = $5, reason = $6, recorded_at = now() WHERE key = $1",
        key, "refused" if refused else "accepted", status, body,
        refused[0] if refused else None, refused[1] if refused else None)


async def release(conn: asyncpg.Connection, schema: str, key: str) -> None:
    await conn.execute(f"DELETE FROM {valid_schema(schema)}.command_keys WHERE key = $1 AND outcome = 'in_progress'",
                       key)
