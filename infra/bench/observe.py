"""How the benchmark sees that something has been applied, without disturbing the system.

* The true end of each partition, read from the log (`log_ends`).
* A consumer's progress: the offsets it stores in `<schema>.consumer_offsets` in the same
  transaction as its effects (`stored_offsets`), so "offset reached" means "visible".
* One command's effect (`Tracker`): its event on the topic (matched by causation id), the
  projection's committed read model showing the phase it implies, and the downstream
  service's inbox holding its event.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from contracts import events as ev
from contracts import topics
from contracts.envelope import EventEnvelope
from infra.bench.report import say
from infra.bench.topology import EventConsumer, topology
from services.projection.domain.subject_view import PHASES


def now_s() -> float:
    return time.perf_counter()


# --- HTTP --------------------------------------------------------------------------------
def _http_json(method: str, url: str, body: bytes | None, timeout: float, token: str) -> Any:
    req = urllib.request.Request(url, data=body, method=method, headers={
        "content-type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


async def http_json(method: str, url: str, *, token: str, body: bytes | None = None, timeout: float = 30) -> Any:
    """As the bearer of `token` (the CLI's principal: `Run.token`)."""
    return await asyncio.to_thread(_http_json, method, url, body, timeout, token)


async def projection_lag(projection_url: str, token: str) -> int | None:
    try:
        return (await http_json("GET", f"{projection_url}/status", token=token, timeout=10)).get("lag")
    except urllib.error.HTTPError:
        return None  # 503 while the projection is (re)joining its group


# --- the log and the consumers' stored offsets --------------------------------------------
async def event_partitions(bootstrap: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        return len(consumer.partitions_for_topic(topics.ENROLLMENT_EVENTS) or ()) or 3
    finally:
        await consumer.stop()


async def log_ends(bootstrap: str, names: Sequence[str]) -> dict[TopicPartition, int]:
    """Each partition's end (last offset + 1), read from the log itself.

    The embedded Tansu broker's ListOffsets(latest) answers the base offset of the last
    record *batch* + 1, not the end of the log: after a batched send it under-reports, so
    neither `end_offsets` nor a lag computed from it (GET /status) can say "all applied".
    Seek to just before the reported end and read on until nothing more arrives."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=50)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = dict(await consumer.end_offsets(parts))
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, max(0, ends[tp] - 1))
        idle = 0
        while idle < 3:
            batch = await consumer.getmany(timeout_ms=200)
            idle = 0 if any(batch.values()) else idle + 1
            for tp, records in batch.items():
                if records:
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()


def ends_of(acks: Sequence[Any]) -> dict[TopicPartition, int]:
    """The partition ends after the acknowledged sends `acks` (RecordMetadata)."""
    ends: dict[TopicPartition, int] = {}
    for a in acks:
        tp = TopicPartition(a.topic, a.partition)
        ends[tp] = max(ends.get(tp, 0), a.offset + 1)
    return ends


async def stored_offsets(conn: asyncpg.Connection, consumer: EventConsumer) -> dict[TopicPartition, int]:
    rows = await conn.fetch(
        f"SELECT topic, partition, next_offset FROM {consumer.schema}.consumer_offsets WHERE consumer = $1",
        consumer.name)
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def behind(applied: dict[TopicPartition, int], ends: dict[TopicPartition, int], only: Sequence[str] = ()) -> int:
    return sum(max(0, end - applied.get(tp, 0)) for tp, end in ends.items() if not only or tp.topic in only)


async def wait_applied(conn: asyncpg.Connection, consumers: Sequence[EventConsumer], ends: dict[TopicPartition, int],
                       timeout: float, poll_s: float = 0.01, what: str = "") -> dict[str, float]:
    """Until each consumer has applied everything up to `ends` on the topics it reads;
    returns, per consumer, the moment (`now_s()`) it was seen there."""
    done: dict[str, float] = {}
    t0 = last_report = now_s()
    while len(done) < len(consumers):
        for c in consumers:
            if c.name not in done and behind(await stored_offsets(conn, c), ends, c.event_topics) == 0:
                done[c.name] = now_s()
        if len(done) == len(consumers):
            break
        if now_s() - t0 > timeout:
            raise TimeoutError(f"{', '.join(c.name for c in consumers if c.name not in done)} did not apply "
                               f"{what or 'the events'} within {timeout:.0f}s")
        if now_s() - last_report > 30:
            lag = {c.name: behind(await stored_offsets(conn, c), ends, c.event_topics)
                   for c in consumers if c.name not in done}
            say(f"    waiting for {what or 'consumers'}: behind by {lag}")
            last_report = now_s()
        await asyncio.sleep(poll_s)
    return done


# --- one command's effect ------------------------------------------------------------------
class StepFailed(Exception):
    pass


@dataclass
class Step:
    """One command in flight."""

    subject: str
    command_type: str
    expected_event: str
    phase: str | None  # the projection phase that shows it; None: its event on the topic suffices
    downstream: EventConsumer | None  # whose inbox must hold the event before the subject goes on
    command_id: uuid.UUID
    visible: asyncio.Future
    ready: asyncio.Future | None = None
    t_publish: float = 0.0
    wall_publish: float = 0.0  # time.time() at t_publish, to compare with the services' clocks
    stored_after: float | None = None  # seconds from publish to the event's recorded_at (its append)
    relayed_after: float | None = None  # ... to the record's timestamp (the relay's send)
    t_on_topic: float | None = None
    t_visible: float | None = None
    t_ready: float | None = None
    event_id: uuid.UUID | None = None


class Tracker:
    """Sees what each command caused and when the projection shows it.

    A consumer on the event topics and celltrail.outcomes.v1 matches events to commands by
    causation id (a CommandRejected fails the step). One PostgreSQL connection polls, every
    `poll_s`, the projection's committed read model (projection.subject_state.phase, written
    in the same transaction as the event's offset) for the subjects with a step in flight,
    one query for all of them, and the downstream services' inboxes for the events the next
    command depends on."""

    def __init__(self, bootstrap: str, database_url: str, poll_s: float) -> None:
        self.bootstrap, self.database_url, self.poll_s = bootstrap, database_url, poll_s
        self.by_command: dict[uuid.UUID, Step] = {}
        self.phase_waiting: dict[str, Step] = {}
        self.inbox_waiting: dict[EventConsumer, dict[uuid.UUID, Step]] = {}
        self.subjects: set[str] = set()  # whose day-28 outcome to time
        self.outcome_seen: dict[str, float] = {}
        self.polls = 0
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        # A short fetch wait: the broker answers a multi-topic fetch only when the wait
        # expires (about 200 ms at aiokafka's default 500 ms), which would blur what we observe.
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                         fetch_max_wait_ms=20)
        await self.consumer.start()
        await self.consumer.topics()
        parts = [TopicPartition(t, p) for t in (*topics.EVENT_TOPICS, topics.OUTCOMES)
                 for p in sorted(self.consumer.partitions_for_topic(t) or ())]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)
        self.conn = await asyncpg.connect(self.database_url)
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.consumer.stop()
        await self.conn.close()

    def new_step(self, subject: str, command_type: str, command_id: uuid.UUID, expected_event: str,
                 phase: str | None, downstream: EventConsumer | None) -> Step:
        loop = asyncio.get_running_loop()
        step = Step(subject, command_type, expected_event, phase, downstream, command_id,
                    visible=loop.create_future(), ready=loop.create_future() if downstream else None)
        self.by_command[step.command_id] = step
        if step.phase is not None:
            self.phase_waiting[step.subject] = step
        return step

    def forget(self, step: Step) -> None:
        # by_command keeps the step: its event may reach the watcher after the projection showed it.
        if self.phase_waiting.get(step.subject) is step:
            del self.phase_waiting[step.subject]
        if step.downstream and step.event_id:
            self.inbox_waiting.get(step.downstream, {}).pop(step.event_id, None)

    @staticmethod
    def _fail(fut: asyncio.Future | None, reason: str) -> None:
        if fut is not None and not fut.done():
            fut.set_exception(StepFailed(reason))

    async def _watch(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            t = now_s()
            for tp, records in batch.items():
                for r in records:
                    try:
                        env = EventEnvelope.model_validate_json(r.value or b"")
                    except ValidationError:
                        continue
                    if tp.topic == topics.OUTCOMES:
                        if (env.event_type == ev.Day28ResponseDetermined.event_type and env.subject_id in self.subjects
                                and env.subject_id not in self.outcome_seen):
                            self.outcome_seen[env.subject_id] = t
                        continue
                    step = self.by_command.get(env.causation_id) if env.causation_id else None
                    if step is None:
                        continue
                    if env.event_type == ev.CommandRejected.event_type:
                        p = env.payload
                        reason = f"{step.command_type} refused: {p.get('reason_code')}: {p.get('reason')}"
                        self._fail(step.visible, reason)
                        self._fail(step.ready, reason)
                    elif env.event_type == step.expected_event and step.event_id is None:
                        step.event_id, step.t_on_topic = env.event_id, t
                        step.stored_after = env.recorded_at.timestamp() - step.wall_publish
                        step.relayed_after = r.timestamp / 1000 - step.wall_publish
                        if step.phase is None and not step.visible.done():
                            step.t_visible = t
                            step.visible.set_result(t)
                        if step.downstream and step.ready is not None and not step.ready.done():
                            self.inbox_waiting.setdefault(step.downstream, {})[env.event_id] = step

    async def _poll(self) -> None:
        while True:
            if self.phase_waiting:
                rows = await self.conn.fetch(
                    "SELECT subject_id, phase FROM projection.subject_state WHERE subject_id = ANY($1::text[])",
                    list(self.phase_waiting))
                t = now_s()
                for r in rows:
                    step = self.phase_waiting.get(r["subject_id"])
                    if step and r["phase"] in PHASES and PHASES.index(r["phase"]) >= PHASES.index(step.phase):
                        del self.phase_waiting[r["subject_id"]]
                        step.t_visible = t
                        if not step.visible.done():
                            step.visible.set_result(t)
            for consumer, waiting in self.inbox_waiting.items():
                if waiting:
                    rows = await self.conn.fetch(
                        f"SELECT message_id FROM {consumer.schema}.inbox WHERE consumer = $1"
                        " AND message_id = ANY($2::uuid[])", consumer.name, list(waiting))
                    t = now_s()
                    for r in rows:
                        step = waiting.pop(r["message_id"], None)
                        if step and step.ready and not step.ready.done():
                            step.t_ready = t
                            step.ready.set_result(t)
            self.polls += 1
            await asyncio.sleep(self.poll_s)


async def relays_caught_up(conn: asyncpg.Connection, stores: Sequence[str]) -> bool:
    """Every store's relay has published everything stored so far."""
    for schema in stores:
        stored = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {schema}.events")
        published = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {schema}.relay_checkpoint")
        if published < stored:
            return False
    return True


async def settle(bootstrap: str, database_url: str, timeout: float) -> float:
    """Until the system is quiet: every relay has published its store and every consumer
    of the event topics has applied the whole log. Returns how long that took."""
    t0 = now_s()
    conn = await asyncpg.connect(database_url)
    try:
        while not await relays_caught_up(conn, topology().stores):
            if now_s() - t0 > timeout:
                raise TimeoutError(f"the relays did not publish their stores within {timeout:.0f}s")
            await asyncio.sleep(0.05)
        ends = await log_ends(bootstrap, topics.EVENT_TOPICS)
        await wait_applied(conn, topology().consumers, ends, max(1.0, timeout - (now_s() - t0)), poll_s=0.05,
                           what="the log")
    finally:
        await conn.close()
    return now_s() - t0
