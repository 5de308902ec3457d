"""The tamper-evident log against real PostgreSQL and the real broker: the relay chains every
event past its horizon and publishes the chain's head; `celltrail verify` recomputes the
chains and finds each edit a database superuser can make despite the append-only triggers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import asyncpg
import pytest

from infra.runtime.chain import CANONICAL_COLUMNS, link
from infra.runtime.eventstore import EventStore
from infra.runtime.relay import OutboxRelay
from infra.tooling.verify import verify
from tests.integration.test_outbox_relay import TOPIC, HeldAppend, append, insert_raw, producer  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def relay(pool, producer):  # noqa: F811
    return OutboxRelay(pool, EventStore("enrollment"), TOPIC, producer, head_interval=0)


async def settle(relay: OutboxRelay, events: int, timeout: float = 20.0) -> dict:
    """Run the relay until `events` and the head recorded after them are chained and published
    (its horizon also waits for transactions other sessions on the server happen to run)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await relay.publish_pending()
        status = await relay.status()
        if (status["store_position"] > events and status["lag"] == 0
                and status["chained_position"] == status["store_position"]):
            return status
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.02)


@pytest.fixture
async def chained(pool, relay):
    """Three events in two streams, chained, published, and the head after them published."""
    await append(pool, "s-1", 0, 1)
    await append(pool, "s-2", 0, 2)
    await append(pool, "s-1", 1, 3)
    await settle(relay, 3)


