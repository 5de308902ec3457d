"""Faults with every service a separate process on the real broker and PostgreSQL:
a service killed with SIGKILL mid-load, every message delivered twice, malformed messages."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from contracts import topics
from infra.runtime.relay import rewind
from tests.e2e.driver import Driver, envelopes, read_topic

pytestmark = pytest.mark.e2e

N = 24


async def count_events(database_url: str, schema: str, event_type: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {schema}.events WHERE event_type = $1", event_type)
    finally:
        await conn.close()


def expected_report() -> dict:
    responders = sum(1 for i in range(N) if i % 4)  # the driver gives every 4th subject 9 % blasts
    return {"enrolled": N, "infused": N, "day28_evaluable": N, "day28_responders": responders}


def summary(report: list[dict]) -> dict:
    [r] = report
    return {k: r[k] for k in ("enrolled", "infused", "day28_evaluable", "day28_responders")}


class TestKilledService:
    @pytest.mark.parametrize("victim, during", [("infusion", "infuse"), ("projection", "assess"),
                                                ("manufacturing", "collect")])
    async def test_a_service_killed_mid_load_loses_nothing_and_counts_nothing_twice(self, system, victim, during):
        d = Driver(system, N)
        await d.register()
        phases = ["enroll", "collect", "release", "infuse", "assess"]
        milestone = {"enroll": "enrolled", "collect": "collected", "release": "released", "infuse": "infused",
                     "assess": "assessed"}
        for phase in phases:
            if phase == during:
                send = asyncio.create_task(d.send_all(d.phase_commands(phase)))
                await asyncio.sleep(0.05)  # some of the phase's commands are in flight
                system.kill_service(victim)
                await send
                await asyncio.sleep(0.5)
                system.restart_service(victim)
            else:
                await d.send_all(d.phase_commands(phase))
            await d.wait_phase(milestone[phase], timeout=120)

        await d.wait_for(lambda: summary(d.report()) == expected_report(), 60, "report to settle")
        db = system.info.database_url
        assert await count_events(db, "enrollment", "enrollment.SubjectEnrolled") == N
        assert await count_events(db, "manufacturing", "manufacturing.ApheresisCollected") == N
        assert await count_events(db, "infusion", "infusion.ProductInfused") == N
        assert await count_events(db, "assessment", "assessment.ResponseAssessed") == N
        assert await count_events(db, "infusion", "common.CommandRejected") == 0

        async def day28_published() -> int:
            outcomes = envelopes(await read_topic(system.info.kafka_bootstrap_servers, topics.OUTCOMES))
            return len({e.subject_id for e in outcomes if e.event_type == "outcomes.Day28ResponseDetermined"})

        # the restarted service's relay may still be publishing what it stored: poll the topic
        for _ in range(30):
            if await day28_published() == N:
                break
            await asyncio.sleep(0.5)
        assert await day28_published() == N


class TestDuplicateDelivery:
    async def test_every_message_delivered_twice_leaves_the_projection_identical(self, system):
        d = Driver(system, N)
        await d.register()
        await d.run_through()
        await d.wait_for(lambda: summary(d.report()) == expected_report(), 60, "report to settle")
        views_once, report_once = d.views(), d.report()

        # Every command again, with the same command ids ...
        await d.send_all(list(d.sent))
        # ... and every event again: each service republishes its whole history.
        conn = await asyncpg.connect(system.info.database_url)
        try:
            for schema in ("enrollment", "manufacturing", "infusion", "assessment", "projection"):
                await rewind(conn, schema)
        finally:
            await conn.close()

        async def republished() -> bool:
            records = await read_topic(system.info.kafka_bootstrap_servers, topics.INFUSION_EVENTS, idle_ms=300)
            return len(records) >= 2 * N

        for _ in range(100):
            if await republished():
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("history was not republished")
        await asyncio.sleep(2)  # let consumers take in the duplicates
        await d.wait_caught_up()
        assert d.views() == views_once
        assert d.report() == report_once
        db = system.info.database_url
        assert await count_events(db, "infusion", "infusion.ProductInfused") == N
        assert await count_events(db, "infusion", "common.CommandRejected") == 0


class TestMalformedMessages:
    async def test_malformed_messages_are_dead_lettered_and_the_rest_flows(self, system):
        from infra.runtime.messaging import new_producer

        producer = new_producer(system.info.kafka_bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topics.INFUSION_COMMANDS, b"\xff\xfe not json", key=b"x")
            await producer.send_and_wait(topics.MANUFACTURING_EVENTS, b'{"event_type": "half"}', key=b"y")
        finally:
            await producer.stop()
        d = Driver(system, 4)
        await d.register()
        await d.run_through()
        dead = await read_topic(system.info.kafka_bootstrap_servers, topics.DEAD_LETTER)
        by_consumer = {dict(r.headers)[topics.HEADER_DLQ_CONSUMER].decode(): r for r in dead}
        # the bad command: once, by infusion; the bad event: by each of its consumers
        assert by_consumer["infusion"].value in (b"\xff\xfe not json", b'{"event_type": "half"}')
        assert b"\xff\xfe not json" in [r.value for r in dead]
        assert {c for c, r in by_consumer.items() if r.value == b'{"event_type": "half"}'} >= {"projection"}
        assert all(dict(r.headers)[topics.HEADER_DLQ_REASON] for r in dead)
