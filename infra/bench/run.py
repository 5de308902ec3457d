"""`celltrail bench`: CellTrail's throughput and latency against the raw broker, in one run,
on one broker and one database (docs/benchmark.md explains every number).

(a) raw aiokafka baseline: N messages the size of an encoded EventEnvelope, keyed by subject
    id like ours, acks=all and no idempotence (our producer settings), to fresh topics with
    the event topics' partition count: produce only, consume only, and produce while a
    consumer reads concurrently (first send to last receive). The last is the baseline.
(b) end to end: subjects registered over HTTP, then driven concurrently through
    EnrollSubject -> RecordApheresisCollection -> RecordProductRelease -> RecordInfusion ->
    RecordResponseAssessment, each command a CommandEnvelope on its command topic. Latency
    of a command = publish until the projection's committed read model shows the phase
    it implies; a subject's next command goes only once the step is visible there *and*
    the downstream service whose check the next command needs has applied the event.
(c) projection rebuild: valid EventEnvelopes (built with the contracts models, full
    synthetic journeys) produced straight to the event topics, as a replayed log would be,
    until they hold at least --events events; then POST /admin/rebuild and time until
    GET /status reports lag 0.

Starts a System in a temporary directory (embedded PostgreSQL and Tansu unless
DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are set) and always stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import ValidationError

from contracts import events as ev
from contracts import topics
from contracts.base import CommandPayload, EventPayload
from contracts.commands import (
    EnrollSubject,
    RecordApheresisCollection,
    RecordInfusion,
    RecordProductRelease,
    RecordResponseAssessment,
    RegisterCentre,
    RegisterPatient,
)
from contracts.envelope import CommandEnvelope, EventEnvelope
from infra.tooling.specs import subscriptions
from infra.runtime.messaging import new_producer
from infra.runtime.relay import encode_event, kafka_headers

ACTOR = "celltrail-bench"
# The projection's milestones in journey order (services/projection/domain/subject_view.py);
# its `phase` column is the furthest one reached.
PHASES = ("registered", "enrolled", "collected", "released", "infused", "assessed")
PROGRAMMES = ("CART-BALL-RR", "CARCIK-CD19-P2")
EVENT_TOPIC_OF = {"enrollment": topics.ENROLLMENT_EVENTS, "manufacturing": topics.MANUFACTURING_EVENTS,
                  "infusion": topics.INFUSION_EVENTS, "assessment": topics.ASSESSMENT_EVENTS}
DEFAULTS = {"events": 100_000, "subjects": 200, "raw_messages": 50_000, "json_out": None,
            "poll_ms": 5.0, "step_timeout": 60.0}


def say(msg: str) -> None:
    print(msg, flush=True)


def now_s() -> float:
    return time.perf_counter()


# --- statistics ----------------------------------------------------------------------
def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): an observed value, never an interpolation."""
    if not values:
        return None
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def latency_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in seconds]
    if not ms:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {"n": len(ms), "p50": round(percentile(ms, 50), 2), "p90": round(percentile(ms, 90), 2),
            "p99": round(percentile(ms, 99), 2), "max": round(max(ms), 2), "mean": round(sum(ms) / len(ms), 2)}


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


