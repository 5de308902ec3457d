"""`celltrail deadletters list` and `replay` against the real broker (TCP, loopback) and real
PostgreSQL, with the one consumer (infra/runtime/consumer.py) applying enrollment's commands:
a poison record and a valid command refused by a bug are dead-lettered; `list` shows them
with their reason, source, consumer and time; after the fix `replay` sends the command back
and it is applied once, and sending it again changes nothing; only an administrator may
replay, unknown ids are refused, and an unreachable broker is one line (issue 12 item 3)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import RegisterCentre
from contracts.envelope import CommandEnvelope
from infra.runtime.consumer import Consumer, HandlerApplier
from infra.runtime.eventstore import EventStore
from infra.runtime.host import build_broker
from infra.runtime.messaging import ensure_topics, new_producer
from infra.tooling import deadletters
from infra.tooling.supervisor import EMBEDDED_SESSION_TIMEOUT_MS
from services.enrollment import bootstrap
from tests.access import ADMIN, PUBLIC_KEY, principal, provisioned, token

pytestmark = pytest.mark.integration

OPERATOR = principal("ops.verdi", ("NETWORK", OrgKind.NETWORK, Role.NETWORK_OPERATOR), kind=PrincipalKind.PERSON)


def command(centre_id: str) -> CommandEnvelope:
    return CommandEnvelope.wrap(RegisterCentre(centre_id=centre_id, name="Centre", country="IT"), actor="test")


def celltrail(*args: str, kafka: str, database_url: str, home: Path, token_: str | None = None
              ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=kafka, DATABASE_URL=database_url, CELLTRAIL_HOME=str(home),
               CELLTRAIL_TOKEN_PUBLIC_KEY=PUBLIC_KEY)
    if token_:
        env["CELLTRAIL_TOKEN"] = token_
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", "deadletters", *args], env=env,
                          capture_output=True, text=True, timeout=90)


def one_line(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
    return res.stderr.strip()


async def read_topic(kafka: str, topic: str) -> list:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out = []
        while batch := await consumer.getmany(timeout_ms=1000):
            for records in batch.values():
                out += records
        return out
    finally:
        await consumer.stop()


async def dead_letters(kafka: str, n: int, timeout: float = 30) -> list[deadletters.DeadLetter]:
    for _ in range(int(timeout / 0.25)):
        letters = await deadletters.read(kafka)
        if len(letters) >= n:
            return letters
        await asyncio.sleep(0.25)
    raise AssertionError(f"expected {n} dead letters, have {len(letters)}")


@pytest.fixture
async def enrollment(pool, kafka, database_url, tmp_path):
    """Enrollment's commands through the one consumer, RegisterCentre with a bug for one
    centre until `fixed`; an administrator and a network operator in the access schema."""
    await ensure_topics(kafka, 3)
    async with pool.acquire() as conn:
        await provisioned(conn, ADMIN, OPERATOR)
    producer = new_producer(kafka)
    await producer.start()
    register = bootstrap.spec().command_handlers["RegisterCentre"]
    state = {"bug": True, "calls": 0}

    async def buggy(conn, env, cmd, writes):
        if cmd.centre_id == "IT-BUG":
            state["calls"] += 1
            if state["bug"]:
                raise RuntimeError("bug: country codes read upside down")
        await register(conn, env, cmd, writes=writes)

    consumer = Consumer(name="enrollment", schema="enrollment", topics_=(topics.ENROLLMENT_COMMANDS,),
                        applier=HandlerApplier(EventStore("enrollment"), command_handlers={"RegisterCentre": buggy}),
                        pool=pool, producer=producer, max_attempts=2, max_backoff_seconds=0.2,
                        session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS)
    broker = build_broker(kafka, consumer)
    await broker.start()
    for _ in range(300):  # in the group, its partitions assigned, as a running service is
        if consumer.kafka_consumer is not None and consumer.kafka_consumer.assignment():
            break
        await asyncio.sleep(0.05)

    class Enrollment:
        async def send(self, value: bytes, key: bytes) -> None:
            await producer.send_and_wait(topics.ENROLLMENT_COMMANDS, value=value, key=key)

        async def events(self, prefix: str) -> list:
            async with pool.acquire() as conn:
                return await conn.fetch("SELECT * FROM enrollment.events WHERE stream_id LIKE $1 ORDER BY position",
                                        prefix + "%")

        async def wait_events(self, n: int, prefix: str, timeout: float = 30) -> list:
            for _ in range(int(timeout / 0.1)):
                if len(rows := await self.events(prefix)) >= n:
                    return rows
                await asyncio.sleep(0.1)
            raise AssertionError(f"expected {n} events {prefix}*, have {len(await self.events(prefix))}")

        async def audit(self) -> list:
            async with pool.acquire() as conn:
                return await conn.fetch("SELECT * FROM access.audit_log WHERE change = 'dead_letter_replayed'"
                                        " ORDER BY position")

        def cli(self, *args: str, token_: str | None = token(ADMIN)):
            return asyncio.to_thread(celltrail, *args, kafka=kafka, database_url=database_url, home=tmp_path,
                                     token_=token_)

        fixed = state
        consumer_ = consumer

    try:
        yield Enrollment()
    finally:
        await broker.stop()
        await producer.stop()


class TestTheWorkflow:
    async def test_dead_letters_are_listed_and_a_fixed_one_is_replayed_once(self, enrollment, kafka):
        started = datetime.now(timezone.utc) - timedelta(seconds=1)
        bug = command("IT-BUG")
        await enrollment.send(b"\xff\xfe not json", key=b"poison")
        await enrollment.send(bug.model_dump_json().encode(), key=bug.key)
        await enrollment.send(command("IT-OK").model_dump_json().encode(), key=b"IT-OK")
        await enrollment.wait_events(1, "centre-IT-OK")
        letters = await dead_letters(kafka, 2)

        # list --json: each with its reason, source, consumer and time. (A record redelivered
        # after a rebalance may be dead-lettered twice, each a dead letter of its own.)
        res = await enrollment.cli("list", "--json")
        assert res.returncode == 0, res.stderr
        listed: dict = {}
        for d in json.loads(res.stdout):
            listed.setdefault(d["message_type"], d)
        assert set(listed) == {None, "RegisterCentre"}
        poison, refused = listed[None], listed["RegisterCentre"]
        assert poison["reason"].startswith("invalid command") and poison["key"] == "poison"
        assert refused["reason"] == "handler failed 2 times: RuntimeError: bug: country codes read upside down"
        assert refused["message_id"] == str(bug.command_id)
        for d in (poison, refused):
            assert d["source"]["topic"] == topics.ENROLLMENT_COMMANDS and d["consumer"] == "enrollment"
            assert started <= datetime.fromisoformat(d["dead_lettered_at"]) <= datetime.now(timezone.utc)
            assert d["replayed"] is False
        assert {d.id for d in letters} <= {d["id"] for d in json.loads(res.stdout)}

        # the text form: one line each, and filters
        res = await enrollment.cli("list")
        assert res.returncode == 0, res.stderr
        line = next(x for x in res.stdout.splitlines() if x.startswith(refused["id"] + " "))
        assert "RegisterCentre" in line and "not replayed" in line and "RuntimeError: bug" in line
        assert f"{topics.ENROLLMENT_COMMANDS}/{refused['source']['partition']}/{refused['source']['offset']}" in line
        assert res.stdout.splitlines()[-1] == f"{len(letters)} dead letters, 0 replayed"
        res = await enrollment.cli("list", "--source", topics.INFUSION_COMMANDS)
        assert res.stdout.strip() == f"no dead letters on {topics.DEAD_LETTER}"
        res = await enrollment.cli("list", "--since", (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat())
        assert res.stdout.strip() == f"no dead letters on {topics.DEAD_LETTER}"

        # the fix, then the replay: applied once, as the administrator
        assert await enrollment.events("centre-IT-BUG") == []
        enrollment.fixed["bug"], enrollment.fixed["calls"] = False, 0
        res = await enrollment.cli("replay", refused["id"])
        assert res.returncode == 0, res.stderr
        assert f"{refused['id']}  RegisterCentre  replayed: sent back to {topics.ENROLLMENT_COMMANDS}/" in res.stdout
        [applied] = await enrollment.wait_events(1, "centre-IT-BUG")
        assert applied["causation_id"] == bug.command_id

        res = await enrollment.cli("list", "--json")
        [now] = [d for d in json.loads(res.stdout) if d["id"] == refused["id"]]
        assert now["replayed"] is True and now["replays"][0]["replayed_by"] == ADMIN.principal_id

        # again: passed over without --again; with it, sent and deduplicated by the inbox
        res = await enrollment.cli("replay", refused["id"])
        assert res.returncode == 0 and "skipped: already replayed" in res.stdout, res.stdout + res.stderr
        res = await enrollment.cli("replay", refused["id"], "--again")
        assert res.returncode == 0 and "replayed: sent back" in res.stdout, res.stderr
        await enrollment.send(command("IT-AFTER").model_dump_json().encode(), key=b"IT-AFTER")
        await enrollment.wait_events(1, "centre-IT-AFTER")  # applied after the second replay (same consumer)
        await asyncio.sleep(1)
        assert len(await enrollment.events("centre-IT-BUG")) == 1
        assert await enrollment.events("command-") == []  # not even refused as already registered
        assert enrollment.fixed["calls"] == 1  # since the fix: the replay; not the second

        # what went back: the original bytes, key and headers, marked as a replay, no dead-letter headers
        sent = [r for r in await read_topic(kafka, topics.ENROLLMENT_COMMANDS)
                if topics.HEADER_REPLAY_OF in dict(r.headers)]
        assert len(sent) == 2
        for r in sent:
            headers = dict(r.headers)
            assert r.value == bug.model_dump_json().encode() and r.key == bug.key
            assert r.partition == refused["source"]["partition"]
            assert headers[topics.HEADER_REPLAY_OF] == refused["id"].encode()
            assert headers[topics.HEADER_REPLAYED_BY] == ADMIN.principal_id.encode()
            assert not {topics.HEADER_DLQ_REASON, topics.HEADER_DLQ_SOURCE, topics.HEADER_DLQ_CONSUMER} & set(headers)

        # who replayed what: in PostgreSQL too
        rows = await enrollment.audit()
        assert [(r["actor"], json.loads(r["detail"])["dead_letter"]) for r in rows] == [
            (ADMIN.principal_id, refused["id"])] * 2
        assert json.loads(rows[0]["detail"])["message_id"] == str(bug.command_id)

    async def test_a_poison_record_sent_back_is_dead_lettered_again_naming_the_first(self, enrollment, kafka):
        await enrollment.send(b"\xff\xfe not json", key=b"poison")
        [first] = await dead_letters(kafka, 1)
        res = await enrollment.cli("replay", "--all")
        assert res.returncode == 0 and "1 replayed" in res.stdout, res.stderr
        letters = await dead_letters(kafka, 2)
        again = next(d for d in letters if d.id != first.id)
        assert again.replay_of == first.id and again.reason.startswith("invalid command")
        assert again.value == first.value and not again.replayed
        res = await enrollment.cli("replay", "--all", "--source", topics.INFUSION_COMMANDS)
        assert res.returncode == 0 and res.stdout.startswith("nothing to replay"), res.stderr


class TestRedelivery:
    async def test_a_dead_lettered_record_delivered_again_is_not_dead_lettered_again(self, enrollment, kafka):
        """The consumer gives a dead-lettered message's claim back (so a replay applies it);
        the same record fetched again (the broker sends a batch again, or a fetch taken before
        a seek) sits below the stored offset and is passed over."""
        bug = command("IT-BUG")
        await enrollment.send(bug.model_dump_json().encode(), key=bug.key)
        await dead_letters(kafka, 1)
        [original] = await read_topic(kafka, topics.ENROLLMENT_COMMANDS)
        consumer = enrollment.consumer_
        for _ in range(100):  # the dead letter is sent just before its transaction commits
            if (await consumer.stored_offsets()).get((original.topic, original.partition), 0) > original.offset:
                break
            await asyncio.sleep(0.05)
        calls = enrollment.fixed["calls"]
        await consumer.apply_fetch([original])
        assert enrollment.fixed["calls"] == calls + 1  # one attempt, then it is known as handled
        assert len(await deadletters.read(kafka)) == 1
        assert await enrollment.events("centre-IT-BUG") == []


class TestRefusals:
    async def simulated(self, kafka: str) -> tuple[str, CommandEnvelope]:
        """A dead letter as a consumer writes it, produced straight onto the topic."""
        env = command("IT-SIM")
        producer = new_producer(kafka)
        await producer.start()
        try:
            await producer.send_and_wait(topics.DEAD_LETTER, value=env.model_dump_json().encode(), key=env.key,
                                         headers=[(topics.HEADER_MESSAGE_TYPE, b"RegisterCentre"),
                                                  (topics.HEADER_DLQ_REASON, b"handler failed 5 times: KeyError"),
                                                  (topics.HEADER_DLQ_SOURCE,
                                                   f"{topics.ENROLLMENT_COMMANDS}/0/7".encode()),
                                                  (topics.HEADER_DLQ_CONSUMER, b"enrollment")])
        finally:
            await producer.stop()
        [d] = await dead_letters(kafka, 1)
        return d.id, env

    async def nothing_sent(self, enrollment, kafka: str) -> None:
        assert [r for r in await read_topic(kafka, topics.ENROLLMENT_COMMANDS)
                if topics.HEADER_REPLAY_OF in dict(r.headers)] == []
        assert not any((await deadletters.read(kafka))[0].replays)
        assert await enrollment.audit() == []

    async def test_only_an_administrator_replays(self, enrollment, kafka):
        letter, _ = await self.simulated(kafka)
        line = one_line(await enrollment.cli("replay", letter, token_=token(OPERATOR)))
        assert "ops.verdi may not replay dead letters (an administrator may)" in line
        line = one_line(await enrollment.cli("replay", letter, token_=token(ADMIN, key=_other_key())))
        assert "the token is refused" in line
        await self.nothing_sent(enrollment, kafka)

    async def test_an_unknown_id_is_refused_and_nothing_is_sent(self, enrollment, kafka):
        letter, env = await self.simulated(kafka)
        line = one_line(await enrollment.cli("replay", letter, "0:99"))
        assert f"no dead letter 0:99 on {topics.DEAD_LETTER}; it holds {letter}; nothing was replayed" in line
        await self.nothing_sent(enrollment, kafka)
        # the simulated dead letter itself replays: its original is a valid command, applied once
        res = await enrollment.cli("replay", letter)
        assert res.returncode == 0, res.stderr
        [applied] = await enrollment.wait_events(1, "centre-IT-SIM")
        assert applied["causation_id"] == env.command_id


def _other_key() -> str:
    from infra.runtime.access.tokens import generate_signing_key

    return generate_signing_key()


async def test_an_unreachable_broker_or_database_is_one_line(pool, database_url, tmp_path: Path) -> None:
    async with pool.acquire() as conn:
        await provisioned(conn, ADMIN)
    for args in (("list",), ("replay", "0:1"), ("replay", "--all")):
        res = await asyncio.to_thread(celltrail, *args, kafka="127.0.0.1:1", database_url=database_url,
                                      home=tmp_path, token_=token(ADMIN))
        line = one_line(res)
        assert line.startswith("celltrail deadletters: CellTrail's broker at 127.0.0.1:1 is not reachable"), line
    res = await asyncio.to_thread(celltrail, "replay", "0:1", kafka="127.0.0.1:1", home=tmp_path, token_="t",
                                  database_url="postgresql://postgres@127.0.0.1:1/none")
    assert "CellTrail's database is not reachable" in one_line(res)
