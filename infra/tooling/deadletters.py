"""`celltrail deadletters list` and `replay`: dead letters as a workflow (issue 12 item 3).

A consumer that gives up on a record (it cannot be decoded, its handler kept failing for a
reason of its own, no handler takes it, or an upstream event is refused) sends it to the
dead-letter topic with its original value, key and headers plus three of its own: the
reason, the source (`<topic>/<partition>/<offset>`) and the consumer (infra/runtime/consumer.py).
The dead letter's own time is its record's timestamp on the dead-letter topic.

`list` reads the dead-letter topic from its beginning with a consumer of no group (nothing is
committed anywhere) and shows each dead letter under a stable id, `<partition>:<offset>` of
its record on the dead-letter topic.

`replay` sends chosen dead letters back to their source topic (its partition): the original
value, key and headers, without the dead-letter headers, plus `celltrail-replay-of` (the dead
letter's id), `celltrail-replayed-by` (the principal) and `celltrail-replayed-at` (UTC). The
consumer applies it like the original: a message that was dead-lettered gave its inbox claim
back, so it is applied once, and a replay sent twice (or a dead letter of a record that was
in fact applied) finds its id claimed and changes nothing.

What has been replayed is recorded in two places:
- a replay marker on the dead-letter topic itself (header `celltrail-dlq-replayed` naming the
  dead letter; its value a JSON object: `replay_of`, `replayed_by`, `replayed_at`,
  `sent_to`). It is the source of truth for `list`'s "replayed": a dead letter's id is its
  position in the dead-letter topic's log, so what is said about it lives in the same log
  and goes with it (the embedded broker keeps its log in memory: when it is lost, the dead
  letters and what was replayed of them are lost together, and new ids never inherit an old
  marker);
- a row of `access.audit_log` (`dead_letter_replayed`: who, which dead letter, its source,
  message id and type, where it was sent), in PostgreSQL, which outlives the broker.

Replaying is the `replay_dead_letters` action of the policy (the administrator's): the
caller shows a token (`--token`, `CELLTRAIL_TOKEN`, else the CLI's own principal's from the
home's key), checked as `celltrail audit` checks its reader's.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from infra.runtime.access.policy import Action
from infra.runtime.access.principals import Principal
from infra.runtime.access.store import PgAccessStore
from infra.tooling.access import authorised
from infra.runtime.messaging import new_producer

# Headers a dead letter adds to the original's, and those a replay adds: neither is sent back.
DEAD_LETTER_HEADERS = frozenset({topics.HEADER_DLQ_REASON, topics.HEADER_DLQ_SOURCE, topics.HEADER_DLQ_CONSUMER})
REPLAY_HEADERS = frozenset({topics.HEADER_REPLAY_OF, topics.HEADER_REPLAYED_BY, topics.HEADER_REPLAYED_AT})
REASON_SHOWN = 300  # characters of the reason on a `list` line (`--json` has all of it)


class DeadLetterError(Exception):
    """Said in one line by the CLI, exit status 1 (`status` 2 for a malformed argument)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class KafkaRecord(Protocol):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


# -- parsing -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def parse_source(text: str | None) -> Source | None:
    """`<topic>/<partition>/<offset>`, as the consumer writes it; None if it is not that."""
    if not text:
        return None
    topic, _, rest = text.partition("/")
    partition, _, offset = rest.partition("/")
    if not topic or not partition.isdigit() or not offset.isdigit():
        return None
    return Source(topic, int(partition), int(offset))


def parse_id(text: str) -> str:
    """A dead letter's id, `<partition>:<offset>` on the dead-letter topic, normalised."""
    partition, sep, offset = text.strip().partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise DeadLetterError(f"{text!r} is not a dead letter id: <partition>:<offset> on {topics.DEAD_LETTER}, "
                              f"as `celltrail deadletters list` shows it (e.g. 0:12)", status=2)
    return f"{int(partition)}:{int(offset)}"