# --- HTTP ------------------------------------------------------------------------------
def _http_json(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> Any:
    req = urllib.request.Request(url, data=body, method=method, headers={
        "content-type": "application/json", "x-celltrail-actor": ACTOR})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


async def http_json(method: str, url: str, body: bytes | None = None, timeout: float = 30) -> Any:
    return await asyncio.to_thread(_http_json, method, url, body, timeout)


async def projection_lag(projection_url: str) -> int | None:
    try:
        return (await http_json("GET", f"{projection_url}/status", timeout=10)).get("lag")
    except urllib.error.HTTPError:
        return None  # 503 while the projection is starting


# --- synthetic, contract-valid events (the "replayed log" of (c), and message sizes) ----
def _start_of_day(d: date) -> datetime:
    return datetime.combine(d, dtime(0), tzinfo=timezone.utc)


def synthetic_journey(subject_id: str, centre_id: str, n: int, recorded_at: datetime) -> list[EventEnvelope]:
    """One subject's full journey as its services would have published it: six events,
    each payload and envelope validated by the contracts models."""
    day0 = date(2024, 1, 1) + timedelta(days=n % 700)
    programme = PROGRAMMES[n % len(PROGRAMMES)]
    coi = f"COI-SYN-{subject_id[2:]}"
    collected = datetime.combine(day0 + timedelta(days=10), dtime(9, 30), tzinfo=timezone.utc)
    released = datetime.combine(day0 + timedelta(days=30), dtime(16), tzinfo=timezone.utc)
    infused = datetime.combine(day0 + timedelta(days=33), dtime(10), tzinfo=timezone.utc)
    assessed_on = infused.date() + timedelta(days=28)
    if n % 4 == 3:  # a non-responder now and then, so the report has both kinds
        response = dict(marrow_blasts_percent=12.0, circulating_blasts=True, extramedullary_disease=False,
                        anc_per_ul=600, platelets_per_ul=40000, flow_mrd_percent=1.5, molecular_mrd_percent=None,
                        response_category=ev.ResponseCategory.NO_RESPONSE, mrd_status=ev.MrdStatus.POSITIVE,
                        morphologic_response=False, flow_response=True, molecular_response=None)
    else:
        response = dict(marrow_blasts_percent=2.0, circulating_blasts=False, extramedullary_disease=False,
                        anc_per_ul=1800, platelets_per_ul=120000, flow_mrd_percent=0.0, molecular_mrd_percent=0.0,
                        response_category=ev.ResponseCategory.CR, mrd_status=ev.MrdStatus.NEGATIVE,
                        morphologic_response=True, flow_response=True, molecular_response=True)
    items: list[tuple[str, int, EventPayload, datetime, str | None]] = [
        (f"subject-{subject_id}", 1, ev.PatientRegistered(subject_id=subject_id, centre_id=centre_id),
         _start_of_day(day0), centre_id),
        (f"subject-{subject_id}", 2, ev.SubjectEnrolled(subject_id=subject_id, programme_id=programme,
                                                         centre_id=centre_id, enrolled_on=day0),
         _start_of_day(day0), centre_id),
        (f"coi-{coi}", 1, ev.ApheresisCollected(coi_id=coi, subject_id=subject_id, centre_id=centre_id,
                                                 collected_at=collected), collected, centre_id),
        (f"coi-{coi}", 2, ev.ProductReleased(coi_id=coi, subject_id=subject_id, lot_number=f"LOT-{coi[8:]}",
                                              released_at=released, released_by="QP-BENCH",
                                              viable_cells_per_ml=2.5e6, volume_ml=68.0), released, None),
        (f"infusions-{subject_id}", 1, ev.ProductInfused(subject_id=subject_id, coi_id=coi, infused_at=infused,
                                                          infusion_number=1), infused, None),
        (f"assessments-{subject_id}", 1, ev.ResponseAssessed(subject_id=subject_id, assessed_on=assessed_on,
                                                              study_day=28, **response),
         _start_of_day(assessed_on), None),
    ]
    correlation = uuid.uuid4()
    return [EventEnvelope(event_id=uuid.uuid4(), event_type=p.event_type, schema_version=p.schema_version,
                          stream_id=stream, stream_version=version, position=None, subject_id=subject_id,
                          occurred_at=occurred, recorded_at=recorded_at, correlation_id=correlation,
                          causation_id=uuid.uuid4(), actor=ACTOR, centre_id=centre,
                          payload=p.model_dump(mode="json"))
            for stream, version, p, occurred, centre in items]


def new_subject_id() -> str:
    return "S-" + secrets.token_hex(6).upper()


def event_topic(env: EventEnvelope) -> str:
    return EVENT_TOPIC_OF[env.event_type.split(".", 1)[0]]


# --- (a) raw aiokafka baseline --------------------------------------------------------
async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in names])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(names)
    except Exception:  # best effort: an embedded broker is thrown away anyway
        pass
    finally:
        await admin.close()


def raw_messages(n: int) -> tuple[list[tuple[bytes, bytes, list[tuple[str, bytes]]]], int]:
    """(key, value, headers) for n messages: real encoded journey envelopes, cycled, six
    per subject key, with our three headers. Returns them and the mean value size."""
    now = datetime.now(timezone.utc)
    templates = []
    for j in range(16):
        for env in synthetic_journey(new_subject_id(), "BENCH-RAW", j, now):
            templates.append((env.key, encode_event(env), kafka_headers(env)))
    out = [templates[i % len(templates)] for i in range(n)]
    return out, round(sum(len(v) for _, v, _ in templates) / len(templates))


async def _produce(producer: AIOKafkaProducer, topic: str, msgs, window: int = 10_000) -> float:
    """Send everything as fast as the client allows; return the time of the last ack."""
    pending = []
    for key, value, headers in msgs:
        pending.append(await producer.send(topic, value=value, key=key, headers=headers))
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return now_s()


