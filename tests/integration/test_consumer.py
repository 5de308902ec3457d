"""The one consumer (infra/runtime/consumer.py) on a real FastStream batch subscriber, real
broker, real PostgreSQL: whole fetches in one transaction, at-least-once delivery with an
exactly-once effect, refusals recorded, poison messages dead-lettered with their original
bytes while the rest flows, and an unreachable dependency never held against a message."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timezone

import pytest
from aiokafka import AIOKafkaConsumer

from contracts import topics
from contracts.commands import RegisterCentre
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.errors import CommandRefused
from contracts.events import SubjectEnrolled
from infra.runtime.consumer import BatchRoute, Consumer, HandlerApplier
from infra.runtime.eventstore import EventStore
from infra.runtime.host import build_broker
from infra.tooling.supervisor import EMBEDDED_SESSION_TIMEOUT_MS
from infra.runtime.messaging import ensure_topics, new_producer
from services.enrollment import bootstrap
from tests.unit.services.fakes import envelope

pytestmark = pytest.mark.integration
POISON = "S-0000000000FF"


def centre_command(centre_id: str, command_id: uuid.UUID | None = None) -> CommandEnvelope:
    env = CommandEnvelope.wrap(RegisterCentre(centre_id=centre_id, name="Centre", country="IT"), actor="test")
    return env.model_copy(update={"command_id": command_id}) if command_id else env


@pytest.fixture
async def running(pool, kafka):
    """Enrollment's commands through the one consumer; yields a control object."""
    await ensure_topics(kafka, 3)
    producer = new_producer(kafka)
    await producer.start()
    store = EventStore("enrollment")
    calls = {"flaky": 0, "outage": 0}
    register = bootstrap.spec().command_handlers["RegisterCentre"]

    async def always_fails(conn, env, cmd, writes):
        if cmd.centre_id == "IT-POISON":
            raise RuntimeError("database on fire")
        await register(conn, env, cmd, writes=writes)

    async def flaky(conn, env, cmd, writes):
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise RuntimeError("transient")
        await register(conn, env, cmd, writes=writes)

    async def outage(conn, env, cmd, writes):
        calls["outage"] += 1
        if calls["outage"] <= 6:  # more often than max_attempts: an outage is not an attempt
            raise ConnectionRefusedError("PostgreSQL is away")
        await register(conn, env, cmd, writes=writes)

    applier = HandlerApplier(store, command_handlers={"RegisterCentre": register})
    state = {}

    async def start():
        consumer = Consumer(name="enrollment", schema="enrollment", topics_=(topics.ENROLLMENT_COMMANDS,),
                            applier=applier, pool=pool, producer=producer, max_attempts=3,
                            max_backoff_seconds=0.2,
                            session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
        broker = build_broker(kafka, consumer)
        await broker.start()
        state.update(consumer=consumer, broker=broker)

    await start()

    class Control:
        async def send(self, value: bytes, key: bytes = b"k") -> None:
            await producer.send_and_wait(topics.ENROLLMENT_COMMANDS, value=value, key=key)

        async def send_many(self, values: list[bytes]) -> None:
            await asyncio.gather(*[await producer.send(topics.ENROLLMENT_COMMANDS, value=v, key=b"k") for v in values])

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

        async def offsets(self) -> dict:
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT topic, partition, next_offset FROM enrollment.consumer_offsets"
                                        " WHERE consumer = 'enrollment'")
            return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

        def use(self, name: str) -> None:
            applier.command_handlers["RegisterCentre"] = {"always_fails": always_fails, "flaky": flaky,
                                                          "outage": outage}[name]

        async def restart(self) -> None:
            await state["broker"].stop()
            await start()

        @property
        def consumer(self) -> Consumer:
            return state["consumer"]

        calls_ = calls

    try:
        yield Control()
    finally:
        await state["broker"].stop()
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


