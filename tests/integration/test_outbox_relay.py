"""The outbox relay against real PostgreSQL and the real broker over TCP.

The trap (Marten, Axon): a bigserial position is taken at INSERT, not at COMMIT. A slow
transaction holding a lower position can commit after a fast one with a higher position;
a relay that has already advanced past the higher one never sees the lower one.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timezone

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.envelope import EventEnvelope
from contracts.events import PatientRegistered
from infra.runtime.access.signing import HEADER_PROOF, EventVerifier, RecordSigner, parse_public_keys
from infra.runtime.eventstore import Append, EventStore, Inbox, Metadata, NewEvent
from infra.runtime.host import ServiceSpec, TaskHealth, build_app, supervise
from infra.runtime.messaging import ensure_topics, new_producer
from infra.runtime.relay import OutboxRelay, rewind
from infra.runtime.settings import Settings
from tests.access import ADMIN, PUBLIC_KEY, bearer, provisioned

from tests.conftest import TEST_SERVICE_KEYS, signing_settings

pytestmark = pytest.mark.integration

TOPIC = "celltrail.enrollment.v1"
META = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor="test")
STORE = EventStore("enrollment")


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


async def publish(relay: OutboxRelay, expected: int, timeout: float = 10.0) -> int:
    """Run the relay until it has sent `expected` events, then once more (so any extra shows):
    its horizon also waits for transactions other sessions on the server happen to run."""
    sent, deadline = 0, asyncio.get_running_loop().time() + timeout
    while sent < expected and asyncio.get_running_loop().time() < deadline:
        sent += await relay.publish_pending()
        await asyncio.sleep(0.02)
    return sent + await relay.publish_pending()


class NoHorizon:
    """Treats every visible row as final: the plain `position > checkpoint` outbox."""

    pending = False

    async def advance(self, conn) -> int:
        return 2 ** 62


@pytest.fixture
async def producer(kafka):
    await ensure_topics(kafka, 3)
    p = new_producer(kafka)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@pytest.fixture
def relay(pool, producer):
    return OutboxRelay(pool, EventStore("enrollment"), TOPIC, producer)


@pytest.fixture
def unguarded_relay(pool, producer):
    return OutboxRelay(pool, EventStore("enrollment"), TOPIC, producer, horizon=NoHorizon())


async def append(pool, stream: str, version: int, n: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await STORE.append(conn, stream, version, [event(n)], META)


class HeldAppend:
    """A transaction that appended (taking the next position) and stays open until commit()."""

    def __init__(self, pool) -> None:
        self.pool = pool

    async def __aenter__(self) -> "HeldAppend":
        self.conn = await self.pool.acquire()
        self.tx, self.committed = self.conn.transaction(), False
        await self.tx.start()
        [self.stored] = await STORE.append(self.conn, "s-held", 0, [event(0xE1D)], META)
        return self

    async def commit(self) -> None:
        await self.tx.commit()
        self.committed = True

    async def __aexit__(self, *exc) -> None:
        if not self.committed:
            await self.tx.rollback()
        await self.pool.release(self.conn)


class TestCommitOrder:
    async def test_without_the_horizon_a_relay_skips_a_lower_position_committed_late(self, pool, unguarded_relay,
                                                                                      kafka):
        """Reproduces the trap, so the next test's guarantee is shown to be the horizon's doing."""
        async with HeldAppend(pool) as held:                       # lower position, still open
            await asyncio.wait_for(append(pool, "s-2", 0, 2), 5)   # higher position, commits first
            assert await unguarded_relay.publish_pending() == 1    # checkpoint moves past the held position
            await held.commit()
        assert await unguarded_relay.publish_pending() == 0
        assert [e.stream_id for e in await published(kafka, 1)] == ["s-2"]  # s-held was lost

    async def test_with_the_horizon_a_lower_position_committed_late_is_never_skipped(self, pool, relay, kafka):
        async with HeldAppend(pool) as held:
            await asyncio.wait_for(append(pool, "s-2", 0, 2), 5)   # a different stream does not wait
            assert await relay.publish_pending() == 0               # s-2 is held back behind the open position
            await held.commit()
        assert await publish(relay, 2) == 2
        got = await published(kafka, 2)
        assert [e.stream_id for e in sorted(got, key=lambda e: e.position)] == ["s-held", "s-2"]

    async def test_a_stream_is_published_in_version_order_when_its_later_writer_is_the_older_transaction(
            self, pool, relay, kafka):
        """Transaction ids are assigned at the first write: ordering by them would put v2 before v1."""
        async with pool.acquire() as older, older.transaction():
            await Inbox("enrollment", "test").claim(older, uuid.uuid4())  # takes the lower transaction id
            await append(pool, "s-1", 0, 1)                               # v1, by a younger transaction
            await STORE.append(older, "s-1", 1, [event(1)], META)         # v2, by the older one
        assert await publish(relay, 2) == 2
        got = await published(kafka, 2)                                   # one subject: one partition
        assert [e.stream_version for e in got] == [1, 2]

    async def test_32_concurrent_writers_and_a_held_lower_position_lose_nothing(self, database_url, relay, kafka):
        writers, rounds = 32, 3
        stop = asyncio.Event()
        runner = asyncio.create_task(relay.run(stop))
        wide = await asyncpg.create_pool(database_url, min_size=writers + 1, max_size=writers + 1)
        try:
            async with HeldAppend(wide) as held:
                for version in range(rounds):
                    everyone_appended = asyncio.Barrier(writers)

                    async def writer(n: int) -> None:
                        async with wide.acquire() as conn, conn.transaction():
                            await STORE.append(conn, f"s-{n}", version, [event(n)], META)
                            await everyone_appended.wait()             # all 32 open at once
                            await asyncio.sleep(random.random() / 50)  # then commit in any order

                    await asyncio.wait_for(asyncio.gather(*(writer(n) for n in range(writers))), 30)
                await asyncio.sleep(1.0)                               # the relay runs meanwhile
                assert await published(kafka, 1, timeout=0.5) == []    # nothing passes the open position
                assert (await relay.status())["lag"] > writers * rounds
                await held.commit()
            got = await published(kafka, 1 + writers * rounds, timeout=20)
        finally:
            stop.set()
            await runner
            await wide.close()
        async with relay.pool.acquire() as conn:
            stored = await conn.fetch("SELECT event_id, position FROM enrollment.events")
        assert sorted(e.event_id for e in got) == sorted(r["event_id"] for r in stored)  # each exactly once
        assert min(got, key=lambda e: e.position).stream_id == "s-held"
        by_stream = {}
        for e in got:
            by_stream.setdefault(e.stream_id, []).append(e.stream_version)
        assert all(v == sorted(v) for v in by_stream.values())
        assert (await relay.status())["lag"] == 0


async def insert_raw(pool, stream: str, *, occurred_at: str = "2025-01-06 09:00:00+00", payload: str = "{}") -> int:
    """A row as no contract would write it, past the store's checks."""
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "INSERT INTO enrollment.events (event_id, stream_id, stream_version, event_type, schema_version,"
            " payload, occurred_at, correlation_id, actor) VALUES ($1, $2, 1, 'enrollment.PatientRegistered', 1,"
            " $3::jsonb, $4::text::timestamptz, $5, 'legacy') RETURNING position",
            uuid.uuid4(), stream, payload, occurred_at, uuid.uuid4())


