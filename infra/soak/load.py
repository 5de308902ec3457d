"""The soak's load: independent subject journeys, each command keyed and submitted again
under its key until its outcome is known.

A journey registers a patient over enrollment's HTTP API, then sends, one after the other on
the command topics, the bench's dependent journey (`infra.bench.journey.journey_plan`:
enrol, collect, release, infuse, assess) with two clinical observations (vital signs and a
treatment given) between the infusion and the assessment. Every command carries an
idempotency key of its own (`soak:<run>:<subject n>:<step n>:<command type>`).

The embedded broker keeps its log in memory: a command on a topic when the broker dies is
gone. So a command's outcome is awaited, and when none is recorded within `resubmit_after`
seconds, or the send failed, the same command is sent again under the same key (a new
envelope, a new command id): the service records the first outcome under the key and
passes over every later submission of it (infra/runtime/idempotency.py). The outcome is read
where `GET /command-outcomes` reads it, `<service>.command_keys`, for every command in flight
with one query per service and poll. A registration is posted again on a connection failure,
a timeout, a 5xx or `IDEMPOTENCY_KEY_IN_USE`. A subject's next command waits until every
service that applies the previous command's event has applied it (its inbox holds the event),
as the bench's journeys do, since it would otherwise be refused.

A deliberate duplicate: every `duplicate_every`-th command is sent twice at once, each
envelope its own command id, so "none applied twice" is tested even when nothing times out.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import urllib.error
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from contracts.base import CommandPayload
from contracts.commands import RecordObservation, RegisterCentre, RegisterPatient
from contracts.observations import Agent, TreatmentGiven, VitalSigns
from contracts.topology import SERVICES, commands_topic
from infra.bench.journey import journey_plan
from infra.bench.topology import EventConsumer, topology
from infra.runtime.messaging import new_producer
from infra.tooling.loader import command_record, post_patient

RESUBMIT_AFTER = 20.0  # seconds without an outcome before a command is sent again
POLL = 0.25  # seconds between looks at the outcomes and inboxes
IN_USE = "IDEMPOTENCY_KEY_IN_USE"


def store_of(payload: CommandPayload) -> str:
    """The schema of the service whose command topic `payload` travels on."""
    return next(s for s in SERVICES if commands_topic(s) == payload.topic)


@dataclass
class Submission:
    """One command, however often it was sent: what the checks judge."""

    key: str
    command_type: str
    store: str  # the schema of the service that judges it
    subject: str | None
    via: str = "topic"  # topic | http
    phase: str | None = None  # the projection phase its acceptance shows (None: none of its own)
    command_ids: list[str] = field(default_factory=list)  # every envelope sent under the key
    resubmissions: int = 0  # sent again after a timeout or a failure
    duplicates: int = 0  # sent twice on purpose
    outcome: str | None = None  # accepted | refused | None: not known when the soak ended
    reason_code: str | None = None
    original: str | None = None  # the command id the outcome was recorded with
    events: list[tuple[str, str]] = field(default_factory=list)  # (stream id, event type) it caused
    seconds: float | None = None  # from the first send to the outcome

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "command_type": self.command_type, "store": self.store, "subject": self.subject,
                "via": self.via, "outcome": self.outcome, "reason_code": self.reason_code,
                "original": self.original, "sends": len(self.command_ids), "resubmissions": self.resubmissions}


@dataclass
class _Watch:
    store: str
    future: asyncio.Future


class GaveUp(Exception):
    """The soak's drain deadline passed before an outcome was known."""