class TestWholeFetches:
    async def test_a_fetch_is_applied_and_its_offsets_stored_with_its_effects(self, running):
        await running.send_many([centre_command(f"IT-F{i:03d}").model_dump_json().encode() for i in range(60)])
        await running.wait_events(60, "centre-")
        offsets = await running.offsets()
        assert sum(offsets.values()) == 60  # one key, so one partition holds all 60
        assert running.consumer.applied == 60

    async def test_a_restarted_consumer_continues_from_the_stored_offsets_and_reapplies_nothing(self, running):
        await running.send_many([centre_command(f"IT-R{i:03d}").model_dump_json().encode() for i in range(5)])
        await running.wait_events(5, "centre-")
        await running.restart()
        await running.send(centre_command("IT-AFTER").model_dump_json().encode())
        await running.wait_events(1, "centre-IT-AFTER")
        assert running.consumer.applied == 1
        assert len(await running.events("centre-")) == 6

    async def test_the_same_command_twice_in_one_fetch_is_applied_once(self, running):
        env = centre_command("IT-BG-01").model_dump_json().encode()
        await running.send_many([env, env, centre_command("IT-MI-03").model_dump_json().encode()])
        await running.wait_events(1, "centre-IT-MI-03")
        assert len(await running.events("centre-IT-BG-01")) == 1


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

    async def test_refusals_inside_a_fetch_undo_only_their_own_commands(self, running):
        first, again, last = centre_command("IT-BG-01"), centre_command("IT-BG-01"), centre_command("IT-BG-01")
        await running.send_many([first.model_dump_json().encode(), again.model_dump_json().encode(),
                                 centre_command("IT-MI-03").model_dump_json().encode(),
                                 centre_command("IT-TO-04").model_dump_json().encode(),
                                 last.model_dump_json().encode()])
        rejections = await running.wait_events(2, "command-")
        assert [r["causation_id"] for r in rejections] == [again.command_id, last.command_id]
        assert sorted(r["stream_id"] for r in await running.events("centre-")) == [
            "centre-IT-BG-01", "centre-IT-MI-03", "centre-IT-TO-04"]
        assert running.consumer.applied == 5


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

    async def test_a_message_whose_handler_keeps_failing_is_dead_lettered_and_its_fetch_mates_applied(
            self, running, kafka):
        running.use("always_fails")
        await running.send_many([centre_command(c).model_dump_json().encode()
                                 for c in ("IT-BG-01", "IT-POISON", "IT-MI-03")])
        [dead] = await dead_letters(kafka, 1, timeout=30)
        assert b"handler failed 3 times: RuntimeError: database on fire" in dict(dead.headers)["celltrail-dlq-reason"]
        await running.wait_events(2, "centre-")
        assert sorted(r["stream_id"] for r in await running.events()) == ["centre-IT-BG-01", "centre-IT-MI-03"]

    async def test_a_failure_that_passes_is_retried_and_applied_once_without_a_dead_letter(self, running, kafka):
        running.use("flaky")
        await running.send(centre_command("IT-BG-01").model_dump_json().encode())
        await running.wait_events(1, "centre-IT-BG-01", timeout=30)
        assert running.calls_["flaky"] == 3
        assert await dead_letters(kafka, 1, timeout=1) == []


class TestInfrastructureOutages:
    async def test_an_unreachable_database_is_waited_for_not_counted_against_the_message(self, running, kafka):
        running.use("outage")
        await running.send(centre_command("IT-BG-01").model_dump_json().encode())
        await running.wait_events(1, "centre-IT-BG-01", timeout=30)
        assert running.calls_["outage"] == 7  # six failures, more than max_attempts = 3
        assert await dead_letters(kafka, 1, timeout=1) == []
        assert len(await running.events("centre-IT-BG-01")) == 1


class TestRunsOfEvents:
    """Consecutive events of a type whose handler takes runs are applied with one call; an
    event the handler refuses is dead-lettered alone and the rest of its run applied."""

    @pytest.fixture
    async def manufacturing(self, pool, kafka):
        await ensure_topics(kafka, 3)
        producer = new_producer(kafka)
        await producer.start()
        calls: list[list[str]] = []

        async def on_enrolled(conn, envs, payloads):
            calls.append([p.subject_id for p in payloads])
            if POISON in calls[-1]:
                raise CommandRefused("not this one")
            await conn.executemany("INSERT INTO manufacturing.enrolled_subjects VALUES ($1, 'P', 'C', '2024-01-01')",
                                   [(p.subject_id,) for p in payloads])

        applier = HandlerApplier(EventStore("manufacturing"),
                                 event_handlers={SubjectEnrolled.event_type: BatchRoute(on_enrolled)})
        consumer = Consumer(name="manufacturing", schema="manufacturing", topics_=(topics.ENROLLMENT_EVENTS,),
                            applier=applier, pool=pool, producer=producer, max_backoff_seconds=0.2,
                            session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
        broker = build_broker(kafka, consumer)
        await broker.start()

        async def send(subjects: list[str]) -> None:
            envs = [envelope(SubjectEnrolled(subject_id=s, programme_id="CARCIK-CD19-P2", centre_id="IT-BG-01",
                                             enrolled_on=date(2024, 1, 1)), subject_id=s,
                             occurred_at=datetime(2024, 1, 1, tzinfo=timezone.utc)) for s in subjects]
            await asyncio.gather(*[await producer.send(topics.ENROLLMENT_EVENTS, value=e.model_dump_json().encode(),
                                                       key=b"one-partition") for e in envs])

        async def enrolled(n: int) -> set[str]:
            for _ in range(300):
                async with pool.acquire() as conn:
                    rows = await conn.fetch("SELECT subject_id FROM manufacturing.enrolled_subjects")
                if len(rows) >= n:
                    return {r["subject_id"] for r in rows}
                await asyncio.sleep(0.05)
            raise AssertionError(f"expected {n} enrolments, have {len(rows)}")

        try:
            yield send, enrolled, calls
        finally:
            await broker.stop()
            await producer.stop()

    async def test_a_run_of_events_is_applied_with_one_call(self, manufacturing):
        send, enrolled, calls = manufacturing
        subjects = [f"S-{n:012X}" for n in range(1, 41)]
        await send(subjects)
        assert await enrolled(40) == set(subjects)
        assert len(calls) < 40 and sum(len(c) for c in calls) == 40

    async def test_a_refused_event_is_dead_lettered_alone_and_the_rest_of_its_run_applied(self, manufacturing, kafka):
        send, enrolled, calls = manufacturing
        subjects = [f"S-{n:012X}" for n in range(1, 6)]
        await send(subjects[:2] + [POISON] + subjects[2:])
        assert await enrolled(5) == set(subjects)
        [dead] = await dead_letters(kafka, 1)
        assert dict(dead.headers)["celltrail-dlq-reason"] == b"event refused: COMMAND_REFUSED: not this one"
        assert EventEnvelope.model_validate_json(dead.value).subject_id == POISON