class TestQuarantine:
    @pytest.mark.parametrize("occurred_at, error", [("-infinity", "ValidationError"),
                                                    ("0001-01-01 00:00:00+01", "OverflowError")],
                             ids=["reads-back-naive", "driver-cannot-decode"])
    async def test_a_row_stored_before_the_time_check_is_quarantined_and_the_rest_keep_flowing(
            self, pool, relay, kafka, caplog, occurred_at, error):
        async with pool.acquire() as conn:  # a store written before migration 0002
            await conn.execute("ALTER TABLE enrollment.events DROP CONSTRAINT events_occurred_at_in_range")
        await append(pool, "s-1", 0, 1)
        bad = await insert_raw(pool, "s-bad", occurred_at=occurred_at)
        await append(pool, "s-2", 0, 2)
        assert await publish(relay, 2) == 2
        assert sorted(e.stream_id for e in await published(kafka, 2)) == ["s-1", "s-2"]
        async with pool.acquire() as conn:
            [row] = await conn.fetch("SELECT relay, position, error FROM enrollment.relay_quarantine")
        assert (row["relay"], row["position"]) == (relay.name, bad) and row["error"].startswith(error)
        assert f"quarantined position {bad}" in caplog.text
        assert (await relay.status())["quarantined"] == 1 and (await relay.status())["lag"] == 0

    async def test_a_row_too_large_for_the_broker_is_quarantined_and_the_rest_keep_flowing(self, pool, relay, kafka):
        await append(pool, "s-1", 0, 1)
        big = await insert_raw(pool, "s-big", payload='{"blob": "%s"}' % ("x" * 2_000_000))
        await append(pool, "s-2", 0, 2)
        assert await publish(relay, 2) == 2
        assert sorted(e.stream_id for e in await published(kafka, 2)) == ["s-1", "s-2"]
        async with pool.acquire() as conn:
            error = await conn.fetchval("SELECT error FROM enrollment.relay_quarantine WHERE position = $1", big)
        assert error.startswith("MessageSizeTooLargeError")


async def eventually(probe, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await probe()) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return result


