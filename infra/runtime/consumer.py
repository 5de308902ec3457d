"""The one consumer: how every service and the projection apply what arrives on Kafka.

A FastStream batch subscriber hands over one whole fetch at a time. The consumer decodes it
(a malformed record goes to the dead-letter topic with the reason and its original bytes, and
is passed over once the broker acknowledged the dead letter), then, in ONE PostgreSQL
transaction:

1. claims every message id of the fetch in the service's inbox with one statement (a
   redelivered or republished message is already there and changes nothing);
2. applies the fresh messages through the service's `Applier` (a refusal undoes only its
   message, as a savepoint per handler would, and is recorded as `CommandRejected`); a
   command carrying an idempotency key is judged by the outcome recorded under it, and its
   own outcome is recorded with its events (infra/runtime/idempotency.py: a resubmission, a
   new message with a new id, is passed over as the inbox passes over a redelivery);
3. stores the next offset of every partition of the fetch in `<schema>.consumer_offsets`.

Only after that transaction committed does FastStream commit the offsets to the broker
(`AckPolicy.NACK_ON_ERROR`, set explicitly: FastStream's Kafka default is at-most-once). On
(re)assignment a partition is sought to the offset stored with the effects, so the database,
not the broker, says what has been applied (the pattern of aiokafka's "storing offsets
outside Kafka"); this also lets the projection rebuild in one transaction.

Failures. PostgreSQL or the broker being unreachable is not the record's fault: the fetch is
retried with backoff for as long as the outage lasts, and nothing is counted against it. Any
other exception counts as one attempt of the fetch; after `max_attempts` the fetch is applied
message by message, each in a savepoint, and a message that still fails is dead-lettered with
the reason while the rest is applied. Retry and dead-lettering exist here only. A dead-lettered
message gives its inbox claim back (it was not applied), so `celltrail deadletters replay`
can send it back after a fix (infra/tooling/deadletters.py); a fetch redelivered after a
rebalance tries such a message again, and may dead-letter it twice (shown as a duplicate).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol, TypeVar

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import TypeAdapter, ValidationError

from contracts import topics
from contracts.base import CommandPayload, EventPayload
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.errors import CommandRefused, Unauthenticated
from contracts.events import CommandRejected
from contracts.ids import SubjectId
from contracts.registry import UnknownMessageTypeError, UnsupportedSchemaVersionError, parse_command, parse_event
from infra.runtime.access.signing import UNAUTHENTIC, EventVerifier
from infra.runtime.eventstore import EventStore, Metadata, NewEvent, valid_schema
from infra.runtime.fetchwrites import FetchWrites, commands_reads
from infra.runtime.idempotency import CommandKeys, keys_of, remember_refusal

log = logging.getLogger(__name__)
T = TypeVar("T")

DECODE_ERRORS = (ValidationError, UnknownMessageTypeError, UnsupportedSchemaVersionError, ValueError)

# The database or the broker is away (SQLSTATE classes 08 connection, 57 operator
# intervention such as admin shutdown, 53 insufficient resources) or a transaction lost a
# serialisation race: the fetch waits and tries again, the record is not to blame.
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, KafkaError,
    asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError,
)


def is_infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, INFRASTRUCTURE_ERRORS)


@dataclass(frozen=True)
class Message:
    """One decoded record of a fetch."""

    record: ConsumerRecord
    message_id: uuid.UUID
    message_type: str
    envelope: CommandEnvelope | EventEnvelope
    payload: CommandPayload | EventPayload

    @property
    def is_command(self) -> bool:
        return isinstance(self.envelope, CommandEnvelope)


@dataclass
class Outcome:
    """What applying messages produced besides database writes: records to dead-letter."""

    dead_letters: list[tuple[ConsumerRecord, str]] = field(default_factory=list)


class Applier(Protocol):
    """How a service applies fresh messages, inside the fetch's transaction."""

    def wants(self, topic: str, message_type: str) -> bool: ...

    async def apply(self, conn: asyncpg.Connection, messages: Sequence[Message], outcome: Outcome) -> None: ...


