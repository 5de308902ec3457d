"""Kafka plumbing shared by every service: producers, topic set-up, and the consumer
pipeline that gives at-least-once delivery an exactly-once effect.

Per message: decode the envelope (a malformed one goes to the dead-letter topic with the
reason and its original bytes); in one PostgreSQL transaction claim its id in the inbox and
apply it; commit the Kafka offset only after that transaction committed (FastStream
`AckPolicy.NACK_ON_ERROR`: ack after the handler returns, seek back on an exception).
An exception that keeps failing the same record `max_attempts` times is dead-lettered
rather than blocking its partition for ever.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import TypeAdapter, ValidationError

from contracts import topics
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.errors import CommandRefused
from contracts.events import CommandRejected
from contracts.ids import SubjectId
from contracts.registry import UnknownMessageTypeError, UnsupportedSchemaVersionError, parse_command, parse_event
from infra.runtime.eventstore import EventStore, Inbox, Metadata, NewEvent

log = logging.getLogger(__name__)

DECODE_ERRORS = (ValidationError, UnknownMessageTypeError, UnsupportedSchemaVersionError, ValueError)


def new_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # acks=all and no idempotence: Tansu has no InitProducerId. Duplicates from retries are
    # absorbed by every consumer's inbox; ordering per key is kept by one in-flight batch.
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False,
                            max_request_size=1_048_576, linger_ms=2)


async def ensure_topics(bootstrap_servers: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=1 if t == topics.DEAD_LETTER else partitions, replication_factor=1)
                   for t in topics.ALL_TOPICS if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def _header(record: ConsumerRecord, name: str) -> str | None:
    for k, v in record.headers or ():
        if k == name:
            return v.decode(errors="replace")
    return None


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer, consumer: str) -> None:
        self.producer, self.consumer = producer, consumer

    async def send(self, record: ConsumerRecord, reason: str) -> None:
        """Returns only once the broker acknowledged the dead letter."""
        headers = list(record.headers or ()) + [
            (topics.HEADER_DLQ_REASON, reason[:4000].encode()),
            (topics.HEADER_DLQ_SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
            (topics.HEADER_DLQ_CONSUMER, self.consumer.encode()),
        ]
        await self.producer.send_and_wait(topics.DEAD_LETTER, value=record.value, key=record.key, headers=headers)
        log.warning("dead-lettered %s/%s/%s: %s", record.topic, record.partition, record.offset, reason)


EventHandler = Callable[[asyncpg.Connection, EventEnvelope, object], Awaitable[None]]
CommandHandler = Callable[[asyncpg.Connection, CommandEnvelope, object], Awaitable[None]]


@dataclass
class Pipeline:
    """Applies records from one consumer group of one service."""

    pool: asyncpg.Pool
    inbox: Inbox
    dead_letters: DeadLetters
    store: EventStore
    event_handlers: dict[str, EventHandler] = field(default_factory=dict)
    command_handlers: dict[str, CommandHandler] = field(default_factory=dict)
    max_attempts: int = 5
    _attempts: dict[tuple[str, int, int], int] = field(default_factory=dict)

    async def process(self, record: ConsumerRecord) -> None:
        where = (record.topic, record.partition, record.offset)
        try:
            await self._process(record)
        except Exception as exc:  # infrastructure or programming error: retry, then dead-letter
            n = self._attempts.get(where, 0) + 1
            self._attempts[where] = n
            if n < self.max_attempts:
                raise  # NACK: the record is redelivered
            await self.dead_letters.send(record, f"handler failed {n} times: {type(exc).__name__}: {exc}")
        self._attempts.pop(where, None)

    async def _process(self, record: ConsumerRecord) -> None:
        if record.value is None:
            await self.dead_letters.send(record, "empty message value")
            return
        if record.topic in topics.COMMAND_TOPICS:
            await self._process_command(record)
        else:
            await self._process_event(record)

    async def _process_event(self, record: ConsumerRecord) -> None:
        try:
            env = EventEnvelope.model_validate_json(record.value)
            handler = self.event_handlers.get(env.event_type)
            payload = parse_event(env) if handler else None
        except DECODE_ERRORS as exc:
            await self.dead_letters.send(record, f"invalid event: {exc}")
            return
        if handler is None:
            return  # an event this service does not need
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.inbox.claim(conn, env.event_id):
                return
            try:
                async with conn.transaction():  # savepoint: a refusal undoes only the handler's writes
                    await handler(conn, env, payload)
            except CommandRefused as exc:
                # An upstream fact this service cannot apply is an inconsistency to look at,
                # not something to drop: the original goes to the dead-letter topic.
                await self.dead_letters.send(record, f"event refused: {exc}")

    async def _process_command(self, record: ConsumerRecord) -> None:
        try:
            env = CommandEnvelope.model_validate_json(record.value)
            command = parse_command(env)
        except DECODE_ERRORS as exc:
            await self.dead_letters.send(record, f"invalid command: {exc}")
            return
        handler = self.command_handlers.get(env.command_type)
        if handler is None:
            await self.dead_letters.send(record, f"command {env.command_type!r} is not handled by {self.inbox.consumer}")
            return
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.inbox.claim(conn, env.command_id):
                return
            try:
                async with conn.transaction():
                    await handler(conn, env, command)
            except CommandRefused as exc:
                await record_rejection(conn, self.store, env, exc)


async def record_rejection(conn: asyncpg.Connection, store: EventStore, env: CommandEnvelope,
                           exc: CommandRefused) -> None:
    subject = env.payload.get("subject_id")
    rejected = CommandRejected(command_id=str(env.command_id), command_type=env.command_type,
                               reason_code=exc.code, reason=exc.reason,
                               subject_id=subject if _is_subject_id(subject) else None)
    await store.append(conn, f"command-{env.command_id}", 0,
                       [NewEvent(rejected, occurred_at=datetime.now(timezone.utc), subject_id=rejected.subject_id)],
                       Metadata(correlation_id=env.correlation_id, causation_id=env.command_id, actor=env.actor))


_SUBJECT_ID = TypeAdapter(SubjectId)


def _is_subject_id(value: object) -> bool:
    try:
        _SUBJECT_ID.validate_python(value)
        return True
    except ValidationError:
        return False


def command_metadata(env: CommandEnvelope) -> Metadata:
    return Metadata(correlation_id=env.correlation_id, causation_id=env.command_id, actor=env.actor)


def event_metadata(env: EventEnvelope, actor: str) -> Metadata:
    return Metadata(correlation_id=env.correlation_id, causation_id=env.event_id, actor=actor)


def stable_id(*parts: object) -> uuid.UUID:
    """A deterministic event id, so a re-derived event (e.g. after a rebuild) is recognised."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "celltrail:" + ":".join(str(p) for p in parts))