class TestNeverDiesSilently:
    async def test_a_relay_task_that_crashes_is_logged_restarted_and_publishes(self, pool, relay, kafka, caplog):
        crashes = []
        original = relay.publish_pending

        async def crashes_once() -> int:
            if not crashes:
                crashes.append(1)
                raise RuntimeError("relay bug")
            return await original()

        relay.publish_pending = crashes_once
        health, stop = TaskHealth("enrollment-relay"), asyncio.Event()
        task = asyncio.create_task(supervise(health, relay.run, stop, backoff=0.05))
        try:
            await append(pool, "s-1", 0, 1)
            assert [e.stream_id for e in await published(kafka, 1)] == ["s-1"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)
        assert health.restarts == 1 and "RuntimeError: relay bug" in caplog.text

    @pytest.fixture
    async def service(self, database_url, kafka, pool):
        """The enrollment host with no subscriptions: its relay, /health and /status."""
        spec = ServiceSpec(name="enrollment")
        app = build_app(spec, Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                       CELLTRAIL_RELAY_POLL_SECONDS=0.05, CELLTRAIL_TOKEN_PUBLIC_KEY=PUBLIC_KEY,
                                       **signing_settings("enrollment")))
        async with pool.acquire() as conn:
            await provisioned(conn, ADMIN)  # /status is for who runs the network
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://enrollment", headers=bearer(ADMIN)) as client:
            yield client

    async def test_health_and_status_report_the_relays_lag_until_it_has_published(self, pool, service):
        async with HeldAppend(pool) as held:
            await append(pool, "s-2", 0, 2)  # committed, but behind the open position
            status, health = (await service.get("/status")).json(), await service.get("/health")
            assert [(r["relay"], r["lag"]) for r in status["relays"]] == [("enrollment->celltrail.enrollment.v1", 2)]
            assert health.status_code == 200 and health.json()["relays"][0]["lag"] == 2
            await held.commit()

        async def caught_up() -> bool:
            return (await service.get("/status")).json()["relays"][0]["lag"] == 0

        assert await eventually(caught_up)

    async def test_health_fails_while_the_relay_task_is_crashing(self, service, monkeypatch):
        async def broken(self) -> int:
            raise RuntimeError("relay bug")

        monkeypatch.setattr(OutboxRelay, "publish_pending", broken)

        async def unhealthy() -> httpx.Response | None:
            response = await service.get("/health")
            return response if response.status_code == 503 else None

        response = await eventually(unhealthy)
        assert response is not None and response.json()["status"] == "failing"
        [task] = [t for t in response.json()["tasks"] if t["name"] == "enrollment-relay"]
        assert task["last_error"] == "RuntimeError: relay bug" and task["restarts"] >= 1


class TestRepublish:
    async def test_a_rewound_relay_republishes_the_whole_history_with_the_same_event_ids(self, pool, relay, kafka):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "s-1", 0, [event(1), event(2)], META)
        assert await publish(relay, 2) == 2
        async with pool.acquire() as conn:
            await rewind(conn, "enrollment")
        assert await publish(relay, 2) == 2
        got = await published(kafka, 4)
        assert len(got) == 4 and len({e.event_id for e in got}) == 2

    async def test_events_carry_the_subject_as_key_and_the_event_id_as_header(self, pool, relay, kafka):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            [stored] = await store.append(conn, "s-1", 0, [event(7)], META)
        await publish(relay, 1)
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=kafka, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 10)
        finally:
            await consumer.stop()
        assert record.key == b"S-000000000007"
        assert dict(record.headers)["celltrail-message-id"] == str(stored.event_id).encode()


class TestSignedBatches:
    async def test_a_relay_signs_each_batch_once_and_every_record_verifies_on_its_own(self, pool, producer, kafka):
        """Issue 8 item 4 at issue 7's cost: one Ed25519 signature per batch of records (a
        Merkle root), each record verifiable alone with its inclusion proof."""
        relay = OutboxRelay(pool, EventStore("enrollment"), TOPIC, producer,
                            signer=RecordSigner("enrollment", TEST_SERVICE_KEYS["enrollment"]))
        async with pool.acquire() as conn, conn.transaction():
            await EventStore("enrollment").append_many(
                conn, [Append(f"s-{n}", 0, [event(n)], META) for n in range(150)])
        assert await publish(relay, 150) == 150
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=kafka, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        records = []
        try:
            while len(records) < 150:
                for batch in (await consumer.getmany(timeout_ms=2000)).values():
                    records += batch
        finally:
            await consumer.stop()
        verifier = EventVerifier(parse_public_keys(signing_settings("enrollment")["CELLTRAIL_SERVICE_PUBLIC_KEYS"]))
        assert all(dict(r.headers)[HEADER_PROOF] for r in records)
        assert [verifier.check(r, "enrollment.PatientRegistered") for r in records] == [None] * 150
        assert verifier.signatures_verified == 3  # 64 + 64 + 22, whatever partition each record went to
        # each record alone, as a consumer that sees only its own partition would
        for r in records[::37]:
            assert EventVerifier(verifier.public_keys).check(r, "enrollment.PatientRegistered") is None