# `handler(conn, envelope, payload, writes=...)`: `writes` is the fetch's (FetchWrites).
EventHandler = Callable[..., Awaitable[None]]
CommandHandler = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class BatchRoute:
    """An event handler that takes a run of consecutive events of its type at once
    (`handle(conn, envelopes, payloads)`), so a local view is written with one statement per
    run instead of one per event (infra.runtime.wiring)."""

    handle: Callable[[asyncpg.Connection, list[EventEnvelope], list[EventPayload]], Awaitable[None]]


@dataclass
class HandlerApplier:
    """A service's command and event handlers, one message at a time, in savepoints."""

    store: EventStore
    command_handlers: dict[str, CommandHandler] = field(default_factory=dict)
    event_handlers: dict[str, EventHandler | BatchRoute] = field(default_factory=dict)

    def wants(self, topic: str, message_type: str) -> bool:
        # Every command on the service's own topic is its business (unknown ones are
        # dead-lettered by `apply`); events only where the service has a handler.
        return topic in topics.COMMAND_TOPICS or message_type in self.event_handlers

    async def apply(self, conn: asyncpg.Connection, messages: Sequence[Message], outcome: Outcome) -> None:
        """The effect of one savepoint per message (a refusal undoes only its message), at
        the cost of one savepoint per run of messages without a refusal: two statements per
        fetch instead of two per message, and no subtransaction per message. On a refusal
        the run's savepoint is rolled back, the messages before the refused one are applied
        again together, the refused one alone, and the rest continue the same way.

        What the handlers append is kept in `FetchWrites` and appended with one statement
        at the end; the streams the commands declare they read are loaded with one query
        at the start (infra/runtime/fetchwrites.py)."""
        writes = FetchWrites(self.store, conn, keys=CommandKeys(self.store.schema),
                             commands=[m.payload for m in messages if m.is_command])
        keyed = keys_of([m.envelope for m in messages if m.is_command])
        if keyed:  # the recorded outcomes of the fetch's keyed commands, with one query
            await writes.keys.prefetch(conn, keyed)
        await writes.prefetch(commands_reads(
            self.command_handlers, ((m.message_type, m.payload) for m in messages if m.is_command)))
        await self._apply(conn, list(messages), outcome, writes)
        await writes.flush()

    async def _apply(self, conn: asyncpg.Connection, rest: list[Message], outcome: Outcome,
                     writes: FetchWrites) -> None:
        while rest:
            refused = await self._apply_run(conn, rest, outcome, writes)
            if refused is None:
                return
            start, length = refused
            if start:
                await self._apply(conn, rest[:start], outcome, writes)
            for m in rest[start:start + length]:  # a refused run of events: each alone
                await self._apply_alone(conn, m, outcome, writes)
            rest = rest[start + length:]

    async def _apply_run(self, conn: asyncpg.Connection, messages: list[Message], outcome: Outcome,
                         writes: FetchWrites) -> tuple[int, int] | None:
        """All of `messages` in one savepoint; on a refusal, none of them, and where the
        refused message (or the run of events handled together that holds it) starts and
        how many it is."""
        mark, undo = len(outcome.dead_letters), writes.mark()
        try:
            async with conn.transaction():
                for start, group in self._groups(messages):
                    try:
                        if len(group) > 1:
                            await self.event_handlers[group[0].message_type].handle(
                                conn, [m.envelope for m in group], [m.payload for m in group])
                        else:
                            await self._handle(conn, group[0], outcome, writes)
                    except CommandRefused:
                        raise _RunRefused(start, len(group)) from None
        except _RunRefused as refused:
            del outcome.dead_letters[mark:]
            writes.undo(undo)
            return refused.start, refused.length
        except BaseException:
            writes.undo(undo)
            raise
        return None

    def _groups(self, messages: list[Message]) -> Iterator[tuple[int, list[Message]]]:
        """Each message alone, except consecutive events of one type whose handler takes a
        run of them, together."""
        i = 0
        while i < len(messages):
            j = i + 1
            if not messages[i].is_command and isinstance(self.event_handlers.get(messages[i].message_type), BatchRoute):
                while j < len(messages) and not messages[j].is_command \
                        and messages[j].message_type == messages[i].message_type:
                    j += 1
            yield i, messages[i:j]
            i = j

    async def _apply_alone(self, conn: asyncpg.Connection, m: Message, outcome: Outcome,
                           writes: FetchWrites) -> None:
        undo = writes.mark()
        try:
            async with conn.transaction():  # savepoint: a refusal undoes only this message
                await self._handle(conn, m, outcome, writes)
        except CommandRefused as exc:
            writes.undo(undo)
            if m.is_command:
                await record_rejection(conn, self.store, m.envelope, exc, writes=writes)
                remember_refusal(writes, m.envelope, m.payload, exc)  # under its idempotency key
            else:
                # An upstream fact this service cannot apply is an inconsistency to look
                # at, not something to drop: the original goes to the dead-letter topic.
                outcome.dead_letters.append((m.record, f"event refused: {exc}"))
        except BaseException:
            writes.undo(undo)
            raise

    async def _handle(self, conn: asyncpg.Connection, m: Message, outcome: Outcome, writes: FetchWrites) -> None:
        if m.is_command:
            handler = self.command_handlers.get(m.message_type)
            if handler is None:
                outcome.dead_letters.append((m.record, f"command {m.message_type!r} is not handled here"))
                return
            await handler(conn, m.envelope, m.payload, writes=writes)
        else:
            handler = self.event_handlers[m.message_type]
            if isinstance(handler, BatchRoute):
                await handler.handle(conn, [m.envelope], [m.payload])
            else:
                await handler(conn, m.envelope, m.payload, writes=writes)