async def as_superuser(database_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def enrollment(database_url: str, kafka: str | None):
    report = await verify(database_url, kafka)
    return next(s for s in report.stores if s.store == "enrollment"), report


CHANGE_PAYLOAD = """UPDATE enrollment.events SET payload = jsonb_set(payload, '{centre_id}', '"IT-XX-99"')
                    WHERE position = 2"""


class TestChaining:
    async def test_an_untouched_store_verifies_intact_against_its_published_head(self, database_url, kafka, chained):
        store, report = await enrollment(database_url, kafka)
        assert report.intact and report.published_checked
        assert (store.links, store.events, store.unchained) == (4, 4, 0)  # three events and the head event
        assert store.published.position == 3 and store.broken is None

    async def test_the_head_event_is_recorded_once_and_not_for_its_own_link(self, pool, relay, chained):
        await settle(relay, 3)
        async with pool.acquire() as conn:
            heads = await conn.fetch("SELECT payload FROM enrollment.events"
                                     " WHERE event_type = 'common.ChainHeadRecorded'")
            [chain] = await conn.fetch("SELECT hash FROM enrollment.event_chain WHERE position = 3")
        assert [json.loads(h["payload"]) for h in heads] == [
            {"store": "enrollment", "position": 3, "hash": chain["hash"].hex()}]

    async def test_a_lower_position_committed_late_is_chained_in_its_place(self, database_url, pool, relay):
        async with HeldAppend(pool) as held:
            await append(pool, "s-2", 0, 2)
            await relay.publish_pending()
            assert (await relay.status())["chained_position"] == 0  # nothing passes the open position
            await held.commit()
        await settle(relay, 2)
        store, report = await enrollment(database_url, None)
        assert report.intact and store.links == 3

    async def test_a_quarantined_row_is_chained(self, database_url, pool, relay):
        await as_superuser(database_url, "ALTER TABLE enrollment.events DROP CONSTRAINT events_occurred_at_in_range")
        await append(pool, "s-1", 0, 1)
        bad = await insert_raw(pool, "s-bad", occurred_at="0001-01-01 00:00:00+01")  # the driver cannot read it
        await settle(relay, 2)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM enrollment.relay_quarantine WHERE position = $1", bad)
            assert await conn.fetchval("SELECT count(*) FROM enrollment.event_chain WHERE position = $1", bad)
        assert (await verify(database_url, None)).intact

    async def test_the_chain_refuses_update_and_delete(self, pool, chained):
        async with pool.acquire() as conn:
            for sql in ("UPDATE enrollment.event_chain SET hash = hash", "DELETE FROM enrollment.event_chain",
                        "TRUNCATE enrollment.event_chain"):
                with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                    await conn.execute(sql)


class TestVerifyFindsWhatASuperuserChanged:
    async def test_a_payload_changed_in_replica_mode(self, database_url, kafka, chained):
        await as_superuser(database_url, "SET session_replication_role = replica", CHANGE_PAYLOAD)
        store, report = await enrollment(database_url, kafka)
        assert not report.intact
        assert (store.broken.position, store.broken.kind) == (2, "payload_changed")

    async def test_a_column_changed_with_every_trigger_disabled(self, database_url, kafka, chained):
        await as_superuser(database_url, "ALTER TABLE enrollment.events DISABLE TRIGGER ALL",
                           "UPDATE enrollment.events SET actor = 'someone-else' WHERE position = 1",
                           "ALTER TABLE enrollment.events ENABLE TRIGGER ALL")
        store, _ = await enrollment(database_url, kafka)
        assert (store.broken.position, store.broken.kind) == (1, "row_changed")

    async def test_a_payload_changed_after_dropping_the_triggers(self, database_url, kafka, chained):
        await as_superuser(database_url, "DROP TRIGGER events_refuse_update_delete ON enrollment.events",
                           CHANGE_PAYLOAD)
        store, _ = await enrollment(database_url, kafka)
        assert (store.broken.position, store.broken.kind) == (2, "payload_changed")

    async def test_the_last_rows_deleted_with_their_links_show_against_the_published_head(
            self, database_url, kafka, chained):
        await as_superuser(database_url, "SET session_replication_role = replica",
                           "DELETE FROM enrollment.events WHERE position >= 3",
                           "DELETE FROM enrollment.event_chain WHERE position >= 3")
        store, report = await enrollment(database_url, kafka)
        assert (store.broken.position, store.broken.kind) == (3, "head_behind_published")
        alone, report = await enrollment(database_url, None)  # the chain alone cannot show its cut tail
        assert alone.broken is None and not report.published_checked

    async def test_a_link_rewritten_to_match_a_changed_payload_breaks_the_next_link(
            self, database_url, kafka, chained):
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(CHANGE_PAYLOAD)
            row = await conn.fetchrow(f"SELECT {CANONICAL_COLUMNS} FROM enrollment.events WHERE position = 2")
            previous = await conn.fetchval("SELECT previous_hash FROM enrollment.event_chain WHERE position = 2")
            forged = link(previous, row)
            await conn.execute("UPDATE enrollment.event_chain SET hash = $1, payload_hash = $2 WHERE position = 2",
                               forged.hash, forged.payload_hash)
        finally:
            await conn.close()
        store, _ = await enrollment(database_url, kafka)
        assert (store.broken.position, store.broken.kind) == (3, "link_altered")

    async def test_an_event_inserted_below_the_head_is_an_extra_row(self, database_url, kafka, chained):
        await as_superuser(database_url,
                           "INSERT INTO enrollment.events (position, event_id, stream_id, stream_version, event_type,"
                           " schema_version, payload, occurred_at, correlation_id, actor) VALUES (0, gen_random_uuid(),"
                           " 's-0', 1, 'enrollment.PatientRegistered', 1, '{}', now(), gen_random_uuid(), 'forger')")
        store, _ = await enrollment(database_url, kafka)
        assert (store.broken.position, store.broken.kind) == (0, "extra_row")


def celltrail_verify(database_url: str, kafka: str, *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
    environ.update(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                   CELLTRAIL_HOME=f"/nonexistent/{uuid.uuid4()}")
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", "verify", *args], env=environ,
                          capture_output=True, text=True, timeout=60)


class TestTheCommand:
    async def test_exits_0_and_says_intact_for_untouched_stores(self, database_url, kafka, chained):
        res = celltrail_verify(database_url, kafka)
        assert res.returncode == 0, res.stdout + res.stderr
        assert res.stdout.splitlines()[-1] == "every chain is intact"
        assert "matches the head published at position 3" in res.stdout

    async def test_exits_1_and_names_the_first_broken_link(self, database_url, kafka, chained):
        await as_superuser(database_url, "SET session_replication_role = replica", CHANGE_PAYLOAD)
        res = celltrail_verify(database_url, kafka)
        assert res.returncode == 1
        [line] = [l for l in res.stdout.splitlines() if l.startswith("enrollment")]
        assert line.startswith("enrollment    BROKEN at position 2: payload changed:"), line
        as_json = json.loads(celltrail_verify(database_url, kafka, "--json").stdout)
        assert not as_json["intact"]
        assert [s["broken"]["kind"] for s in as_json["stores"] if s["broken"]] == ["payload_changed"]