def parse_since(text: str) -> datetime:
    """`--since`: ISO 8601 with an offset, or a date `YYYY-MM-DD` (its start, UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), timezone.utc)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise DeadLetterError(f"--since {text!r}: expected ISO 8601 with an offset (e.g. 2025-06-01T09:30:00+02:00 "
                              "or ...Z) or a date YYYY-MM-DD", status=2)
    return moment


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(value: bytes | None) -> dict[str, Any]:
    """The record's JSON object if it is one (a command or an event envelope), else {}."""
    try:
        data = json.loads(value) if value else None
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def token_expiry(value: bytes | None) -> datetime | None:
    """When the bearer token a command carries (`credential`, a JWT) expires, read without
    checking it (the service checks it when it applies the command); None without one."""
    credential = _envelope(value).get("credential")
    if not isinstance(credential, str) or credential.count(".") != 2:
        return None
    body = credential.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return datetime.fromtimestamp(float(claims["exp"]), timezone.utc)
    except (ValueError, KeyError, TypeError, OverflowError):
        return None


@dataclass(frozen=True)
class Replay:
    replayed_by: str
    replayed_at: str
    sent_to: str
    marker: str  # the replay marker's own id on the dead-letter topic


@dataclass
class DeadLetter:
    id: str  # <partition>:<offset> of its record on the dead-letter topic
    dead_lettered_at: datetime
    source: Source | None
    consumer: str | None
    reason: str
    message_type: str | None  # the command or event type, when the record says it
    message_id: str | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    replay_of: str | None = None  # the record was itself a replay of that dead letter
    # the same record (source position) dead-lettered by the same consumer before, under
    # this id: a fetch redelivered after a rebalance is tried again; the two share replays
    duplicate_of: str | None = None
    replays: list[Replay] = field(default_factory=list)

    @property
    def replayed(self) -> bool:
        return bool(self.replays)

    def original_headers(self) -> list[tuple[str, bytes]]:
        """The original record's headers: without the dead letter's, and without those of an
        earlier replay (the record was dead-lettered again)."""
        return [(k, v) for k, v in self.headers if k not in DEAD_LETTER_HEADERS and k not in REPLAY_HEADERS]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "dead_lettered_at": _utc(self.dead_lettered_at),
            "source": None if self.source is None else
            {"topic": self.source.topic, "partition": self.source.partition, "offset": self.source.offset},
            "consumer": self.consumer, "reason": self.reason, "message_type": self.message_type,
            "message_id": self.message_id, "key": _text(self.key),
            "value_bytes": None if self.value is None else len(self.value),
            "replay_of": self.replay_of, "duplicate_of": self.duplicate_of, "replayed": self.replayed,
            "replays": [r.__dict__ for r in self.replays],
        }

    def columns(self) -> list[str]:
        replayed = "not replayed"
        if self.replays:
            last = self.replays[-1]
            times = f" ({len(self.replays)} times)" if len(self.replays) > 1 else ""
            replayed = f"replayed {last.replayed_at} by {last.replayed_by}{times}"
        kind = self.message_type or "(undecodable)"
        if self.replay_of:
            kind += f" (replay of {self.replay_of})"
        if self.duplicate_of:
            kind += f" (duplicate of {self.duplicate_of})"
        reason = " ".join(self.reason.split())
        if len(reason) > REASON_SHOWN:
            reason = reason[:REASON_SHOWN - 3] + "..."
        return [self.id, _utc(self.dead_lettered_at), str(self.source or "(source unknown)"),
                self.consumer or "?", kind, replayed, reason]


def parse(records: Iterable[KafkaRecord]) -> list[DeadLetter]:
    """The dead letters among the dead-letter topic's records, each with the replays its
    markers record (a marker names a dead letter before it in the log)."""
    letters: dict[str, DeadLetter] = {}
    first: dict[tuple[str | None, str], DeadLetter] = {}  # by consumer and source position
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        headers = [(k, bytes(v) if v is not None else b"") for k, v in (r.headers or ())]
        named = dict(headers)
        record_id = f"{r.partition}:{r.offset}"
        if topics.HEADER_DLQ_REPLAYED in named:
            marker = _envelope(r.value)
            target = letters.get(_text(named[topics.HEADER_DLQ_REPLAYED]) or "")
            if target is not None:
                target.replays.append(Replay(str(marker.get("replayed_by", "?")), str(marker.get("replayed_at", "?")),
                                             str(marker.get("sent_to", "?")), record_id))
            continue
        envelope = _envelope(r.value)
        kind = (_text(named.get(topics.HEADER_MESSAGE_TYPE))
                or envelope.get("command_type") or envelope.get("event_type"))
        message_id = (_text(named.get(topics.HEADER_MESSAGE_ID))
                      or envelope.get("command_id") or envelope.get("event_id"))
        letters[record_id] = letter = DeadLetter(
            id=record_id,
            dead_lettered_at=datetime.fromtimestamp(r.timestamp / 1000, timezone.utc),
            source=parse_source(_text(named.get(topics.HEADER_DLQ_SOURCE))),
            consumer=_text(named.get(topics.HEADER_DLQ_CONSUMER)),
            reason=_text(named.get(topics.HEADER_DLQ_REASON)) or "(no reason recorded)",
            message_type=kind if isinstance(kind, str) else None,
            message_id=message_id if isinstance(message_id, str) else None,
            key=r.key, value=r.value, headers=headers,
            replay_of=_text(named.get(topics.HEADER_REPLAY_OF)))
        if letter.source is not None:
            earlier = first.setdefault((letter.consumer, str(letter.source)), letter)
            if earlier is not letter:
                letter.duplicate_of, letter.replays = earlier.id, earlier.replays
    return list(letters.values())


