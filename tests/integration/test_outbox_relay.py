"""The outbox relay against real PostgreSQL and the real broker over TCP.

The trap (Marten, Axon): a bigserial position is taken at INSERT, not at COMMIT. A slow
transaction holding a lower position can commit after a fast one with a higher position;
a relay that has already advanced past the higher one never sees the lower one.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest
from aiokafka import AIOKafkaConsumer

from contracts.envelope import EventEnvelope
from contracts.events import PatientRegistered
from infra.runtime.eventstore import EventStore, Metadata, NewEvent
from infra.runtime.messaging import ensure_topics, new_producer
from infra.runtime.relay import OutboxRelay, rewind

pytestmark = pytest.mark.integration

TOPIC = "celltrail.enrollment.v1"
META = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor="test")


def event(n: int) -> NewEvent:
    sid = f"S-{n:012X}"
    return NewEvent(PatientRegistered(subject_id=sid, centre_id="IT-BG-01"),
                    occurred_at=datetime.now(timezone.utc), subject_id=sid)


async def published(kafka: str, expected: int, timeout: float = 10.0) -> list[EventEnvelope]:
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=kafka, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out: list[EventEnvelope] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += [EventEnvelope.model_validate_json(r.value) for r in records]
        for records in (await consumer.getmany(timeout_ms=300)).values():  # nothing extra
            out += [EventEnvelope.model_validate_json(r.value) for r in records]
    finally:
        await consumer.stop()
    return out


@pytest.fixture
async def relay(pool, kafka):
    await ensure_topics(kafka, 3)
    producer = new_producer(kafka)
    await producer.start()
    try:
        yield OutboxRelay(pool, EventStore("enrollment"), TOPIC, producer)
    finally:
        await producer.stop()


async def naive_insert(conn, n: int) -> int:
    """An append that skips the store's table lock, as a plain bigserial outbox would."""
    e = event(n)
    return await conn.fetchval(
        "INSERT INTO enrollment.events (event_id, stream_id, stream_version, event_type, schema_version,"
        " subject_id, payload, occurred_at, correlation_id, actor) VALUES ($1, $2, 1, $3, 1, $4, $5::jsonb, now(), $6,"
        " 'naive') RETURNING position", uuid.uuid4(), f"s-{n}", e.payload.event_type, e.subject_id,
        e.payload.model_dump_json(), uuid.uuid4())


class TestCommitOrder:
    async def test_without_the_table_lock_positions_commit_out_of_order_and_a_relay_skips_one(self, pool, relay, kafka):
        """Reproduces the trap, so the next test's guarantee is shown to be the lock's doing."""
        slow, fast = await pool.acquire(), await pool.acquire()
        try:
            slow_tx = slow.transaction()
            await slow_tx.start()
            low = await naive_insert(slow, 1)           # takes the lower position, stays open
            async with fast.transaction():
                high = await naive_insert(fast, 2)      # higher position, commits first
            assert low < high
            assert await relay.publish_pending() == 1   # relay advances its checkpoint to `high`
            await slow_tx.commit()                      # `low` becomes visible behind the checkpoint
            assert await relay.publish_pending() == 0
        finally:
            await pool.release(slow)
            await pool.release(fast)
        assert [e.stream_id for e in await published(kafka, 1)] == ["s-2"]  # s-1 was lost

    async def test_with_the_store_a_slow_transaction_holding_a_lower_position_is_never_skipped(self, pool, relay, kafka):
        store = EventStore("enrollment")
        slow = await pool.acquire()
        try:
            slow_tx = slow.transaction()
            await slow_tx.start()
            await store.append(slow, "s-1", 0, [event(1)], META)       # lower position, still open

            async def fast_writer() -> None:
                async with pool.acquire() as conn, conn.transaction():
                    await store.append(conn, "s-2", 0, [event(2)], META)

            fast = asyncio.create_task(fast_writer())
            await asyncio.sleep(0.3)
            assert not fast.done(), "the concurrent append must wait for the open one to commit"
            assert await relay.publish_pending() == 0                  # nothing committed yet
            await slow_tx.commit()
            await asyncio.wait_for(fast, 5)
        finally:
            await pool.release(slow)
        assert await relay.publish_pending() == 2
        got = await published(kafka, 2)
        assert sorted(e.stream_id for e in got) == ["s-1", "s-2"]
        assert min(got, key=lambda e: e.position).stream_id == "s-1"  # the slow one kept the lower position

    async def test_many_concurrent_writers_lose_nothing_while_the_relay_runs(self, pool, relay, kafka):
        store = EventStore("enrollment")
        stop = asyncio.Event()
        runner = asyncio.create_task(relay.run(stop))

        async def writer(n: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await store.append(conn, f"s-{n}", 0, [event(n)], META)
                await asyncio.sleep(0.01 * (n % 3))  # vary how long transactions stay open

        await asyncio.gather(*(writer(n) for n in range(60)))
        got = await published(kafka, 60)
        stop.set()
        await runner
        assert sorted(e.stream_id for e in got) == sorted(f"s-{n}" for n in range(60))
        assert [e.position for e in got if e.key == got[0].key] == sorted(e.position for e in got if e.key == got[0].key)


class TestRepublish:
    async def test_a_rewound_relay_republishes_the_whole_history_with_the_same_event_ids(self, pool, relay, kafka):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "s-1", 0, [event(1), event(2)], META)
        assert await relay.publish_pending() == 2
        async with pool.acquire() as conn:
            await rewind(conn, "enrollment")
        assert await relay.publish_pending() == 2
        got = await published(kafka, 4)
        assert len(got) == 4 and len({e.event_id for e in got}) == 2

    async def test_events_carry_the_subject_as_key_and_the_event_id_as_header(self, pool, relay, kafka):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            [stored] = await store.append(conn, "s-1", 0, [event(7)], META)
        await relay.publish_pending()
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=kafka, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        assert record.key == b"S-000000000007"
        assert dict(record.headers)["celltrail-message-id"] == str(stored.event_id).encode()