class _RunRefused(Exception):
    def __init__(self, start: int, length: int) -> None:
        super().__init__(start, length)
        self.start, self.length = start, length


async def record_rejection(conn: asyncpg.Connection, store: EventStore, env: CommandEnvelope,
                           exc: CommandRefused, *, subject_id: str | None = None,
                           writes: FetchWrites | None = None) -> None:
    """`subject_id`: whom the refusal is about when the command does not name the subject
    (a signature names the record it signs, whose subject the service looked up).
    `writes`: the fetch's, so the refusal takes its place among the fetch's events."""
    subject = subject_id or env.payload.get("subject_id")
    rejected = CommandRejected(command_id=str(env.command_id), command_type=env.command_type,
                               reason_code=exc.code, reason=exc.reason,
                               subject_id=subject if _is_subject_id(subject) else None)
    events = [NewEvent(rejected, occurred_at=datetime.now(timezone.utc), subject_id=rejected.subject_id)]
    meta = Metadata(correlation_id=env.correlation_id, causation_id=env.command_id,
                    # an unauthenticated actor is only a claim: the service records it
                    actor=store.schema if isinstance(exc, Unauthenticated) else env.actor)
    if writes is not None:
        await writes.add(f"command-{env.command_id}", 0, events, meta)
    else:
        await store.append(conn, f"command-{env.command_id}", 0, events, meta)


_SUBJECT_ID = TypeAdapter(SubjectId)


