"""Transactional outbox relay: publishes a service's committed events to its Kafka topic.

The events table is the outbox: an event exists only once its transaction committed, and
the store's table lock (see eventstore.py) makes positions visible in commit order, so the
relay reads `position > checkpoint` in order and never skips one. It waits for the broker's
acknowledgement (acks=all) of a whole batch before it advances the checkpoint: a crash in
between republishes the batch (at-least-once), which idempotent consumers absorb.
Only one relay per store runs at a time (a PostgreSQL advisory lock); others stand by.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from contracts import topics
from contracts.envelope import EventEnvelope
from infra.runtime.eventstore import EventStore

log = logging.getLogger(__name__)


def kafka_headers(env: EventEnvelope) -> list[tuple[str, bytes]]:
    return [
        (topics.HEADER_MESSAGE_ID, str(env.event_id).encode()),
        (topics.HEADER_MESSAGE_TYPE, env.event_type.encode()),
        (topics.HEADER_SCHEMA_VERSION, str(env.schema_version).encode()),
    ]


def encode_event(env: EventEnvelope) -> bytes:
    return env.model_dump_json().encode()


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, store: EventStore, topic: str, producer: AIOKafkaProducer,
                 *, batch_size: int = 500, poll_seconds: float = 0.5) -> None:
        self.pool, self.store, self.topic, self.producer = pool, store, topic, producer
        self.batch_size, self.poll_seconds = batch_size, poll_seconds
        self.name = f"{store.schema}->{topic}"
        self._lock_key = zlib.crc32(self.name.encode())
        self._wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish everything committed past the checkpoint; return how many were sent."""
        sent = 0
        while True:
            async with self.pool.acquire() as conn:
                checkpoint = await conn.fetchval(
                    f"SELECT position FROM {self.store.schema}.relay_checkpoint WHERE relay = $1", self.name)
                if checkpoint is None:
                    await conn.execute(
                        f"INSERT INTO {self.store.schema}.relay_checkpoint (relay, position) VALUES ($1, 0)"
                        " ON CONFLICT DO NOTHING", self.name)
                    checkpoint = 0
                batch = await self.store.read_after(conn, checkpoint, self.batch_size)
                if not batch:
                    return sent
                futures = [
                    await self.producer.send(self.topic, value=encode_event(e), key=e.key, headers=kafka_headers(e))
                    for e in batch
                ]
                await asyncio.gather(*futures)  # every record acknowledged by the broker
                # Compare-and-set: `celltrail republish` may have rewound the checkpoint meanwhile.
                await conn.execute(
                    f"UPDATE {self.store.schema}.relay_checkpoint SET position = $2"
                    " WHERE relay = $1 AND position = $3", self.name, batch[-1].position, checkpoint)
                sent += len(batch)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self.pool.acquire()
        try:
            while not stop.is_set():
                if await listener.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                    break
                await asyncio.sleep(1.0)  # another instance holds the relay: stand by
            if stop.is_set():
                return
            await listener.add_listener(self.store.channel, self._on_notify)
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.publish_pending()
                except (OSError, asyncpg.PostgresError, KafkaError) as exc:
                    # Nothing is lost: unpublished events stay past the checkpoint. Retry.
                    log.warning("relay %s: publish failed, retrying: %s", self.name, exc)
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=self.poll_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        finally:
            try:
                await listener.remove_listener(self.store.channel, self._on_notify)
                await listener.execute("SELECT pg_advisory_unlock_all()")
            finally:
                await self.pool.release(listener)


async def rewind(conn: asyncpg.Connection, schema: str) -> None:
    """Make the store's relay republish its whole history (for a broker that lost its log);
    consumers deduplicate by event id. The NOTIFY wakes a running relay at once."""
    await conn.execute(f"UPDATE {schema}.relay_checkpoint SET position = 0")
    await conn.execute("SELECT pg_notify($1, '')", f"{schema}_events")
