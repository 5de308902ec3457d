"""The consumer pipeline on a real FastStream Kafka subscriber, real broker, real PostgreSQL:
at-least-once delivery with an exactly-once effect, refusals recorded, poison messages
dead-lettered with their original bytes while the rest flows."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import topics
from contracts.commands import RegisterCentre
from contracts.envelope import CommandEnvelope
from contracts.errors import CommandRefused
from infra.runtime.eventstore import EventStore, Inbox
from infra.runtime.host import ServiceSpec, build_broker
from infra.runtime.messaging import DeadLetters, Pipeline, ensure_topics, new_producer
from services.enrollment import bootstrap

pytestmark = pytest.mark.integration


def centre_command(centre_id: str, command_id: uuid.UUID | None = None) -> CommandEnvelope:
    env = CommandEnvelope.wrap(RegisterCentre(centre_id=centre_id, name="Centre", country="IT"), actor="test")
    return env.model_copy(update={"command_id": command_id}) if command_id else env


@pytest.fixture
async def running(pool, kafka):
    """Enrollment's command pipeline on a real FastStream subscriber; yields a control object."""
    await ensure_topics(kafka, 3)
    producer = new_producer(kafka)
    await producer.start()
    store = EventStore("enrollment")
    register_centre = bootstrap.spec().command_handlers["RegisterCentre"]
    calls = {"flaky": 0}

    async def always_fails(conn, env, cmd):
        raise RuntimeError("database on fire")

    async def flaky(conn, env, cmd):
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError("transient")
        await register_centre(conn, env, cmd)

    pipeline = Pipeline(pool=pool, inbox=Inbox("enrollment", "enrollment"),
                        dead_letters=DeadLetters(producer, "enrollment"), store=store, max_attempts=3,
                        command_handlers={"RegisterCentre": register_centre})
    spec = ServiceSpec(name="enrollment", schema="enrollment", publishes_to=topics.ENROLLMENT_EVENTS,
                       subscribes_to=(topics.ENROLLMENT_COMMANDS,))
    broker = build_broker(spec, pipeline, kafka)
    await broker.start()

    class Control:
        async def send(self, value: bytes, key: bytes = b"k") -> None:
            await producer.send_and_wait(topics.ENROLLMENT_COMMANDS, value=value, key=key)

        async def events(self, stream_prefix: str = "") -> list:
            async with pool.acquire() as conn:
                return await conn.fetch("SELECT * FROM enrollment.events WHERE stream_id LIKE $1 ORDER BY position",
                                        stream_prefix + "%")

        async def wait_events(self, n: int, prefix: str = "", timeout: float = 15) -> list:
            for _ in range(int(timeout / 0.05)):
                rows = await self.events(prefix)
                if len(rows) >= n:
                    return rows
                await asyncio.sleep(0.05)
            raise AssertionError(f"expected {n} events with prefix {prefix!r}, have {len(await self.events(prefix))}")

        def use(self, name: str) -> None:
            pipeline.command_handlers["RegisterCentre"] = {"always_fails": always_fails, "flaky": flaky}[name]

        calls_ = calls

    try:
        yield Control()
    finally:
        await broker.stop()
        await producer.stop()


async def dead_letters(kafka: str, n: int, timeout: float = 15) -> list:
    consumer = AIOKafkaConsumer(topics.DEAD_LETTER, bootstrap_servers=kafka, auto_offset_reset="earliest",
                                group_id=None)
    await consumer.start()
    out: list = []
    try:
        for _ in range(int(timeout / 0.2)):
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out += records
            if len(out) >= n:
                break
    finally:
        await consumer.stop()
    return out


class TestExactlyOnceEffect:
    async def test_a_command_delivered_twice_is_applied_once(self, running):
        env = centre_command("IT-BG-01")
        await running.send(env.model_dump_json().encode())
        await running.send(env.model_dump_json().encode())
        await running.send(centre_command("IT-MI-03").model_dump_json().encode())  # a marker after both
        await running.wait_events(1, "centre-IT-MI-03")
        assert len(await running.events("centre-IT-BG-01")) == 1

    async def test_a_refused_command_is_recorded_as_a_rejection_event(self, running):
        await running.send(centre_command("IT-BG-01").model_dump_json().encode())
        second = centre_command("IT-BG-01")
        await running.send(second.model_dump_json().encode())
        [rejection] = await running.wait_events(1, "command-")
        assert rejection["event_type"] == "common.CommandRejected"
        assert rejection["causation_id"] == second.command_id
        assert '"reason_code": "CENTRE_ALREADY_REGISTERED"' in rejection["payload"]


class TestDeadLetters:
    async def test_a_malformed_message_goes_to_the_dead_letter_topic_with_its_bytes_and_the_rest_flows(
            self, running, kafka):
        await running.send(b"{not json", key=b"bad")
        await running.send(centre_command("IT-BG-01").model_dump_json().encode())
        await running.wait_events(1, "centre-IT-BG-01")
        [dead] = await dead_letters(kafka, 1)
        headers = dict(dead.headers)
        assert dead.value == b"{not json"
        assert headers["celltrail-dlq-reason"].startswith(b"invalid command")
        assert headers["celltrail-dlq-source"].startswith(topics.ENROLLMENT_COMMANDS.encode())

    async def test_a_command_failing_its_contract_is_dead_lettered_naming_the_field(self, running, kafka):
        bad = centre_command("IT-BG-01").model_dump(mode="json")
        bad["payload"]["country"] = "Italy"
        await running.send(CommandEnvelope.model_validate(bad).model_dump_json().encode())
        [dead] = await dead_letters(kafka, 1)
        assert b"country" in dict(dead.headers)["celltrail-dlq-reason"]

    async def test_a_message_whose_handler_keeps_failing_is_dead_lettered_after_the_attempt_limit(
            self, running, kafka):
        running.use("always_fails")
        await running.send(centre_command("IT-BG-01").model_dump_json().encode())
        [dead] = await dead_letters(kafka, 1, timeout=30)
        assert b"handler failed 3 times: RuntimeError: database on fire" in dict(dead.headers)["celltrail-dlq-reason"]
        assert await running.events() == []

    async def test_a_transient_failure_is_retried_and_applied_once_without_a_dead_letter(self, running, kafka):
        running.use("flaky")
        await running.send(centre_command("IT-BG-01").model_dump_json().encode())
        await running.wait_events(1, "centre-IT-BG-01", timeout=30)
        assert running.calls_["flaky"] == 3
        assert await dead_letters(kafka, 1, timeout=1) == []
