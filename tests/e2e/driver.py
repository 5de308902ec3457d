"""Drives many subjects through the slice by publishing commands straight to the command
topics (the path live traffic takes), phase by phase, and reads results back."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import date, datetime, timedelta, timezone

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import commands as c
from contracts import isbt128, topics
from contracts.envelope import CommandEnvelope, EventEnvelope
from infra.tooling.loader import Loader
from infra.runtime.messaging import new_producer
from infra.tooling.supervisor import System

DAY0 = date(2025, 3, 3)


def http_json(url: str, body: dict | None = None, method: str = "GET", *, token: str) -> object:
    """As the bearer of `token` (`System.token()`: the CLI's principal)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                          "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def lymphodepletion_lines(programme_id: str, subject: str, day0: date) -> list[str]:
    """The programme's regimen (issue 10 item 4) prescribed a week before `day0` for 165 cm and
    60 kg, and each administration given on its day at 09:00 UTC, as load lines (none for a
    programme without one): a bedside check on `day0` finds it complete and within its window."""
    from infra.tooling.programmes import bundled
    from services.clinical.bsa import body_surface_area
    from services.clinical.lymphodepletion import lymphodepletion_doses
    from services.kernel.programmes import regimen_of

    definition = next(d for d in bundled() if d.programme_id == programme_id)
    if definition.lymphodepletion is None:
        return []
    nine = datetime.combine(day0, datetime.min.time().replace(hour=9), tzinfo=timezone.utc)
    plan = lymphodepletion_doses(regimen_of(definition.title, definition.lymphodepletion),
                                 body_surface_area(165.0, 60.0))
    return [json.dumps({"command": "PrescribeLymphodepletion", "subject_id": subject, "height_cm": 165.0,
                        "weight_kg": 60.0, "planned_infusion_on": day0.isoformat(),
                        "prescribed_at": (nine - timedelta(days=7)).isoformat()}),
            *(json.dumps({"command": "RecordLymphodepletionDose", "subject_id": subject, "agent": d.agent,
                          "dose_mg": d.dose_mg, "administered_at": (nine + timedelta(days=d.study_day)).isoformat()})
              for d in plan.daily_doses)]


def cell_dose_line(subject: str, unit_id: str, prescribed_at: str = "2025-01-01T00:00:00Z") -> str:
    """1 x 10^6 cells/kg for 60 kg, within 20 %, from bag `unit_id` (an illustrative
    prescription, for a programme that states no dose)."""
    return json.dumps({"command": "PrescribeCellDose", "subject_id": subject, "unit_id": unit_id, "weight_kg": 60.0,
                       "cells_per_kg": 1e6, "tolerance_fraction": 0.2, "prescribed_at": prescribed_at})


# Specifications (issue 9 item 4) the bundled scenarios do not load: a facility's, for the
# programmes the e2e tests enrol into, set as the CLI (a QP's, submitted from the facility's system).
def specification_line(programme: str, facility: str, set_at: str = "2025-01-01T00:00:00Z") -> str:
    from tests.release import CRITERIA

    return json.dumps({"command": "SetProductSpecification", "programme_id": programme, "org_id": facility,
                       "criteria": [c.model_dump(mode="json") for c in CRITERIA], "set_at": set_at})


def qc_line(unit: str, facility: str, tested_at: str) -> str:
    from tests.release import PASSING

    return json.dumps({"command": "RecordQcResults", "unit_id": unit, "scanned_id": unit, "org_id": facility,
                       "location": "QC laboratory", "tested_at": tested_at,
                       "results": [r.model_dump(mode="json", exclude_none=True) for r in PASSING]})


async def sign_latest(database_url: str, manufacturing_url: str, headers: dict[str, str], coi_id: str,
                      event_type: str, password: str) -> dict:
    """A person (`headers`: their credential) signs the COI's latest `event_type` record with
    the meaning approval, as the signing route asks: shown the record and its content hash,
    then the password again (infra/runtime/signing.py). Waits for manufacturing to record it."""
    conn = await asyncpg.connect(database_url)
    try:
        event_id = None
        for _ in range(300):
            event_id = await conn.fetchval(
                "SELECT event_id::text FROM manufacturing.events WHERE stream_id = $1 AND event_type = $2"
                " ORDER BY position DESC LIMIT 1", f"coi-{coi_id}", event_type)
            if event_id:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert event_id, f"manufacturing recorded no {event_type} of COI {coi_id}"

    def call(method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(f"{manufacturing_url}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json", **headers})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    shown = await asyncio.to_thread(call, "GET", f"/records/{event_id}")
    return await asyncio.to_thread(call, "POST", "/signatures", {
        "record_event_id": event_id, "record_hash": shown["content_hash"], "meaning": "approval",
        "password": password})


def at(d: date, hour: int = 10) -> datetime:
    return datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc)