async def _positioned_consumer(bootstrap: str, topic: str, partitions: int) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    for tp in parts:
        await consumer.position(tp)
    return consumer


async def _consume(consumer: AIOKafkaConsumer, n: int, timeout: float) -> float:
    got, deadline = 0, now_s() + timeout
    while got < n:
        if now_s() > deadline:
            raise TimeoutError(f"raw consumer received {got} of {n} messages within {timeout:.0f}s")
        for records in (await consumer.getmany(timeout_ms=200)).values():
            got += len(records)
    return now_s()


async def bench_raw(bootstrap: str, n: int, partitions: int, run_id: str) -> dict[str, Any]:
    msgs, size = raw_messages(n)
    separate, concurrent = f"celltrail.bench.{run_id}.raw", f"celltrail.bench.{run_id}.raw-concurrent"
    await create_topics(bootstrap, [separate, concurrent], partitions)
    timeout = max(120.0, n / 200)
    producer = new_producer(bootstrap)  # exactly our producer: acks=all, no idempotence, linger 2 ms
    await producer.start()
    try:
        await producer.partitions_for(separate)
        await producer.partitions_for(concurrent)
        t0 = now_s()
        t1 = await _produce(producer, separate, msgs)
        produce_s = t1 - t0
        say(f"  produce only:  {n} msgs in {produce_s:.2f}s")

        consumer = await _positioned_consumer(bootstrap, separate, partitions)
        try:
            t0 = now_s()
            consume_s = await _consume(consumer, n, timeout) - t0
        finally:
            await consumer.stop()
        say(f"  consume only:  {n} msgs in {consume_s:.2f}s")

        consumer = await _positioned_consumer(bootstrap, concurrent, partitions)
        try:
            t0 = now_s()
            reader = asyncio.create_task(_consume(consumer, n, timeout))
            await _produce(producer, concurrent, msgs)
            combined_s = await reader - t0
        finally:
            await consumer.stop()
        say(f"  concurrently:  {n} msgs first send to last receive in {combined_s:.2f}s")
    finally:
        await producer.stop()
    await delete_topics(bootstrap, [separate, concurrent])
    return {"messages": n, "message_bytes": size, "partitions": partitions,
            "produce_seconds": round(produce_s, 3), "produce_msgs_per_s": rate(n, produce_s),
            "consume_seconds": round(consume_s, 3), "consume_msgs_per_s": rate(n, consume_s),
            "combined_seconds": round(combined_s, 3), "combined_msgs_per_s": rate(n, combined_s)}


# --- (b) end to end ---------------------------------------------------------------------
class StepFailed(Exception):
    pass


@dataclass
class Step:
    subject: str
    command_type: str
    expected_event: str
    phase: str | None  # projection phase that shows the step; None: seen on its event topic suffices
    downstream: str | None  # service whose inbox must hold the event before the next step
    command_id: uuid.UUID
    visible: asyncio.Future
    ready: asyncio.Future | None = None
    t_publish: float = 0.0
    t_on_topic: float | None = None
    t_visible: float | None = None
    t_ready: float | None = None
    event_id: uuid.UUID | None = None


class Tracker:
    """Sees what each command caused and when the projection shows it.

    A consumer on the event topics and celltrail.outcomes.v1 matches events to commands by
    causation id (a CommandRejected fails the step); one PostgreSQL connection polls, every
    `poll_s`, the projection's committed read model (projection.subject_state.phase, written
    in the same transaction as the event's offset) for subjects with a step in flight, and
    the downstream services' inbox tables for events the next command depends on."""

    def __init__(self, bootstrap: str, database_url: str, poll_s: float) -> None:
        self.bootstrap, self.database_url, self.poll_s = bootstrap, database_url, poll_s
        self.by_command: dict[uuid.UUID, Step] = {}
        self.phase_waiting: dict[str, Step] = {}
        self.inbox_waiting: dict[str, dict[uuid.UUID, Step]] = {s: {} for s in ("manufacturing", "infusion",
                                                                                "assessment")}
        self.subjects: set[str] = set()
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

    def expect(self, step: Step) -> None:
        self.by_command[step.command_id] = step
        if step.phase is not None:
            self.phase_waiting[step.subject] = step

    def forget(self, step: Step) -> None:
        # by_command keeps the step: its event may reach the watcher after the projection showed it.
        if self.phase_waiting.get(step.subject) is step:
            del self.phase_waiting[step.subject]
        if step.downstream and step.event_id:
            self.inbox_waiting[step.downstream].pop(step.event_id, None)

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
                        if step.phase is None and not step.visible.done():
                            step.t_visible = t
                            step.visible.set_result(t)
                        if step.downstream and step.ready is not None and not step.ready.done():
                            self.inbox_waiting[step.downstream][env.event_id] = step

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
            for schema, waiting in self.inbox_waiting.items():
                if waiting:
                    rows = await self.conn.fetch(
                        f"SELECT message_id FROM {schema}.inbox WHERE consumer = $1 AND message_id = ANY($2::uuid[])",
                        schema, list(waiting))
                    t = now_s()
                    for r in rows:
                        step = waiting.pop(r["message_id"], None)
                        if step and step.ready and not step.ready.done():
                            step.t_ready = t
                            step.ready.set_result(t)
            self.polls += 1
            await asyncio.sleep(self.poll_s)


