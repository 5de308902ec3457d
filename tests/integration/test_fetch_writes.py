"""A fetch's reads and appends (infra/runtime/fetchwrites.py) against real PostgreSQL: read
through what the fetch appended, conflicts found at once, a refusal's appends undone, one
statement at the end."""

from __future__ import annotations

import pytest

from infra.runtime.eventstore import ConcurrencyConflictError, EventStore
from infra.runtime.fetchwrites import FetchWrites
from tests.integration.test_event_store import META, registered

pytestmark = pytest.mark.integration


class Counting:
    """Counts the statements a connection runs."""

    def __init__(self, conn) -> None:
        self.conn, self.statements = conn, 0

    def __getattr__(self, name):
        attr = getattr(self.conn, name)
        if name in ("fetch", "fetchrow", "fetchval", "execute", "executemany"):
            async def counted(*args, **kwargs):
                self.statements += 1
                return await attr(*args, **kwargs)
            return counted
        return attr


async def test_reads_come_from_one_query_and_from_what_the_fetch_appended(pool) -> None:
    store = EventStore("enrollment")
    async with pool.acquire() as raw, raw.transaction():
        await store.append(raw, "s-1", 0, [registered(1)], META)
        conn = Counting(raw)
        writes = FetchWrites(store, conn)
        await writes.prefetch(["s-1", "s-2", "s-1"])
        assert conn.statements == 1
        assert [e.subject_id for e in (await writes.load("s-1"))[0]] == ["S-000000000001"]
        assert await writes.load("s-2") == ([], 0)
        await writes.add("s-1", 1, [registered(2)], META)
        await writes.add("s-2", 0, [registered(3)], META)
        await writes.add("s-1", 2, [registered(4)], META)
        events, version = await writes.load("s-1")
        assert version == 3 and [e.subject_id for e in events][-1] == "S-000000000004"
        assert conn.statements == 1  # nothing appended yet, nothing read again
        assert len(await store.load(raw, "s-1")) == 1
        await writes.flush()
        assert conn.statements == 2
        assert [e.stream_version for e in await store.load(raw, "s-1")] == [1, 2, 3]
        assert [e.stream_version for e in await store.load(raw, "s-2")] == [1]


async def test_a_stale_expected_version_is_a_conflict_at_once(pool) -> None:
    store = EventStore("enrollment")
    async with pool.acquire() as conn, conn.transaction():
        writes = FetchWrites(store, conn)
        await writes.add("s-1", 0, [registered(1)], META)
        with pytest.raises(ConcurrencyConflictError, match="'s-1': expected version 0, found 1"):
            await writes.add("s-1", 0, [registered(2)], META)


async def test_undo_forgets_the_appends_after_the_mark_and_only_those(pool) -> None:
    store = EventStore("enrollment")
    async with pool.acquire() as conn, conn.transaction():
        writes = FetchWrites(store, conn)
        await writes.add("s-1", 0, [registered(1)], META)
        mark = writes.mark()
        await writes.add("s-1", 1, [registered(2)], META)
        await writes.add("s-3", 0, [registered(3)], META)
        writes.undo(mark)
        assert (await writes.load("s-1"))[1] == 1
        await writes.add("s-1", 1, [registered(5)], META)  # the refused message's version is free again
        await writes.flush()
        assert [e.payload["subject_id"] for e in await store.load(conn, "s-1")] == ["S-000000000001",
                                                                                   "S-000000000005"]
        assert await store.load(conn, "s-3") == []


async def test_a_concurrent_writer_since_the_read_fails_the_flush(pool) -> None:
    store = EventStore("enrollment")
    async with pool.acquire() as conn, pool.acquire() as other:
        async with conn.transaction():
            writes = FetchWrites(store, conn)
            await writes.prefetch(["s-1"])
            async with other.transaction():
                await store.append(other, "s-1", 0, [registered(9)], META)
            await writes.add("s-1", 0, [registered(1)], META)
            with pytest.raises(ConcurrencyConflictError):
                await writes.flush()