class Driver:
    def __init__(self, system: System, n: int, centre: str = "IT-BG-01", programme: str = "CART-BALL-RR") -> None:
        self.info, self.n, self.centre, self.programme = system.info, n, centre, programme
        # commands are submitted as the CLI's principal, with its token (as `celltrail load`)
        self.tokens = system.tokens()
        self.token = system.token  # for the HTTP calls
        self.credential: tuple[str, str] | None = None
        self.subjects: list[str] = []
        self.sent: list[CommandEnvelope] = []

    def coi(self, i: int) -> str:
        return str(isbt128.issue("E0001", 2025, i + 1))

    async def register(self) -> None:
        line = json.dumps({"command": "RegisterCentre", "centre_id": self.centre, "name": "Centre", "country": "IT"})
        self.credential = await self.tokens.token()
        [result] = await Loader(self.info.kafka_bootstrap_servers, self.info.urls["enrollment"],
                                self.info.urls["projection"], self.tokens).load([line])
        assert result.status == "accepted", result
        for i in range(self.n):
            body = c.RegisterPatient(centre_id=self.centre, hospital_record_number=f"MRN-{i:06d}",
                                     family_name=f"Family{i}", given_name=f"Given{i}", date_of_birth=date(1970, 1, 1),
                                     registered_on=DAY0).model_dump(mode="json")
            registered = http_json(f"{self.info.urls['enrollment']}/patients", body, "POST", token=self.token())
            self.subjects.append(registered["subject_id"])

    def phase_commands(self, phase: str) -> list[CommandEnvelope]:
        out = []
        for i, s in enumerate(self.subjects):
            cmd = {
                "enroll": lambda: c.EnrollSubject(subject_id=s, programme_id=self.programme, centre_id=self.centre,
                                                  enrolled_on=DAY0),
                "collect": lambda: c.RecordApheresisCollection(coi_id=self.coi(i), subject_id=s, centre_id=self.centre,
                                                               collected_at=at(DAY0 + timedelta(days=10))),
                "release": lambda: c.RecordProductRelease(coi_id=self.coi(i), subject_id=s, lot_number=f"LOT-{i}",
                                                          released_at=at(DAY0 + timedelta(days=30)), released_by="QP-1",
                                                          viable_cells_per_ml=2e6, volume_ml=50),
                "infuse": lambda: c.RecordInfusion(subject_id=s, coi_id=self.coi(i),
                                                   infused_at=at(DAY0 + timedelta(days=35))),
                "assess": lambda: c.RecordResponseAssessment(
                    subject_id=s, assessed_on=DAY0 + timedelta(days=63), marrow_blasts_percent=1.0 if i % 4 else 9.0,
                    circulating_blasts=False, extramedullary_disease=False, anc_per_ul=1500,
                    platelets_per_ul=150_000, flow_mrd_percent=0.001, molecular_mrd_percent=0.001),
            }[phase]()
            actor, token = self.credential
            out.append(CommandEnvelope.wrap(cmd, actor=actor, credential=token))
        return out

    async def send_all(self, envs: list[CommandEnvelope], times: int = 1) -> None:
        producer = new_producer(self.info.kafka_bootstrap_servers)
        await producer.start()
        try:
            for _ in range(times):
                futures = [await producer.send(topics.COMMAND_TOPICS[self._topic_index(e)],
                                               value=e.model_dump_json().encode(), key=e.key) for e in envs]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()
        self.sent += envs

    @staticmethod
    def _topic_index(env: CommandEnvelope) -> int:
        from contracts.registry import COMMAND_TYPES

        return topics.COMMAND_TOPICS.index(COMMAND_TYPES[env.command_type].topic)

    def views(self) -> list[dict]:
        return http_json(f"{self.info.urls['projection']}/subjects", token=self.token())

    def report(self) -> list[dict]:
        return http_json(f"{self.info.urls['projection']}/report", token=self.token())

    def phases(self) -> dict[str, str]:
        return {v["subject_id"]: v["phase"] for v in self.views()}

    async def wait_phase(self, phase: str, timeout: float = 90) -> None:
        await self.wait_for(lambda: all(self.phases().get(s) == phase for s in self.subjects), timeout,
                            what=f"all subjects in phase {phase}")

    @staticmethod
    async def wait_for(pred, timeout: float = 60, what: str = "condition") -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                if await asyncio.to_thread(pred):
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    async def run_through(self, phases=("enroll", "collect", "release", "infuse", "assess"), times: int = 1) -> None:
        milestone = {"enroll": "enrolled", "collect": "collected", "release": "released", "infuse": "infused",
                     "assess": "assessed"}
        for p in phases:
            await self.send_all(self.phase_commands(p), times)
            await self.wait_phase(milestone[p])
            # the next phase's command needs a downstream service to have applied this phase's
            # event, which the projection may show first
            await self.wait_services_caught_up()

    async def wait_services_caught_up(self, timeout: float = 60) -> None:
        def quiet() -> bool:
            return all(http_json(f"{url}/status", token=self.token()).get("lag") == 0
                       for url in self.info.urls.values())

        await self.wait_for(quiet, timeout, what="every service caught up")

    async def wait_caught_up(self, timeout: float = 60) -> None:
        status = f"{self.info.urls['projection']}/status"
        await self.wait_for(lambda: http_json(status, token=self.token()).get("lag") == 0, timeout,
                            what="projection caught up")


async def read_topic(bootstrap: str, topic: str, idle_ms: int = 1500) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or
                                                           (await consumer.topics() and
                                                            consumer.partitions_for_topic(topic)) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out = []
        while True:
            batch = await consumer.getmany(timeout_ms=idle_ms)
            if not batch:
                return out
            for records in batch.values():
                out += records
    finally:
        await consumer.stop()


def envelopes(records) -> list[EventEnvelope]:
    return [EventEnvelope.model_validate_json(r.value) for r in records]