class Driver:
    def __init__(self, tracker: Tracker, producer: AIOKafkaProducer, timeout: float) -> None:
        self.tracker, self.producer, self.timeout = tracker, producer, timeout
        self.steps: list[Step] = []
        self.failures: list[str] = []

    async def issue(self, subject: str, command: CommandPayload, expected_event: str, phase: str | None,
                    downstream: str | None, record: bool = True) -> Step:
        env = CommandEnvelope.wrap(command, actor=ACTOR)
        value = env.model_dump_json().encode()
        headers = [(topics.HEADER_MESSAGE_ID, str(env.command_id).encode()),
                   (topics.HEADER_MESSAGE_TYPE, env.command_type.encode())]
        loop = asyncio.get_running_loop()
        step = Step(subject, env.command_type, expected_event, phase, downstream, env.command_id,
                    visible=loop.create_future(), ready=loop.create_future() if downstream else None)
        self.tracker.expect(step)
        step.t_publish = now_s()
        await self.producer.send_and_wait(command.topic, value=value, key=env.key, headers=headers)
        try:
            await asyncio.wait_for(step.visible, self.timeout)
            if step.ready is not None:
                await asyncio.wait_for(step.ready, self.timeout)
        except asyncio.TimeoutError:
            raise StepFailed(f"{step.command_type} for {subject}: not visible within {self.timeout:.0f}s") from None
        finally:
            self.tracker.forget(step)
        if record:
            self.steps.append(step)
        return step

    async def journey(self, n: int, subject: str, centre: str) -> None:
        day0 = date(2025, 1, 6) + timedelta(days=n % 300)
        coi = f"COI-B-{subject[2:]}"
        collected = datetime.combine(day0 + timedelta(days=10), dtime(9, 30), tzinfo=timezone.utc)
        released = datetime.combine(day0 + timedelta(days=30), dtime(16), tzinfo=timezone.utc)
        infused = datetime.combine(day0 + timedelta(days=33), dtime(10), tzinfo=timezone.utc)
        plan = [
            (EnrollSubject(subject_id=subject, programme_id=PROGRAMMES[n % len(PROGRAMMES)], centre_id=centre,
                           enrolled_on=day0), ev.SubjectEnrolled, "enrolled", "manufacturing"),
            (RecordApheresisCollection(coi_id=coi, subject_id=subject, centre_id=centre, collected_at=collected),
             ev.ApheresisCollected, "collected", None),
            (RecordProductRelease(coi_id=coi, subject_id=subject, lot_number=f"LOT-{subject[2:]}",
                                  released_at=released, released_by="QP-BENCH", viable_cells_per_ml=2.5e6,
                                  volume_ml=68.0), ev.ProductReleased, "released", "infusion"),
            (RecordInfusion(subject_id=subject, coi_id=coi, infused_at=infused), ev.ProductInfused, "infused",
             "assessment"),
            (RecordResponseAssessment(subject_id=subject, assessed_on=infused.date() + timedelta(days=28),
                                      marrow_blasts_percent=2.0, circulating_blasts=False,
                                      extramedullary_disease=False, anc_per_ul=1800, platelets_per_ul=120000,
                                      flow_mrd_percent=0.0, molecular_mrd_percent=0.0),
             ev.ResponseAssessed, "assessed", None),
        ]
        try:
            for command, event_cls, phase, downstream in plan:
                await self.issue(subject, command, event_cls.event_type, phase, downstream)
        except StepFailed as exc:
            self.failures.append(str(exc))