def select(letters: Sequence[DeadLetter], *, source: str | None = None,
           since: datetime | None = None) -> list[DeadLetter]:
    return [d for d in letters
            if (source is None or (d.source is not None and d.source.topic == source))
            and (since is None or d.dead_lettered_at >= since)]


HEADINGS = ["ID", "DEAD-LETTERED (UTC)", "SOURCE", "CONSUMER", "TYPE", "REPLAYED", "REASON"]


def lines(letters: Sequence[DeadLetter]) -> list[str]:
    """One line per dead letter under a heading, in columns, and a count."""
    if not letters:
        return [f"no dead letters on {topics.DEAD_LETTER}"]
    rows = [HEADINGS] + [d.columns() for d in letters]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS) - 1)]
    out = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip() for row in rows]
    replayed = sum(d.replayed for d in letters)
    out.append(f"{len(letters)} dead letter{'s' if len(letters) != 1 else ''}, {replayed} replayed")
    return out


# -- the broker ----------------------------------------------------------------------------

async def read(bootstrap: str, timeout: float = 15.0) -> list[DeadLetter]:
    """Every dead letter, read from the start of the dead-letter topic by a consumer of no
    group (nothing committed, no one's offsets moved)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                request_timeout_ms=int(timeout * 1000))
    records: list[KafkaRecord] = []
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        await consumer.topics()
        parts = [TopicPartition(topics.DEAD_LETTER, p)
                 for p in sorted(consumer.partitions_for_topic(topics.DEAD_LETTER) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        deadline = asyncio.get_running_loop().time() + timeout
        # Until each partition's end (Tansu reports it as its last batch's start plus one,
        # which the last batch read passes too).
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            if asyncio.get_running_loop().time() > deadline:
                raise asyncio.TimeoutError(f"reading {topics.DEAD_LETTER} took longer than {timeout:g}s")
            for batch in (await consumer.getmany(*parts, timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    return parse(records)


# -- who may replay ------------------------------------------------------------------------

async def authorised_replayer(conn: asyncpg.Connection, token: str | None, public_key_pem: str) -> Principal:
    """The principal of `token` if the policy lets it replay dead letters."""
    return await authorised(conn, token, public_key_pem, Action.REPLAY_DEAD_LETTERS, DeadLetterError,
                            "replay dead letters (an administrator may)")


# -- replaying -----------------------------------------------------------------------------

@dataclass
class Outcome:
    letter: DeadLetter
    status: str  # replayed | skipped (already replayed) | refused (cannot be replayed)
    detail: str

    def line(self) -> str:
        kind = self.letter.message_type or "(undecodable)"
        return f"{self.letter.id}  {kind}  {self.status}: {self.detail}"


def chosen(letters: Sequence[DeadLetter], ids: Sequence[str], *, all_: bool, source: str | None) -> list[DeadLetter]:
    """The dead letters named by `ids` (every one must exist: else nothing is chosen and the
    error names the unknown ones), or with `all_` every one not yet replayed (of `source`),
    duplicates left out."""
    if all_:
        return [d for d in select(letters, source=source) if not d.replayed and d.duplicate_of is None]
    by_id = {d.id: d for d in letters}
    wanted = [parse_id(i) for i in ids]
    marker_ids = {r.marker for d in letters for r in d.replays}
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        said = [f"{i} (a replay marker, not a dead letter)" if i in marker_ids else i for i in unknown]
        known = f"; it holds {', '.join(sorted(by_id, key=_order))}" if 0 < len(by_id) <= 20 else \
            f"; it holds {len(by_id)} (`celltrail deadletters list`)" if by_id else "; it holds none"
        raise DeadLetterError(f"no dead letter {', '.join(said)} on {topics.DEAD_LETTER}{known}; nothing was replayed")
    return [by_id[i] for i in dict.fromkeys(wanted)]


def _order(letter_id: str) -> tuple[int, int]:
    p, _, o = letter_id.partition(":")
    return int(p), int(o)


def why_not(letter: DeadLetter, now: datetime) -> str | None:
    """Why the dead letter cannot be sent back, or None."""
    if letter.source is None:
        return "its source topic is not recorded"
    if letter.value is None:
        return "it has no value to send back"
    if letter.source.topic in topics.COMMAND_TOPICS:
        expires = token_expiry(letter.value)
        if expires is not None and expires <= now:
            return (f"the token it carries expired at {_utc(expires)}: the service would refuse it as "
                    "UNAUTHENTICATED; resubmit the command with a fresh token instead")
    return None


Record = Callable[[DeadLetter, Replay], Awaitable[None]]


async def send_back(bootstrap: str, letters: Sequence[DeadLetter], *, by: str, record: Record,
                    again: bool = False, timeout: float = 15.0,
                    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> list[Outcome]:
    """Each dead letter's original back to its source partition, marked as a replay; each
    replay marked on the dead-letter topic and `record`ed, one after the other. A dead letter
    already replayed is passed over unless `again`."""
    outcomes: list[Outcome] = []
    todo: list[DeadLetter] = []
    for d in letters:
        if d.replayed and not again:
            last = d.replays[-1]
            outcomes.append(Outcome(d, "skipped", f"already replayed {last.replayed_at} by {last.replayed_by} "
                                                  f"(to {last.sent_to}); --again sends it once more"))
        elif (why := why_not(d, now())) is not None:
            outcomes.append(Outcome(d, "refused", why))
        else:
            todo.append(d)
    if not todo:
        return outcomes
    producer = new_producer(bootstrap)
    try:
        await asyncio.wait_for(producer.start(), timeout)
        for d in todo:
            assert d.source is not None
            at = _utc(now())
            headers = d.original_headers() + [(topics.HEADER_REPLAY_OF, d.id.encode()),
                                              (topics.HEADER_REPLAYED_BY, by.encode()),
                                              (topics.HEADER_REPLAYED_AT, at.encode())]
            partitions = await producer.partitions_for(d.source.topic)
            partition = d.source.partition if d.source.partition in partitions else None
            sent = await producer.send_and_wait(d.source.topic, value=d.value, key=d.key, headers=headers,
                                                partition=partition)
            sent_to = f"{sent.topic}/{sent.partition}/{sent.offset}"
            marker = await producer.send_and_wait(
                topics.DEAD_LETTER, key=d.id.encode(), headers=[(topics.HEADER_DLQ_REPLAYED, d.id.encode())],
                value=json.dumps({"replay_of": d.id, "replayed_by": by, "replayed_at": at,
                                  "sent_to": sent_to}).encode())
            replay = Replay(by, at, sent_to, f"{marker.partition}:{marker.offset}")
            d.replays.append(replay)
            await record(d, replay)
            outcomes.append(Outcome(d, "replayed", f"sent back to {sent_to}"))
    finally:
        await producer.stop()
    return outcomes


async def replay(bootstrap: str, database_url: str, *, token: str | None, public_key_pem: str,
                 ids: Sequence[str] = (), all_: bool = False, source: str | None = None,
                 again: bool = False) -> tuple[Principal, list[Outcome]]:
    """`celltrail deadletters replay`: check the caller, read the dead letters, send the
    chosen ones back, each recorded in `access.audit_log` as it is sent."""
    for i in ids:
        parse_id(i)  # a malformed id is refused before anything is read
    try:
        conn = await asyncpg.connect(database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DeadLetterError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?"
                              ) from None
    try:
        who = await authorised_replayer(conn, token, public_key_pem)
        letters = chosen(await read(bootstrap), ids, all_=all_, source=source)

        async def record(d: DeadLetter, r: Replay) -> None:
            await PgAccessStore(conn).record_dead_letter_replay(
                who.principal_id, dead_letter=d.id, source=str(d.source), consumer=d.consumer,
                message_id=d.message_id, message_type=d.message_type, reason=d.reason[:500], sent_to=r.sent_to,
                marker=r.marker)

        return who, await send_back(bootstrap, letters, by=who.principal_id, record=record, again=again)
    finally:
        await conn.close()