def _is_subject_id(value: object) -> bool:
    try:
        _SUBJECT_ID.validate_python(value)
        return True
    except ValidationError:
        return False


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer, consumer: str) -> None:
        self.producer, self.consumer = producer, consumer

    async def send(self, record: ConsumerRecord, reason: str) -> None:
        """Returns only once the broker acknowledged the dead letter."""
        headers = list(record.headers or ()) + [
            (topics.HEADER_DLQ_REASON, reason[:4000].encode(errors="backslashreplace")),
            (topics.HEADER_DLQ_SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
            (topics.HEADER_DLQ_CONSUMER, self.consumer.encode()),
        ]
        await self.producer.send_and_wait(topics.DEAD_LETTER, value=record.value, key=record.key, headers=headers)
        log.warning("dead-lettered %s/%s/%s: %s", record.topic, record.partition, record.offset, reason)


def _record_id(record: ConsumerRecord) -> uuid.UUID:
    """A stable id for a record that has none of its own (it could not be decoded)."""
    digest = hashlib.sha256(record.value or b"").hexdigest()
    return uuid.uuid5(uuid.NAMESPACE_URL, f"celltrail:record:{record.topic}/{record.partition}/{record.offset}/"
                                          f"{record.timestamp}/{digest}")


async def _parse_batch(records: tuple[ConsumerRecord, ...], original: Callable[..., Awaitable]) -> object:
    """FastStream's own parsing of a fetch, but for the records' headers: it decodes every
    header value as UTF-8, and a record carrying one that is not would fail its fetch before
    `on_fetch` sees it, again after every redelivery, and stall the consumer for good (issue
    12 item 6, found by fuzzing). It is given the records without their headers (nothing
    here reads FastStream's view of them); the message keeps the records as they came, so
    what is dead-lettered carries its headers."""
    message = await original(tuple(_without_headers(r) for r in records))
    message.raw_message = records
    return message


def _without_headers(record: ConsumerRecord) -> ConsumerRecord:
    """A copy of the record with no headers (`dataclasses.replace` per record was 1.5 % of a
    rebuild: it runs the generated __init__ with every field)."""
    r = record
    return ConsumerRecord(topic=r.topic, partition=r.partition, offset=r.offset, timestamp=r.timestamp,
                          timestamp_type=r.timestamp_type, key=r.key, value=r.value, checksum=r.checksum,
                          serialized_key_size=r.serialized_key_size,
                          serialized_value_size=r.serialized_value_size, headers=())


def _records_only(message: object) -> None:
    """`on_fetch` reads the raw records and decodes them itself: this stops FastStream from
    also parsing every record into a message of its own and JSON-decoding its body, only to
    throw them away (a quarter of the projection's CPU time in the profile, docs/benchmark.md)."""
    return None


class _SeekToStored(ConsumerRebalanceListener):
    """On assignment, continue each partition from the offset stored with the effects."""

    def __init__(self, consumer: "Consumer") -> None:
        self.owner = consumer

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.owner.seek_to_stored(list(assigned))


class Consumer:
    """Applies whole fetches of `topics` for one consumer group (see the module docstring)."""

    def __init__(self, *, name: str, schema: str, topics_: Sequence[str], applier: Applier,
                 pool: asyncpg.Pool, producer: AIOKafkaProducer, max_attempts: int = 5,
                 max_records: int = 500, fetch_max_wait_ms: int = 20, max_backoff_seconds: float = 10.0,
                 authenticity: EventVerifier | None = None, session_timeout_ms: int = 10_000) -> None:
        """`authenticity`: checks each wanted event's signature before it is parsed; one that
        fails is dead-lettered like a malformed record (infra/runtime/access/signing.py).
        `session_timeout_ms`: the group session (Settings.kafka_session_timeout_ms)."""
        self.session_timeout_ms = session_timeout_ms
        self.name, self.topics, self.applier, self.pool = name, tuple(topics_), applier, pool
        self.authenticity = authenticity
        self.refused_unauthentic = 0  # events dead-lettered as not signed by their topic's owner
        self.schema = valid_schema(schema)
        self.dead_letters = DeadLetters(producer, name)
        self.max_attempts, self.max_records, self.fetch_max_wait_ms = max_attempts, max_records, fetch_max_wait_ms
        self.max_backoff_seconds = max_backoff_seconds
        self.group_id = f"celltrail-{name}"
        self.subscriber = None
        self.applied = 0  # messages applied since start (for /status)
        self.last_error: str | None = None
        self._stopping = False
        self._applying = asyncio.Lock()  # a replay waits for the fetch being applied
        self._replay_from: dict[TopicPartition, int] = {}  # see replay()

    # -- wiring into a FastStream broker ---------------------------------------------------

    def subscribe(self, broker: KafkaBroker) -> None:
        self.subscriber = broker.subscriber(
            *self.topics,
            batch=True,
            max_records=self.max_records,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.fetch_max_wait_ms,
            # FastStream sleeps this long after an empty poll, and a record arriving then
            # waits for it: 200 ms by default, a hop's worst case whenever a consumer idles.
            batch_timeout_ms=self.fetch_max_wait_ms,
            listener=_SeekToStored(self),
            decoder=_records_only,
            parser=_parse_batch,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 4),
            # At-least-once: the broker offsets are committed only after the fetch's
            # transaction committed; an exception seeks back so the fetch comes again.
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )

        @self.subscriber
        async def on_fetch(message: KafkaMessage) -> None:
            raw = message.raw_message
            await self.apply_fetch(list(raw) if isinstance(raw, (list, tuple)) else [raw])

    def stop(self) -> None:
        self._stopping = True

    @property
    def kafka_consumer(self):
        return getattr(self.subscriber, "consumer", None)

    # -- offsets ---------------------------------------------------------------------------

    async def stored_offsets(self) -> dict[tuple[str, int], int]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT topic, partition, next_offset FROM {self.schema}.consumer_offsets WHERE consumer = $1",
                self.name)
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        consumer = self.kafka_consumer
        if consumer is None or not assigned:
            return
        stored = await self.stored_offsets()
        for tp in assigned:
            if (tp.topic, tp.partition) in stored:
                consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)

    async def lag(self) -> int | None:
        """Records on the subscribed partitions not yet applied (0 = caught up)."""
        consumer = self.kafka_consumer
        if consumer is None:
            return None
        assigned = list(consumer.assignment())
        if not assigned:
            return None
        ends = await consumer.end_offsets(assigned)
        stored = await self.stored_offsets()
        return sum(max(0, end - stored.get((tp.topic, tp.partition), 0)) for tp, end in ends.items())

    async def reset(self, conn: asyncpg.Connection) -> None:
        """Forget what this consumer applied (inside the caller's transaction, with its read
        models): the next assignment replays every partition from its start."""
        await conn.execute(f"DELETE FROM {self.schema}.inbox WHERE consumer = $1", self.name)
        await conn.execute(f"DELETE FROM {self.schema}.consumer_offsets WHERE consumer = $1", self.name)

    async def replay(self, reset_effects: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Apply every partition again from its start, staying in the group: in one
        transaction `reset_effects` drops what the applied records produced (read models)
        and `reset` what this consumer applied; then every assigned partition is sought to
        its start. Leaving and rejoining the group instead cost about 18 s on Tansu before
        the first record came again (docs/benchmark.md). A fetch taken before the seek and
        not yet applied is passed over record by record (its records come again): until a
        partition's replay reaches its start, only a record at that start is taken."""
        async with self._applying:
            async with self.pool.acquire() as conn, conn.transaction():
                result = await reset_effects(conn)
                await self.reset(conn)
            consumer = self.kafka_consumer
            assigned = list(consumer.assignment()) if consumer is not None else []
            if assigned:
                starts = await consumer.beginning_offsets(assigned)
                for tp in assigned:
                    consumer.seek(tp, starts[tp])
                self._replay_from = dict(starts)
        return result

    def _not_before_replay(self, records: Sequence[ConsumerRecord]) -> list[ConsumerRecord]:
        fresh = []
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            start = self._replay_from.get(tp)
            if start is not None:
                if r.offset != start:
                    continue  # fetched before the replay's seek
                del self._replay_from[tp]
            fresh.append(r)
        return fresh

    async def restart(self) -> None:
        """Leave and rejoin the group; partitions are sought to the stored offsets again."""
        if self.subscriber is not None:
            await self.subscriber.stop()
            await self.subscriber.start()

    # -- applying a fetch ------------------------------------------------------------------

    def decode(self, record: ConsumerRecord) -> Message | str | None:
        """The record as a message, the reason it is malformed, or None if not wanted."""
        if record.value is None:
            return "empty message value"
        command = record.topic in topics.COMMAND_TOPICS
        try:
            if command:
                env = CommandEnvelope.model_validate_json(record.value)
                if not self.applier.wants(record.topic, env.command_type):
                    return None
                return Message(record, env.command_id, env.command_type, env, parse_command(env))
            env = EventEnvelope.model_validate_json(record.value)
            if not self.applier.wants(record.topic, env.event_type):
                return None
            if self.authenticity is not None and (why := self.authenticity.check(record, env.event_type)):
                return why
            return Message(record, env.event_id, env.event_type, env, parse_event(env))
        except DECODE_ERRORS as exc:
            return f"invalid {'command' if command else 'event'}: {exc}"
        except Exception as exc:  # decoding does no I/O: whatever it raises is the record's own fault
            return f"undecodable {'command' if command else 'event'}: {type(exc).__name__}: {exc}"

    async def apply_fetch(self, records: Sequence[ConsumerRecord]) -> None:
        async with self._applying:
            if self._replay_from:
                records = self._not_before_replay(records)
            if records:
                await self._apply_fetch(records)

    async def _apply_fetch(self, records: Sequence[ConsumerRecord]) -> None:
        messages: list[Message] = []
        malformed: list[tuple[ConsumerRecord, str]] = []
        for record in records:
            decoded = self.decode(record)
            if isinstance(decoded, str):
                malformed.append((record, decoded))
            elif decoded is not None:
                messages.append(decoded)
        attempt = outage = 0
        while True:
            try:
                await self._apply_once(records, messages, malformed, one_by_one=attempt >= self.max_attempts,
                                       attempt=attempt)
                self.last_error = None
                return
            except Exception as exc:
                if self._stopping:
                    raise
                self.last_error = f"{type(exc).__name__}: {exc}"
                if is_infrastructure(exc):
                    outage += 1
                    log.warning("%s: %s; the fetch waits for it and is tried again", self.name, self.last_error)
                    await self._backoff(outage)
                    continue
                attempt += 1
                log.exception("%s: applying a fetch failed (attempt %d of %d)", self.name, attempt,
                              self.max_attempts)
                if attempt == 1:
                    # A record redelivered below the stored offset was handled already (applied,
                    # refused or dead-lettered, which gave its claim back): not tried again.
                    async with self.pool.acquire() as conn:
                        handled = await self._handled_before(conn, records)
                    if handled:
                        records = [r for r in records if id(r) not in handled]
                        messages = [m for m in messages if id(m.record) not in handled]
                        malformed = [(r, why) for r, why in malformed if id(r) not in handled]
                        if not records:
                            self.last_error = None
                            return
                await self._backoff(attempt)

    async def _apply_once(self, records: Sequence[ConsumerRecord], messages: list[Message],
                          malformed: list[tuple[ConsumerRecord, str]], *, one_by_one: bool, attempt: int) -> None:
        outcome = Outcome()
        async with self.pool.acquire() as conn, conn.transaction():
            # Malformed records are claimed too (by where they sit and what they hold), so a
            # redelivered fetch does not dead-letter them twice.
            bad_ids = [_record_id(r) for r, _ in malformed]
            fresh = await self._claim(conn, [m.message_id for m in messages] + bad_ids)
            outcome.dead_letters += [(r, why) for (r, why), i in zip(malformed, bad_ids) if i in fresh]
            todo = []
            for m in messages:
                if m.message_id in fresh:
                    fresh.discard(m.message_id)  # the same id twice in one fetch applies once
                    todo.append(m)
            if not one_by_one:
                await self.applier.apply(conn, todo, outcome)
            else:
                for m in todo:
                    try:
                        async with conn.transaction():
                            await self.applier.apply(conn, [m], outcome)
                    except Exception as exc:
                        if is_infrastructure(exc):
                            raise
                        outcome.dead_letters.append(
                            (m.record, f"handler failed {attempt} times: {type(exc).__name__}: {exc}"))
            await self._release(conn, todo, outcome)
            await self._save_offsets(conn, records)
            # Before the commit: a dead letter the broker did not take fails the fetch, which
            # comes again; one taken twice (commit failed after) is a harmless duplicate.
            for record, reason in outcome.dead_letters:
                await self.dead_letters.send(record, reason)
        self.applied += len(todo)
        # Counted once committed, so a fetch that comes again does not count its records twice.
        self.refused_unauthentic += sum(reason.startswith(UNAUTHENTIC) for _, reason in outcome.dead_letters)

    async def _claim(self, conn: asyncpg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        rows = await conn.fetch(
            f"INSERT INTO {self.schema}.inbox (consumer, message_id) SELECT $1, unnest($2::uuid[])"
            " ON CONFLICT DO NOTHING RETURNING message_id", self.name, ids)
        return {r["message_id"] for r in rows}

    async def _release(self, conn: asyncpg.Connection, applied: Sequence[Message], outcome: Outcome) -> None:
        """A decoded message that is dead-lettered was not applied: its claim is given back,
        so the inbox holds what was applied (or refused) and the dead letter, once sent back
        by `celltrail deadletters replay` after a fix, is applied under its own id, once. A
        redelivered record below the stored offset was dead-lettered already: not again."""
        ids = {id(m.record): m.message_id for m in applied}
        if not any(id(r) in ids for r, _ in outcome.dead_letters):
            return
        handled = await self._handled_before(conn, [r for r, _ in outcome.dead_letters if id(r) in ids])
        outcome.dead_letters[:] = [(r, why) for r, why in outcome.dead_letters if id(r) not in handled]
        released = [ids[id(r)] for r, _ in outcome.dead_letters if id(r) in ids]
        if released:
            await conn.execute(f"DELETE FROM {self.schema}.inbox WHERE consumer = $1 AND message_id = ANY($2::uuid[])",
                               self.name, released)

    async def _handled_before(self, conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> set[int]:
        """`id()`s of the records below their partition's stored next offset: a redelivery
        (a fetch taken before a seek, or the broker sending a batch again)."""
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {self.schema}.consumer_offsets WHERE consumer = $1",
            self.name)
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        return {id(r) for r in records if r.offset < stored.get((r.topic, r.partition), 0)}

    async def _save_offsets(self, conn: asyncpg.Connection, records: Sequence[ConsumerRecord]) -> None:
        last: dict[tuple[str, int], int] = {}
        for r in records:
            last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
        if not last:
            return
        keys = list(last)
        await conn.execute(
            f"INSERT INTO {self.schema}.consumer_offsets (consumer, topic, partition, next_offset)"
            " SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)"
            # Never backwards: a fetch fetched before a seek (a rebalance) may be older than
            # what is stored; only a reset (rebuild, new broker) deletes the rows.
            " ON CONFLICT (consumer, topic, partition) DO UPDATE"
            " SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset)",
            self.name, [k[0] for k in keys], [k[1] for k in keys], [last[k] + 1 for k in keys])

    async def _backoff(self, attempt: int) -> None:
        await asyncio.sleep(min(self.max_backoff_seconds, 0.2 * 2 ** min(attempt, 10)))