async def bench_end_to_end(info, n_subjects: int, run_id: str, poll_s: float, step_timeout: float) -> dict[str, Any]:
    tracker = Tracker(info.kafka_bootstrap_servers, info.database_url, poll_s)
    producer = new_producer(info.kafka_bootstrap_servers)
    await producer.start()
    await tracker.start()
    driver = Driver(tracker, producer, step_timeout)
    try:
        n_centres = max(1, min(8, n_subjects // 25))
        centres = [f"BENCH-{run_id}-{k}" for k in range(n_centres)]
        await asyncio.gather(*(driver.issue("-", RegisterCentre(centre_id=c, name=f"Bench centre {c}", country="IT"),
                                            ev.CentreRegistered.event_type, None, None, record=False)
                               for c in centres))
        # Registration (HTTP, not timed into (b)): identifiers never touch Kafka.
        sem = asyncio.Semaphore(8)

        async def register(i: int) -> str:
            cmd = RegisterPatient(centre_id=centres[i % n_centres], hospital_record_number=f"BENCH-{run_id}-{i}",
                                  family_name="Bench", given_name=f"Subject {i}", date_of_birth=date(1970, 1, 1),
                                  registered_on=date(2025, 1, 6))
            async with sem:
                return (await http_json("POST", f"{info.urls['enrollment']}/patients",
                                        cmd.model_dump_json().encode()))["subject_id"]

        t0 = now_s()
        subjects = await asyncio.gather(*(register(i) for i in range(n_subjects)))
        reg_s = now_s() - t0
        tracker.subjects.update(subjects)
        conn = await asyncpg.connect(info.database_url)
        try:
            deadline = now_s() + 120
            while await conn.fetchval("SELECT count(*) FROM projection.subject_state WHERE subject_id = ANY($1)",
                                      subjects) < n_subjects:
                if now_s() > deadline:
                    raise TimeoutError("the projection did not show the registered patients within 120s")
                await asyncio.sleep(0.05)
        finally:
            await conn.close()
        say(f"  {n_subjects} patients registered over HTTP in {reg_s:.2f}s; driving 5 commands each ...")

        await asyncio.gather(*(driver.journey(i, s, centres[i % n_centres]) for i, s in enumerate(subjects)))
        steps = driver.steps
        done = [s for s in steps if s.t_visible is not None]
        wall = (max(s.t_visible for s in done) - min(s.t_publish for s in steps)) if done else 0.0
        # The day-28 outcome (celltrail.outcomes.v1) of each assessed subject: wait for the stragglers.
        assessed = {s.subject: s for s in done if s.command_type == "RecordResponseAssessment"}
        deadline = now_s() + 30
        while now_s() < deadline and not assessed.keys() <= tracker.outcome_seen.keys():
            await asyncio.sleep(0.05)
        outcome_lat = [tracker.outcome_seen[k] - s.t_publish for k, s in assessed.items() if k in tracker.outcome_seen]
        # Check, outside the timed window, that the projection's HTTP API agrees.
        sample = subjects[:: max(1, len(subjects) // 20)]
        views = await asyncio.gather(*(http_json("GET", f"{info.urls['projection']}/subjects/{s}") for s in sample))
        not_assessed = [v["subject_id"] for v in views if v["phase"] != "assessed"]
        by_type: dict[str, dict[str, Any]] = {}
        for ctype in ("EnrollSubject", "RecordApheresisCollection", "RecordProductRelease", "RecordInfusion",
                      "RecordResponseAssessment"):
            of = [s for s in done if s.command_type == ctype]
            by_type[ctype] = {"visible_ms": latency_ms([s.t_visible - s.t_publish for s in of]),
                              "on_topic_ms": latency_ms([s.t_on_topic - s.t_publish for s in of if s.t_on_topic])}
        n_events = len(done)  # each of these commands causes exactly one event
        return {
            "subjects": n_subjects, "centres": n_centres, "registration_seconds": round(reg_s, 3),
            "registrations_per_s": rate(n_subjects, reg_s),
            "commands": len(steps), "commands_expected": 5 * n_subjects, "failures": driver.failures[:20],
            "failed": len(driver.failures), "events": n_events, "outcomes": len(outcome_lat),
            "seconds": round(wall, 3), "commands_per_s": rate(len(done), wall), "events_per_s": rate(n_events, wall),
            "latency_ms": latency_ms([s.t_visible - s.t_publish for s in done]),
            "on_topic_ms": latency_ms([s.t_on_topic - s.t_publish for s in done if s.t_on_topic]),
            "outcome_ms": latency_ms(outcome_lat),
            "by_command": by_type, "poll_ms": poll_s * 1000, "polls": tracker.polls,
            "http_check": {"sampled": len(sample), "not_assessed": not_assessed},
        }
    finally:
        await tracker.stop()
        await producer.stop()


# --- (c) projection rebuild -------------------------------------------------------------
async def true_end_offsets(bootstrap: str, names: tuple[str, ...]) -> dict[TopicPartition, int]:
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
        begins = await consumer.beginning_offsets(parts)
        if any(begins[tp] for tp in parts):  # a retained log that was trimmed: count what is there
            return {tp: ends[tp] - begins[tp] for tp in parts}
        return ends
    finally:
        await consumer.stop()


async def projection_offsets(conn: asyncpg.Connection) -> dict[TopicPartition, int]:
    rows = await conn.fetch("SELECT topic, partition, next_offset FROM projection.consumer_offsets"
                            " WHERE consumer = 'projection'")
    return {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def behind(applied: dict[TopicPartition, int], ends: dict[TopicPartition, int]) -> int:
    return sum(max(0, end - applied.get(tp, 0)) for tp, end in ends.items())


async def generate_log(bootstrap: str, n_subjects: int, centre: str) -> tuple[int, float]:
    """Full synthetic journeys, contract-validated, produced to the event topics keyed by
    subject (as the services' relays publish them). Returns (events, seconds)."""
    producer = new_producer(bootstrap)
    await producer.start()
    sent, t0, chunk = 0, now_s(), 500
    try:
        recorded_at = datetime.now(timezone.utc)
        for start in range(0, n_subjects, chunk):
            futures = []
            for n in range(start, min(n_subjects, start + chunk)):
                for env in synthetic_journey(new_subject_id(), centre, n, recorded_at):
                    futures.append(await producer.send(event_topic(env), value=encode_event(env), key=env.key,
                                                       headers=kafka_headers(env)))
            await asyncio.gather(*futures)
            sent += len(futures)
            if (start // chunk) % 40 == 39:
                say(f"    {sent} events produced ...")
    finally:
        await producer.stop()
    return sent, now_s() - t0


async def wait_quiescent(info, conn: asyncpg.Connection, ends: dict[TopicPartition, int], timeout: float) -> float:
    """Until the projection has applied every event and every service group has committed
    the end of the topics it reads, so the rebuild does not compete with catch-up work."""
    t0 = last_report = now_s()
    probes = {g: AIOKafkaConsumer(bootstrap_servers=info.kafka_bootstrap_servers, group_id=g,
                                  enable_auto_commit=False) for g in subscriptions()}
    for p in probes.values():
        await p.start()
    try:
        while now_s() - t0 < timeout:
            groups_behind = 0
            for group, subscribed in subscriptions().items():
                for tp, end in ends.items():
                    if tp.topic in subscribed:
                        groups_behind += max(0, end - (await probes[group].committed(tp) or 0))
            projection_behind = behind(await projection_offsets(conn), ends)
            if groups_behind == 0 and projection_behind == 0:
                return now_s() - t0
            if now_s() - last_report > 15:
                say(f"    waiting for consumers to settle: projection behind by {projection_behind}, "
                    f"service groups by {groups_behind}")
                last_report = now_s()
            await asyncio.sleep(0.25)
        raise TimeoutError(f"consumers did not catch up within {timeout:.0f}s")
    finally:
        for p in probes.values():
            await p.stop()


async def bench_rebuild(info, min_events: int) -> dict[str, Any]:
    bootstrap, projection = info.kafka_bootstrap_servers, info.urls["projection"]
    existing = sum((await true_end_offsets(bootstrap, topics.EVENT_TOPICS)).values())
    need = max(0, min_events - existing)
    n_subjects = math.ceil(need / 6)
    generated, gen_s = 0, 0.0
    if n_subjects:
        say(f"  {existing} events on the event topics; producing {n_subjects} synthetic journeys "
            f"({n_subjects * 6} events) ...")
        generated, gen_s = await generate_log(bootstrap, n_subjects, "BENCH-SYN")
        say(f"  produced {generated} events in {gen_s:.2f}s; waiting for the live consumers to settle ...")
    ends = await true_end_offsets(bootstrap, topics.EVENT_TOPICS)
    total = sum(ends.values())
    conn = await asyncpg.connect(info.database_url)
    try:
        settle_s = await wait_quiescent(info, conn, ends, max(300.0, min_events / 100))
        say(f"  settled after {settle_s:.1f}s; rebuilding the projection from {total} events ...")
        t0 = now_s()
        await http_json("POST", f"{projection}/admin/rebuild", timeout=120)
        timeout = max(300.0, total / 50)
        status_zero: float | None = None
        while True:
            if status_zero is None and await projection_lag(projection) == 0:
                status_zero = now_s() - t0
            if behind(await projection_offsets(conn), ends) == 0:
                break
            if now_s() - t0 > timeout:
                raise TimeoutError(f"rebuild did not finish within {timeout:.0f}s")
            await asyncio.sleep(0.05)
        rebuild_s = now_s() - t0
        if status_zero is None:
            status_zero = rebuild_s if await projection_lag(projection) == 0 else None
        views = await conn.fetchval("SELECT count(*) FROM projection.subject_state")
    finally:
        await conn.close()
    return {"events": total, "generated": generated, "generate_seconds": round(gen_s, 3),
            "generate_events_per_s": rate(generated, gen_s), "settle_seconds": round(settle_s, 3),
            "seconds": round(rebuild_s, 3), "events_per_s": rate(total, rebuild_s),
            "status_lag0_seconds": None if status_zero is None else round(status_zero, 3),
            "subject_views": views}


# --- orchestration ----------------------------------------------------------------------
async def event_partitions(bootstrap: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        return len(consumer.partitions_for_topic(topics.ENROLLMENT_EVENTS) or ()) or 3
    finally:
        await consumer.stop()


async def run(info, opts: dict[str, Any], embedded: dict[str, bool]) -> dict[str, Any]:
    run_id = secrets.token_hex(3).upper()
    partitions = await event_partitions(info.kafka_bootstrap_servers)
    results: dict[str, Any] = {
        "config": {k: opts[k] for k in ("events", "subjects", "raw_messages", "poll_ms", "step_timeout")},
        "environment": {"embedded_postgres": embedded["pg"], "embedded_broker": embedded["broker"],
                        "cpus": os.cpu_count(), "python": platform.python_version(), "run_id": run_id},
    }
    say(f"(a) raw aiokafka baseline: {opts['raw_messages']} messages, {partitions} partitions, acks=all")
    results["raw"] = await bench_raw(info.kafka_bootstrap_servers, opts["raw_messages"], partitions, run_id)
    say(f"(b) end to end: {opts['subjects']} subjects x 5 commands")
    results["end_to_end"] = await bench_end_to_end(info, opts["subjects"], run_id, opts["poll_ms"] / 1000,
                                                   opts["step_timeout"])
    say(f"(c) projection rebuild: at least {opts['events']} events")
    results["rebuild"] = await bench_rebuild(info, opts["events"])
    base = results["raw"]["combined_msgs_per_s"]
    results["ratios"] = {
        "end_to_end_events_vs_raw": round(results["end_to_end"]["events_per_s"] / base, 4) if base else None,
        "rebuild_events_vs_raw": round(results["rebuild"]["events_per_s"] / base, 4) if base else None,
    }
    return results


def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def print_table(r: dict[str, Any]) -> None:
    a, b, c, env = r["raw"], r["end_to_end"], r["rebuild"], r["environment"]
    where = ("embedded PostgreSQL" if env["embedded_postgres"] else "external PostgreSQL") + " + " + \
            ("embedded Tansu" if env["embedded_broker"] else "external Kafka")
    say("")
    say(f"CellTrail benchmark ({where}, {env['cpus']} CPUs, Python {env['python']})")
    rows = [
        ("(a) raw produce, acks=all", f"{a['messages']} msgs", a["produce_seconds"], a["produce_msgs_per_s"], "msg/s",
         None, None),
        ("(a) raw consume", f"{a['messages']} msgs", a["consume_seconds"], a["consume_msgs_per_s"], "msg/s",
         None, None),
        ("(a) raw produce+consume (baseline)", f"{a['messages']} msgs", a["combined_seconds"], a["combined_msgs_per_s"],
         "msg/s", None, None),
        ("(b) commands -> projection", f"{b['commands']} cmds", b["seconds"], b["commands_per_s"], "cmd/s",
         b["latency_ms"]["p50"], b["latency_ms"]["p99"]),
        ("(b) events, end to end", f"{b['events']} events", b["seconds"], b["events_per_s"], "ev/s", None, None),
        ("(b)   command -> event on topic", f"{b['on_topic_ms']['n']} cmds", None, None, "",
         b["on_topic_ms"]["p50"], b["on_topic_ms"]["p99"]),
        ("(b)   assessment -> day-28 outcome", f"{b['outcome_ms']['n']} outc", None, None, "",
         b["outcome_ms"]["p50"], b["outcome_ms"]["p99"]),
        ("(c) projection rebuild", f"{c['events']} events", c["seconds"], c["events_per_s"], "ev/s", None, None),
    ]
    say(f"{'measurement':<38}{'count':>15}{'seconds':>10}{'rate':>12} {'unit':<6}{'p50 ms':>9}{'p99 ms':>9}")
    for name, count, secs, rt, unit, p50, p99 in rows:
        say(f"{name:<38}{count:>15}{_fmt(secs, 2):>10}{_fmt(rt):>12} {unit:<6}{_fmt(p50):>9}{_fmt(p99):>9}")
    say(f"message size {a['message_bytes']} bytes (mean encoded EventEnvelope); "
        f"latency = publish -> phase visible in the projection's committed read model "
        f"(polled every {b['poll_ms']:g} ms)")
    say("per command (p50 / p99 ms to projection): " + ", ".join(
        f"{k} {_fmt(v['visible_ms']['p50'])}/{_fmt(v['visible_ms']['p99'])}" for k, v in b["by_command"].items()))
    say(f"(c) counted from POST /admin/rebuild until projection.offsets reached the true end of every "
        f"partition; GET /status first said lag 0 after {_fmt(c['status_lag0_seconds'], 2)}s")
    ratios = r["ratios"]
    say(f"ratio (b)/(a): {_fmt(b['events_per_s'])} ev/s / {_fmt(a['combined_msgs_per_s'])} msg/s = "
        f"{_fmt(ratios['end_to_end_events_vs_raw'], 4)}")
    say(f"ratio (c)/(a): {_fmt(c['events_per_s'])} ev/s / {_fmt(a['combined_msgs_per_s'])} msg/s = "
        f"{_fmt(ratios['rebuild_events_vs_raw'], 4)}")
    if b["failed"] or b["http_check"]["not_assessed"]:
        say(f"WARNING: {b['failed']} subject journeys failed; first: {b['failures'][:3]}; "
            f"not assessed over HTTP: {b['http_check']['not_assessed'][:5]}")


def options(args: argparse.Namespace | None) -> dict[str, Any]:
    opts = dict(DEFAULTS)
    for k in DEFAULTS:
        v = getattr(args, k, None) if args is not None else None
        if v is not None:
            opts[k] = v
    if opts["json_out"] is None and os.environ.get("CELLTRAIL_BENCH_JSON"):
        opts["json_out"] = os.environ["CELLTRAIL_BENCH_JSON"]
    for k in ("events", "subjects", "raw_messages"):
        if opts[k] < 1:
            raise ValueError(f"--{k.replace('_', '-')} must be at least 1")
    return opts


class _Terminated(KeyboardInterrupt):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


def main(args: argparse.Namespace | None = None) -> int:
    from infra.tooling.supervisor import System

    try:
        opts = options(args)
    except ValueError as exc:
        print(f"celltrail bench: {exc}", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="celltrail-bench-"))
    system = System(home, fixed_ports=False, ephemeral=True)
    embedded = {"pg": not os.environ.get("DATABASE_URL"), "broker": not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")}
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    keep_home = False
    try:
        say("starting CellTrail (embedded PostgreSQL and broker unless DATABASE_URL / "
            "KAFKA_BOOTSTRAP_SERVERS are set) ...")
        info = system.start()
        say(f"  PostgreSQL {info.database_url}\n  Kafka      {info.kafka_bootstrap_servers}")
        results = asyncio.run(run(info, opts, embedded))
        print_table(results)
        if opts["json_out"]:
            Path(opts["json_out"]).write_text(json.dumps(results, indent=2) + "\n")
            say(f"results written to {opts['json_out']}")
        ok = results["end_to_end"]["failed"] == 0 and not results["end_to_end"]["http_check"]["not_assessed"]
        keep_home = not ok
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ncelltrail bench: interrupted; stopping CellTrail ...", file=sys.stderr)
        return 130
    except Exception as exc:
        keep_home = True
        traceback.print_exc()
        print(f"celltrail bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        try:
            system.stop()
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)
        if keep_home:
            print(f"celltrail bench: service logs kept in {home / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=DEFAULTS["events"], help="events for the rebuild measurement")
    p.add_argument("--subjects", type=int, default=DEFAULTS["subjects"], help="subjects driven end to end")
    p.add_argument("--raw-messages", type=int, default=DEFAULTS["raw_messages"])
    p.add_argument("--json-out", help="also write the results as JSON to this file")
    p.add_argument("--poll-ms", type=float, default=DEFAULTS["poll_ms"],
                   help="how often the read model is polled for visibility in (b)")
    p.add_argument("--step-timeout", type=float, default=DEFAULTS["step_timeout"],
                   help="seconds a command may take to become visible before its subject counts as failed")
    return p


if __name__ == "__main__":
    sys.exit(main(_parser().parse_args()))