class Load:
    def __init__(self, *, bootstrap: str, database_url: str, urls: dict[str, str], credential: tuple[str, str],
                 run_id: str, journeys: int = 6, resubmit_after: float = RESUBMIT_AFTER,
                 duplicate_every: int = 7, say: Callable[[str], None] = print) -> None:
        self.bootstrap, self.database_url, self.urls = bootstrap, database_url, urls
        self.actor, self.token = credential
        self.run_id, self.journeys, self.resubmit_after = run_id, journeys, resubmit_after
        self.duplicate_every, self.say = duplicate_every, say
        self.submissions: list[Submission] = []
        self.subjects: dict[str, int] = {}  # subject id -> its journey number
        self.journeys_done = 0
        self.journeys_started = 0
        self.failures: Counter[str] = Counter()  # sends, HTTP calls and database reads that failed
        self.centre = f"SOAK-{run_id}"
        self.stopping = False  # no new step once set
        self.give_up_at = float("inf")  # monotonic: in-flight steps stop waiting then
        self._n = 0
        self._sent = 0
        self._watch: dict[str, _Watch] = {}
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._conn: asyncpg.Connection | None = None
        self._conn_lock = asyncio.Lock()
        self._poller: asyncio.Task | None = None
        self._stopping_producers: set[asyncio.Task] = set()

    # -- running ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll_outcomes())
        sub = await self.submit(RegisterCentre(centre_id=self.centre, name=f"Soak centre {self.run_id}",
                                               country="IT"), f"soak:{self.run_id}:centre", None)
        if sub.outcome != "accepted":
            raise RuntimeError(f"the soak's centre was not registered: {sub.outcome} {sub.reason_code}")

    async def run(self, seconds: float, drain: float) -> None:
        """Journeys for `seconds`; then no new step, and the steps in flight get `drain` more
        seconds to learn their outcomes."""
        workers = [asyncio.create_task(self._worker()) for _ in range(self.journeys)]
        await asyncio.sleep(seconds)
        self.stopping = True
        self.give_up_at = time.monotonic() + drain
        await asyncio.gather(*workers)

    async def close(self) -> None:
        if self._poller:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._producer is not None:
            await _quietly(self._producer.stop())
        await asyncio.gather(*self._stopping_producers, return_exceptions=True)
        if self._conn is not None:
            await _quietly(self._conn.close())

    async def _worker(self) -> None:
        while not self.stopping:
            n, self._n = self._n, self._n + 1
            self.journeys_started += 1
            try:
                if await self.journey(n):
                    self.journeys_done += 1
            except GaveUp:
                return

    # -- a journey ---------------------------------------------------------------------------
    async def journey(self, n: int) -> bool:
        """Subject n's journey; True when every step was accepted."""
        key = f"soak:{self.run_id}:{n}"
        reg = await self.register(RegisterPatient(
            centre_id=self.centre, hospital_record_number=f"SOAK-{self.run_id}-{n}", family_name="Soak",
            given_name=f"Subject {n}", date_of_birth=date(1970, 1, 1), registered_on=date(2025, 1, 6)),
            f"{key}:register")
        if reg.outcome != "accepted" or reg.subject is None:
            return False
        subject = reg.subject
        self.subjects[subject] = n
        infused_at, step = None, 0
        for payload, event_cls, phase in journey_plan(n, subject, self.centre):
            if self.stopping:
                return False
            steps: list[tuple[CommandPayload, str | None, str | None]] = [(payload, event_cls.event_type, phase)]
            if phase == "assessed":
                steps = [*((o, None, None) for o in observations(subject, infused_at)), *steps]
            for cmd, event_type, shows in steps:
                if self.stopping:
                    return False
                step += 1
                sub = await self.submit(cmd, f"{key}:{step}:{cmd.command_type}", subject, shows)
                if sub.outcome != "accepted":
                    return False
                if event_type is not None and not await self.applied_downstream(sub, event_type):
                    return False
            if phase == "infused":
                infused_at = payload.infused_at
        return True

    # -- one command ---------------------------------------------------------------------------
    async def submit(self, payload: CommandPayload, key: str, subject: str | None,
                     phase: str | None = None) -> Submission:
        """Send until the outcome under `key` is known (or the soak gives up: outcome None)."""
        store = store_of(payload)
        sub = Submission(key, payload.command_type, store, subject, phase=phase)
        self.submissions.append(sub)
        watch = self._watch[key] = _Watch(store, asyncio.get_running_loop().create_future())
        t0 = time.monotonic()
        self._sent += 1
        twice = self.duplicate_every > 0 and self._sent % self.duplicate_every == 0
        try:
            while True:
                if sub.command_ids:
                    sub.resubmissions += 1
                sent = await self._send(sub, payload, key)
                if sent and twice:
                    twice = False
                    if await self._send(sub, payload, key):
                        sub.duplicates += 1
                wait = self.resubmit_after if sent else 1.0
                try:
                    row = await asyncio.wait_for(asyncio.shield(watch.future), min(wait, self._left()))
                except asyncio.TimeoutError:
                    if self._left() <= 0:
                        raise GaveUp() from None
                    continue
                sub.outcome, sub.reason_code = row["outcome"], row["reason_code"]
                sub.original = str(row["command_id"]) if row["command_id"] else None
                events = row["events"]
                events = json.loads(events) if isinstance(events, str) else events or []
                sub.events = [(e["stream_id"], e["event_type"]) for e in events]
                sub.seconds = round(time.monotonic() - t0, 3)
                return sub
        finally:
            self._watch.pop(key, None)

    def _left(self) -> float:
        return max(0.0, self.give_up_at - time.monotonic())

    async def _send(self, sub: Submission, payload: CommandPayload, key: str) -> bool:
        env, kwargs = command_record(payload, self.actor, self.token, key)
        sub.command_ids.append(str(env.command_id))
        producer = None
        try:
            producer = await self._get_producer()
            await asyncio.wait_for(producer.send_and_wait(payload.topic, **kwargs), 10)
            return True
        except Exception as exc:  # noqa: BLE001 - any failure to hand it to the broker: sent again
            self.failures[f"send: {type(exc).__name__}"] += 1
            if producer is not None:
                await self._drop_producer(producer)
            return False

    async def _get_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                producer = new_producer(self.bootstrap)
                try:
                    await asyncio.wait_for(producer.start(), 10)
                except BaseException:
                    await _quietly(producer.stop())
                    raise
                self._producer = producer
            return self._producer

    async def _drop_producer(self, producer: AIOKafkaProducer) -> None:
        """Let `producer` go, if it is still the current one: a send that failed on a producer
        already replaced must not stop its healthy successor (the sends in flight on it would
        fail in turn and stop the next, and no command would reach the broker again)."""
        async with self._producer_lock:
            if self._producer is not producer:
                return
            self._producer = None
        if producer is not None:  # let go in the background: stopping a client of a dead broker takes a while
            task = asyncio.create_task(_quietly(producer.stop()))
            self._stopping_producers.add(task)
            task.add_done_callback(self._stopping_producers.discard)

    async def register(self, cmd: RegisterPatient, key: str) -> Submission:
        """POST /patients under `key` until answered with an outcome."""
        sub = Submission(key, "RegisterPatient", "enrollment", None, via="http", phase="registered")
        self.submissions.append(sub)
        t0 = time.monotonic()
        while True:
            if sub.command_ids:
                sub.resubmissions += 1
                await asyncio.sleep(1.0)
            if self._left() <= 0:
                raise GaveUp()
            sub.command_ids.append(f"http:{len(sub.command_ids)}")
            try:
                body = await asyncio.to_thread(post_patient, self.urls["enrollment"], cmd, self.token, 10, key)
            except urllib.error.HTTPError as exc:
                detail = _json(exc)
                code = detail.get("code") or str(exc.code)
                if exc.code >= 500 or exc.code == 429 or code == IN_USE:
                    self.failures[f"register: {code}"] += 1
                    continue
                sub.outcome, sub.reason_code = "refused", code
                sub.seconds = round(time.monotonic() - t0, 3)
                return sub
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failures[f"register: {type(exc).__name__}"] += 1
                continue
            sub.outcome, sub.subject = "accepted", body["subject_id"]
            sub.seconds = round(time.monotonic() - t0, 3)
            return sub

    # -- what the services recorded ------------------------------------------------------------
    async def _db(self, query: str, *args: Any) -> list[asyncpg.Record] | None:
        """The rows, or None when the database cannot be read now."""
        async with self._conn_lock:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.database_url, timeout=5)
                return await asyncio.wait_for(self._conn.fetch(query, *args), 10)
            except Exception as exc:  # noqa: BLE001 - PostgreSQL away or restarting: read again later
                self.failures[f"read: {type(exc).__name__}"] += 1
                conn, self._conn = self._conn, None
                if conn is not None:
                    conn.terminate()
                return None

    async def _poll_outcomes(self) -> None:
        while True:
            by_store: dict[str, list[str]] = {}
            for key, w in list(self._watch.items()):
                if not w.future.done():
                    by_store.setdefault(w.store, []).append(key)
            for store, keys in by_store.items():
                rows = await self._db(f"SELECT key, outcome, command_id, reason_code, events FROM {store}.command_keys"
                                      " WHERE key = ANY($1::text[]) AND outcome <> 'in_progress'", keys)
                for r in rows or ():
                    w = self._watch.get(r["key"])
                    if w is not None and not w.future.done():
                        w.future.set_result(r)
            await asyncio.sleep(POLL)

    async def applied_downstream(self, sub: Submission, event_type: str) -> bool:
        """Until every service applying `event_type` holds the event `sub` caused in its inbox."""
        consumers = downstream(event_type)
        event_id: uuid.UUID | None = None
        waiting = list(consumers)
        while waiting:
            if self._left() <= 0:
                raise GaveUp()
            if event_id is None:
                rows = await self._db(f"SELECT event_id FROM {sub.store}.events WHERE causation_id = $1"
                                      " AND event_type = $2", uuid.UUID(sub.original), event_type)
                event_id = rows[0]["event_id"] if rows else None
            if event_id is not None:
                for c in list(waiting):
                    rows = await self._db(f"SELECT 1 FROM {c.schema}.inbox WHERE consumer = $1 AND message_id = $2",
                                          c.name, event_id)
                    if rows:
                        waiting.remove(c)
            if waiting:
                await asyncio.sleep(POLL)
        return True

    # -- figures ---------------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        subs = self.submissions
        refused = Counter(s.reason_code for s in subs if s.outcome == "refused")
        by_type = Counter(s.command_type for s in subs)
        return {
            "commands": len(subs), "accepted": sum(s.outcome == "accepted" for s in subs),
            "refused": sum(s.outcome == "refused" for s in subs), "refused_by_code": dict(refused),
            "unknown": sum(s.outcome is None for s in subs),
            "sends": sum(len(s.command_ids) for s in subs),
            "resubmissions": sum(s.resubmissions for s in subs),
            "resubmitted_commands": sum(1 for s in subs if s.resubmissions),
            "deliberate_duplicates": sum(s.duplicates for s in subs),
            "by_command": dict(sorted(by_type.items())),
            "journeys_started": self.journeys_started, "journeys_completed": self.journeys_done,
            "subjects": len(self.subjects), "failures": dict(sorted(self.failures.items())),
            "outcome_seconds_max": max((s.seconds for s in subs if s.seconds is not None), default=None),
        }


def downstream(event_type: str) -> list[EventConsumer]:
    """The services (not the projection) that apply `event_type`."""
    return [c for c in topology().consumers_of(event_type) if c.event_types]


def observations(subject: str, infused_at) -> list[RecordObservation]:
    """Two observations the day after the infusion: a fever, and the antipyretic given for it."""
    day1 = infused_at + timedelta(days=1)
    return [RecordObservation(subject_id=subject, observed_at=day1,
                              observation=VitalSigns(temperature_c=38.6, systolic_mmhg=118, diastolic_mmhg=74)),
            RecordObservation(subject_id=subject, observed_at=day1 + timedelta(hours=1),
                              observation=TreatmentGiven(agent=Agent.OTHER, name="paracetamol", dose_mg=1000.0,
                                                          indication="other"))]


def _json(exc: urllib.error.HTTPError) -> dict[str, Any]:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError, http.client.HTTPException):
        return {}
    return body if isinstance(body, dict) else {}


async def _quietly(aw) -> None:
    try:
        await asyncio.wait_for(aw, 10)
    except Exception:  # noqa: BLE001 - a client of a dead broker or database, being let go
        pass
