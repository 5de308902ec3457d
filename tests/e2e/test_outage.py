"""PostgreSQL stopped in the middle of a load and started again a minute later (issue 12 item
1): a record whose handling fails because the database is unreachable is not poison. The
consumers retry the fetch with backoff for as long as the outage lasts (infra/runtime/
consumer.py, INFRASTRUCTURE_ERRORS), so every command is applied exactly once afterwards and
nothing is dead-lettered; the HTTP edge answers 503 UNAVAILABLE meanwhile, never a 500.

`CELLTRAIL_TEST_OUTAGE_SECONDS` sets the outage (60 by default, the issue's minute)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from contracts import topics
from contracts.commands import EnrollSubject
from infra.runtime.messaging import new_producer
from infra.tooling.embedded import EmbeddedPostgres
from infra.tooling.loader import Loader, command_record
from infra.tooling.supervisor import System
from tests.conftest import in_thread

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = float(os.environ.get("CELLTRAIL_TEST_OUTAGE_SECONDS", "60"))
N = 40  # enrolments, half published before the outage and half during it


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A server of the test's own, to stop and start (not the suite's shared one)."""
    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="celltrail-outage-pg-")), ephemeral=True)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def system_on_own_postgres(own_postgres: EmbeddedPostgres, kafka: str, tmp_path: Path) -> Iterator[System]:
    s = System(tmp_path / "home", fixed_ports=False, database_url=own_postgres.url, kafka_bootstrap_servers=kafka)
    try:
        in_thread(s.start)
        yield s
    finally:
        s.stop()


def _status(url: str, token: str) -> int:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def _dead_letters(bootstrap: str) -> list:
    consumer = AIOKafkaConsumer(topics.DEAD_LETTER, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=2000)
        return [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()


async def test_postgres_away_for_a_minute_mid_load_loses_nothing_and_poisons_nothing(
        system_on_own_postgres: System, own_postgres: EmbeddedPostgres, kafka: str) -> None:
    system = system_on_own_postgres
    info = system.info
    lines = ['{"command": "RegisterCentre", "centre_id": "IT-BG-01", "name": "Bergamo", "country": "IT"}'] + [
        json.dumps({"command": "RegisterPatient", "ref": f"p{i}", "centre_id": "IT-BG-01",
                    "hospital_record_number": f"OUT-{i:04d}", "family_name": "Outage", "given_name": f"P{i}",
                    "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}) for i in range(N)]
    results = await Loader(kafka, info.urls["enrollment"], info.urls["projection"], system.tokens()).load(lines)
    assert [r.status for r in results] == ["accepted"] * len(lines), results
    subjects = [r.detail.split()[1] for r in results[1:]]
    actor, token = await system.tokens().token()
    records = [command_record(EnrollSubject(subject_id=s, programme_id="CART-BALL-RR", centre_id="IT-BG-01",
                                            enrolled_on=date(2025, 1, 3)), actor, token, f"outage-{uuid.uuid4()}")[1]
               for s in subjects]
    producer = new_producer(kafka)
    await producer.start()
    try:
        for record in records[: N // 2]:
            await producer.send_and_wait(topics.ENROLLMENT_COMMANDS, **record)
        await asyncio.to_thread(own_postgres.kill)  # as a crash: no clean shutdown
        for record in records[N // 2:]:
            await producer.send_and_wait(topics.ENROLLMENT_COMMANDS, **record)
        await asyncio.sleep(2)
        # meanwhile the edge says it is unavailable, with a retry hint, never 500
        assert _status(f"{info.urls['projection']}/subjects/{subjects[0]}", token) == 503
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - 2))
        started = time.monotonic()
        await asyncio.to_thread(own_postgres.start)
    finally:
        await producer.stop()

    conn = await asyncpg.connect(own_postgres.url)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            enrolled = await conn.fetchval(
                "SELECT count(*) FROM projection.subject_state WHERE subject_id = ANY($1::text[]) AND phase = 'enrolled'",
                subjects)
            if enrolled == N:
                break
            await asyncio.sleep(1)
        recovered = time.monotonic() - started
        per_subject = await conn.fetch(
            "SELECT subject_id, count(*) AS n FROM enrollment.events WHERE event_type = 'enrollment.SubjectEnrolled'"
            " AND subject_id = ANY($1::text[]) GROUP BY subject_id", subjects)
        rejected = await conn.fetchval("SELECT count(*) FROM enrollment.events WHERE event_type = 'common.CommandRejected'")
    finally:
        await conn.close()
    assert enrolled == N, f"{enrolled} of {N} visible {recovered:.0f}s after PostgreSQL came back"
    assert sorted(r["n"] for r in per_subject) == [1] * N  # each applied once
    assert rejected == 0
    assert await _dead_letters(kafka) == []
