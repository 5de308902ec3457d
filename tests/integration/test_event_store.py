"""The event store against real PostgreSQL: append, optimistic concurrency, immutability,
bounded times."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import asyncpg
import pytest
from pydantic import ValidationError

from contracts.events import CentreRegistered, PatientRegistered
from infra.runtime.eventstore import Append, ConcurrencyConflictError, EventStore, Inbox, Metadata, NewEvent

pytestmark = pytest.mark.integration

META = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor="test")
NOW = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)


def registered(n: int) -> NewEvent:
    sid = f"S-{n:012X}"
    return NewEvent(PatientRegistered(subject_id=sid, centre_id="IT-BG-01"), occurred_at=NOW, subject_id=sid)


class TestAppend:
    async def test_appended_events_load_back_in_stream_order_with_metadata(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "s-1", 0, [registered(1), registered(2)], META)
        async with pool.acquire() as conn:
            loaded = await store.load(conn, "s-1")
        assert [e.stream_version for e in loaded] == [1, 2]
        assert loaded[0].payload["subject_id"] == "S-000000000001"
        assert loaded[0].correlation_id == META.correlation_id and loaded[0].actor == "test"
        assert loaded[0].occurred_at == NOW and loaded[0].recorded_at > NOW
        assert loaded[0].position < loaded[1].position

    async def test_an_append_returns_its_envelopes_with_positions_in_stream_order(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            stored = await store.append(conn, "s-1", 0, [registered(n) for n in range(1, 6)], META)
        assert [e.stream_version for e in stored] == [1, 2, 3, 4, 5]
        assert [e.position for e in stored] == sorted(e.position for e in stored)
        async with pool.acquire() as conn:
            assert [e.position for e in await store.load(conn, "s-1")] == [e.position for e in stored]

    async def test_a_committed_append_notifies_the_stores_channel(self, pool):
        store, heard = EventStore("enrollment"), asyncio.Event()

        def hear(*_: object) -> None:
            heard.set()

        listener = await pool.acquire()
        try:
            await listener.add_listener(store.channel, hear)
            async with pool.acquire() as conn, conn.transaction():
                await store.append(conn, "s-1", 0, [registered(1)], META)
            await asyncio.wait_for(heard.wait(), 5)
        finally:
            await listener.remove_listener(store.channel, hear)
            await pool.release(listener)

    async def test_appends_to_several_streams_go_together_in_the_order_given(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "s-2", 0, [registered(9)], META)
            stored = await store.append_many(conn, [Append("s-2", 1, [registered(1)], META),
                                                    Append("s-1", 0, [registered(2), registered(3)], META)])
        assert [(e.stream_id, e.stream_version) for e in stored] == [("s-2", 2), ("s-1", 1), ("s-1", 2)]
        assert [e.position for e in stored] == sorted(e.position for e in stored)

    async def test_several_appends_to_one_stream_follow_each_others_versions(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            stored = await store.append_many(conn, [Append("s-1", 0, [registered(1)], META),
                                                    Append("s-2", 0, [registered(2)], META),
                                                    Append("s-1", 1, [registered(3), registered(4)], META)])
            assert [(e.stream_id, e.stream_version) for e in stored] == [("s-1", 1), ("s-2", 1), ("s-1", 2),
                                                                        ("s-1", 3)]
            with pytest.raises(ValueError, match="s-1 expected at 1 after an append that leaves it at 4"):
                await store.append_many(conn, [Append("s-1", 3, [registered(5)], META),
                                               Append("s-1", 1, [registered(6)], META)])

    async def test_load_many_returns_each_streams_events_in_order(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append_many(conn, [Append("s-1", 0, [registered(1), registered(2)], META),
                                           Append("s-2", 0, [registered(3)], META)])
            loaded = await store.load_many(conn, ["s-2", "s-1", "s-never"])
        assert {k: [e.stream_version for e in v] for k, v in loaded.items()} == {"s-1": [1, 2], "s-2": [1]}

    async def test_one_stale_stream_in_several_appends_nothing_and_names_it(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "s-2", 0, [registered(9)], META)
        async with pool.acquire() as conn:
            with pytest.raises(ConcurrencyConflictError, match="'s-2': expected version 0, found 1"):
                async with conn.transaction():
                    await store.append_many(conn, [Append("s-1", 0, [registered(1)], META),
                                                   Append("s-2", 0, [registered(2)], META)])
            assert await store.load(conn, "s-1") == []

    async def test_a_stale_expected_version_raises_a_named_conflict(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as conn, conn.transaction():
            await store.append(conn, "s-1", 0, [registered(1)], META)
        async with pool.acquire() as conn:
            with pytest.raises(ConcurrencyConflictError, match="expected version 0, found 1"):
                async with conn.transaction():
                    await store.append(conn, "s-1", 0, [registered(2)], META)
            assert len(await store.load(conn, "s-1")) == 1

    async def test_of_two_transactions_appending_the_same_version_the_later_raises_the_named_conflict(self, pool):
        store = EventStore("enrollment")
        first, second = await pool.acquire(), await pool.acquire()
        try:
            async with first.transaction():
                await store.append(first, "s-1", 0, [registered(1)], META)  # not yet committed

                async def racing() -> None:
                    async with second.transaction():
                        await store.append(second, "s-1", 0, [registered(2)], META)

                race = asyncio.create_task(racing())
                await asyncio.sleep(0.3)
                assert not race.done()  # waits on the unique index for the first to finish
            with pytest.raises(ConcurrencyConflictError, match="expected version 0, found a concurrent append"):
                await asyncio.wait_for(race, 5)
        finally:
            await pool.release(first)
            await pool.release(second)

    async def test_appends_to_different_streams_do_not_wait_for_each_other(self, pool):
        store = EventStore("enrollment")
        async with pool.acquire() as open_conn, open_conn.transaction():
            await store.append(open_conn, "s-1", 0, [registered(1)], META)

            async def other() -> None:
                async with pool.acquire() as conn, conn.transaction():
                    await store.append(conn, "s-2", 0, [registered(2)], META)

            await asyncio.wait_for(other(), 5)

    async def test_append_outside_a_transaction_is_refused(self, pool):
        async with pool.acquire() as conn:
            with pytest.raises(RuntimeError, match="inside a transaction"):
                await EventStore("enrollment").append(conn, "s-1", 0, [registered(1)], META)

    async def test_the_unique_stream_version_constraint_backs_the_check(self, pool):
        async with pool.acquire() as conn:
            async with conn.transaction():
                await EventStore("enrollment").append(conn, "s-1", 0, [registered(1)], META)
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute(
                    "INSERT INTO enrollment.events (event_id, stream_id, stream_version, event_type, schema_version,"
                    " payload, occurred_at, correlation_id, actor) VALUES ($1, 's-1', 1, 'x', 1, '{}', now(), $2, 't')",
                    uuid.uuid4(), uuid.uuid4())


class TestBoundedTimes:
    INSERT = ("INSERT INTO enrollment.events (event_id, stream_id, stream_version, event_type, schema_version,"
              " payload, occurred_at, recorded_at, correlation_id, actor)"
              " VALUES ($1, 's-1', 1, 'x', 1, '{}', $2::text::timestamptz, $3::text::timestamptz, $4, 't')")

    @pytest.mark.parametrize("column", ["occurred_at", "recorded_at"])
    @pytest.mark.parametrize("value", ["-infinity", "infinity", "0001-01-01 00:00:00+00",
                                       "1899-12-31 23:59:59+00", "2200-01-01 00:00:00+00"])
    async def test_the_database_refuses_a_non_finite_or_out_of_range_time(self, pool, column, value):
        times = {"occurred_at": "2025-01-06 09:00:00+00", "recorded_at": "2025-01-06 09:00:00+00", column: value}
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.CheckViolationError, match=f"events_{column}_in_range"):
                await conn.execute(self.INSERT, uuid.uuid4(), times["occurred_at"], times["recorded_at"],
                                   uuid.uuid4())

    async def test_the_database_accepts_the_first_instant_in_range(self, pool):
        async with pool.acquire() as conn:
            await conn.execute(self.INSERT, uuid.uuid4(), "1900-01-01 00:00:00+00", "2199-12-31 23:59:59+00",
                               uuid.uuid4())

    async def test_the_store_refuses_a_year_one_time_before_it_reaches_the_database(self, pool):
        year_one = NewEvent(PatientRegistered(subject_id="S-000000000001", centre_id="IT-BG-01"),
                            occurred_at=datetime(1, 1, 1, tzinfo=timezone.utc))
        async with pool.acquire() as conn:
            with pytest.raises(ValidationError, match="occurred_at"):
                async with conn.transaction():
                    await EventStore("enrollment").append(conn, "s-1", 0, [year_one], META)
            assert await conn.fetchval("SELECT count(*) FROM enrollment.events") == 0


class TestImmutability:
    @pytest.mark.parametrize("schema", ["enrollment", "manufacturing", "infusion", "assessment", "projection"])
    @pytest.mark.parametrize("statement", [
        "UPDATE {s}.events SET actor = 'tamperer'",
        "DELETE FROM {s}.events",
        "TRUNCATE {s}.events",
    ])
    async def test_events_can_never_be_updated_deleted_or_truncated(self, pool, schema, statement):
        store = EventStore(schema)
        async with pool.acquire() as conn:
            async with conn.transaction():
                await store.append(conn, "c-1", 0, [NewEvent(CentreRegistered(
                    centre_id="IT-BG-01", name="Bergamo", country="IT"), occurred_at=NOW)], META)
            with pytest.raises(asyncpg.RestrictViolationError, match="events are append-only"):
                await conn.execute(statement.format(s=schema))
            rows = await conn.fetch(f"SELECT actor FROM {schema}.events")
        assert [r["actor"] for r in rows] == ["test"]


class TestInbox:
    async def test_a_message_id_can_be_claimed_once_per_consumer(self, pool):
        inbox, other = Inbox("infusion", "infusion"), Inbox("infusion", "audit")
        mid = uuid.uuid4()
        async with pool.acquire() as conn:
            assert await inbox.claim(conn, mid) is True
            assert await inbox.claim(conn, mid) is False
            assert await other.claim(conn, mid) is True

    async def test_a_claim_rolled_back_with_its_transaction_can_be_claimed_again(self, pool):
        inbox, mid = Inbox("infusion", "infusion"), uuid.uuid4()
        async with pool.acquire() as conn:
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    assert await inbox.claim(conn, mid)
                    1 / 0
            assert await inbox.claim(conn, mid) is True
