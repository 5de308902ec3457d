"""The projection's consumer: every event topic, partitions assigned explicitly, offsets
stored in PostgreSQL in the same transaction as the read models they produced. That gives
an exactly-once effect without the broker's group offsets, and makes a rebuild one
transaction (truncate read models and offsets) followed by a seek to the beginning."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from contracts import topics
from contracts.envelope import EventEnvelope
from contracts.registry import UnknownMessageTypeError, UnsupportedSchemaVersionError, parse_event
from infra.runtime.host import Runtime
from infra.runtime.messaging import DeadLetters
from services.projection.adapters.outcomes import StoredOutcomes
from services.projection.adapters.read_models import PgReadModels
from services.projection.application.handlers import project_batch

log = logging.getLogger(__name__)
DECODE_ERRORS = (ValidationError, UnknownMessageTypeError, UnsupportedSchemaVersionError, ValueError)


class ProjectionRunner:
    def __init__(self, rt: Runtime, batch_size: int = 1000, max_attempts: int = 5) -> None:
        self.rt = rt
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.dead_letters = DeadLetters(rt.producer, "projection")
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []
        self._lock = asyncio.Lock()
        self.ready = asyncio.Event()

    async def _assign(self) -> None:
        assert self.consumer is not None
        await self.consumer.topics()  # refresh metadata
        parts = []
        for topic in topics.EVENT_TOPICS:
            for p in sorted(self.consumer.partitions_for_topic(topic) or ()):
                parts.append(TopicPartition(topic, p))
        self.partitions = parts
        self.consumer.assign(parts)
        async with self.rt.pool.acquire() as conn:
            stored = await PgReadModels(conn).offsets()
        for tp in parts:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await self.consumer.seek_to_beginning(tp)

    async def run(self, stop: asyncio.Event) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.rt.settings.kafka_bootstrap_servers,
                                         enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
                                         fetch_max_wait_ms=self.rt.settings.fetch_max_wait_ms)
        await self.consumer.start()
        try:
            await self._assign()
            self.ready.set()
            failures = 0
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=200, max_records=self.batch_size)
                if not batch:
                    continue
                async with self._lock:
                    try:
                        if failures < self.max_attempts:
                            await self._apply_batch(batch)
                        else:
                            await self._apply_one_by_one(batch)
                        failures = 0
                    except Exception:
                        # Nothing was committed: rewind to the stored offsets and try again;
                        # after max_attempts, record by record, dead-lettering what fails.
                        failures += 1
                        log.exception("projection batch failed (attempt %d); retrying", failures)
                        await asyncio.sleep(min(5.0, 0.2 * 2 ** failures))
                        await self._assign()
        finally:
            await self.consumer.stop()

    async def _apply_batch(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        items = []
        for records in batch.values():
            for record in records:
                try:
                    env = EventEnvelope.model_validate_json(record.value or b"")
                    items.append((env, parse_event(env)))
                except DECODE_ERRORS as exc:
                    await self.dead_letters.send(record, f"invalid event: {exc}")
        async with self.rt.pool.acquire() as conn, conn.transaction():
            read_models = PgReadModels(conn)
            await project_batch(read_models, StoredOutcomes(conn, self.rt.store), items)
            for tp, records in batch.items():
                await read_models.save_offset(tp.topic, tp.partition, records[-1].offset + 1)

    async def _apply_one_by_one(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        for tp, records in batch.items():
            for record in records:
                try:
                    await self._apply_batch({tp: [record]})
                except Exception as exc:
                    await self.dead_letters.send(record, f"projection failed: {type(exc).__name__}: {exc}")
                    async with self.rt.pool.acquire() as conn:
                        await PgReadModels(conn).save_offset(tp.topic, tp.partition, record.offset + 1)

    async def rebuild(self) -> int:
        """Drop the read models and replay every event topic from its start. Returns how
        many subject views were dropped. Outcome events are not re-published: their ids
        are derived from their content and the projection's event store keeps them."""
        async with self._lock:
            async with self.rt.pool.acquire() as conn, conn.transaction():
                dropped = await conn.fetchval("SELECT count(*) FROM projection.subject_state")
                await PgReadModels(conn).clear()
            assert self.consumer is not None
            await self._assign()  # no stored offsets now: every partition from its start
            return dropped

    async def lag(self) -> int:
        """Events on the topics not yet applied (0 = caught up)."""
        assert self.consumer is not None
        ends = await self.consumer.end_offsets(self.partitions)
        async with self.rt.pool.acquire() as conn:
            stored = await PgReadModels(conn).offsets()
        return sum(max(0, end - stored.get((tp.topic, tp.partition), 0)) for tp, end in ends.items())
