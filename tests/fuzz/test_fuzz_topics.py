"""Raw records on every command and event topic, fuzzed (issue 12 item 6).

FUZZ_EXAMPLES records per topic, produced straight onto the four command topics and the
four event topics (the outcomes topic has no CellTrail consumer: what lands there is for
downstream systems, and nothing of ours reads it): random bytes (bad UTF-8 among them), JSON
that is no envelope, and envelopes with one thing wrong: an unknown type, another topic's
type, a future schema version, a payload field of the wrong type, missing or unknown, a
control character or a non-finite number, a huge value, a broken envelope field; commands
with a garbage credential or none; events, however well formed, not signed by their topic's
owner. Random keys and headers.

Each record must end one of two ways, and this is checked record by record: dead-lettered
(a record on `celltrail.deadletter.v1` whose source header names its topic, partition and
offset, with a reason), or, for a well-formed command whose credential does not admit it,
refused (`common.CommandRejected` caused by its command id, in its service's store). A
command is sent with the CLI's valid credential only when what is wrong with it can never
be valid (so no generated command is applied). The stores then changed by those refusals
and nothing else; every process is alive and healthy.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import isbt128, topics, topology
from contracts import commands as c
from contracts.envelope import CommandEnvelope
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from infra.runtime.messaging import new_producer
from tests.conftest import in_thread
from tests.e2e.driver import read_topic
from tests.fuzz.conftest import (CENTRE, PROGRAMME, TALLY, Fuzzed, assert_alive, changed, counts, fuzz_settings,
                                 wait_caught_up)
from tests.fuzz.test_fuzz_http import HUGE, _any_json, _text_with_control

pytestmark = pytest.mark.e2e

COI = str(isbt128.issue("E0001", 2025, 1))


def command_templates(subject: str) -> dict[str, c.CommandPayload]:
    """A well-formed command for each command topic."""
    at = datetime(2025, 2, 1, 9, tzinfo=timezone.utc)
    made = [c.RegisterCentre(centre_id="FZ-09", name="Fuzz", country="IT"),
            c.RecordApheresisCollection(coi_id=COI, subject_id=subject, centre_id=CENTRE, collected_at=at),
            c.RecordInfusion(subject_id=subject, coi_id=COI, infused_at=at),
            c.RecordResponseAssessment(subject_id=subject, assessed_on=at.date(), marrow_blasts_percent=1.0,
                                       circulating_blasts=False, extramedullary_disease=False, anc_per_ul=1500,
                                       platelets_per_ul=150_000, flow_mrd_percent=0.001, molecular_mrd_percent=0.001)]
    return {cmd.topic: cmd for cmd in made}


def event_envelope(subject: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat()
    return {"event_id": str(uuid.uuid4()), "event_type": "enrollment.SubjectEnrolled", "schema_version": 1,
            "stream_id": f"subject-{subject}", "stream_version": 2, "position": 2, "subject_id": subject,
            "occurred_at": now, "recorded_at": now, "correlation_id": str(uuid.uuid4()), "causation_id": None,
            "actor": "celltrail-cli", "centre_id": CENTRE,
            "payload": {"subject_id": subject, "programme_id": PROGRAMME, "centre_id": CENTRE,
                        "enrolled_on": "2025-01-03"}}


# What is wrong with a command that can never make it valid: sent with a valid credential.
NEVER_VALID = {"unknown type", "other topic's type", "future version", "unknown field", "control", "non-finite",
               "missing required", "envelope broken"}


def records(fz: Fuzzed, topic: str) -> st.SearchStrategy[tuple[str, bytes, bytes | None, list]]:
    """(what it is, value, key, headers) of one raw record for `topic`."""
    is_command = topic in topics.COMMAND_TOPICS
    templates = command_templates(fz.subject_id)
    token = fz.tokens["cli"]

    @st.composite
    def one(draw):
        key = draw(st.one_of(st.none(), st.binary(max_size=40)))
        headers = draw(st.lists(st.tuples(st.sampled_from([topics.HEADER_MESSAGE_TYPE, topics.HEADER_MESSAGE_ID,
                                                            topics.HEADER_SCHEMA_VERSION, "x-fuzz"]),
                                          st.binary(max_size=40)), max_size=3))
        kind = draw(st.sampled_from(["bytes", "json", "envelope", "envelope", "envelope", "envelope"]))
        if kind == "bytes":
            return "random bytes", draw(st.binary(max_size=500)) + draw(st.sampled_from([b"", b"\xff", b"\xc3("])), \
                key, headers
        if kind == "json":
            return "JSON, no envelope", json.dumps(draw(_any_json()), allow_nan=True).encode(), key, headers
        how = draw(st.sampled_from(["unknown type", "other topic's type", "future version", "wrong type",
                                    "missing required", "unknown field", "control", "non-finite", "huge",
                                    "envelope broken", "credential garbage", "no credential"]))
        if is_command:
            cmd = templates[topic]
            env = CommandEnvelope.wrap(cmd, actor="celltrail-cli", credential=token).model_dump(mode="json")
            payload, cls = env["payload"], type(cmd)
            type_key, version_key = "command_type", "schema_version"
            others = sorted(t for t, k in COMMAND_TYPES.items() if k.topic not in (None, topic))
            current = cls.schema_version
            required = sorted(k for k, f in cls.model_fields.items() if f.is_required())
        else:
            env = event_envelope(fz.subject_id)
            payload = env["payload"]
            type_key, version_key = "event_type", "schema_version"
            others = sorted(t for t in EVENT_TYPES if (s := topology.service_of_event(t)) and topology.events_topic(s) != topic)
            current = EVENT_TYPES[env["event_type"]].schema_version
            required = sorted(payload)
        field = draw(st.sampled_from(sorted(payload)))
        if how == "unknown type":
            env[type_key] = draw(st.one_of(st.text(max_size=40), _text_with_control()))
        elif how == "other topic's type":
            env[type_key] = draw(st.sampled_from(others))
        elif how == "future version":
            env[version_key] = draw(st.integers(current + 1, 10 ** 30))
        elif how == "wrong type":
            payload[field] = draw(st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
                                            st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)))
        elif how == "missing required":
            del payload[draw(st.sampled_from(required))]
        elif how == "unknown field":
            payload[draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in payload))] = draw(_any_json())
        elif how == "control":
            payload[field] = draw(_text_with_control())
        elif how == "non-finite":
            payload[field] = draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
        elif how == "huge":
            payload[field] = draw(HUGE)
        elif how == "envelope broken":
            broken = draw(st.sampled_from([k for k in env if k not in ("payload", "credential", "causation_id",
                                                                       "position", "subject_id", "centre_id")]))
            value = draw(st.one_of(st.none(), st.integers(), _text_with_control(), st.just("not-a-uuid"),
                                   st.lists(st.integers(), max_size=2)))
            # never valid: no field of an envelope takes a NUL, nor a schema version below 1
            if isinstance(value, str) or (value is None and broken == "idempotency_key"):  # None: no key, valid
                value = (value or "") + "\x00"
            elif isinstance(value, int) and broken == version_key:
                value = -abs(value)
            env[broken] = value
        if is_command:
            if how == "credential garbage":
                env["credential"] = draw(st.text(max_size=300))
            elif how == "no credential" or how not in NEVER_VALID:
                env["credential"] = None
        return f"envelope: {how}", json.dumps(env, ensure_ascii=draw(st.booleans()), allow_nan=True).encode(
            "utf-8", "surrogatepass"), key, headers

    return one()


async def _produce(bootstrap: str, batch: list[tuple[str, str, bytes, bytes | None, list]]) -> list[tuple]:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        sent = []
        for topic, what, value, key, headers in batch:
            meta = await producer.send_and_wait(topic, value=value, key=key, headers=headers)
            sent.append((topic, meta.partition, meta.offset, what, value))
        return sent
    finally:
        await producer.stop()


async def _refused(database_url: str) -> dict[str, set[str]]:
    """Per store, the command ids its CommandRejected events were caused by."""
    conn = await asyncpg.connect(database_url)
    try:
        return {s: {str(r["causation_id"]) for r in await conn.fetch(
            f"SELECT causation_id FROM {s}.events WHERE event_type = 'common.CommandRejected'")}
            for s in topology.SERVICES}
    finally:
        await conn.close()


def _command_id(value: bytes) -> str | None:
    try:
        env = json.loads(value)
        return str(uuid.UUID(env["command_id"])) if isinstance(env, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def test_raw_records_on_every_topic_are_refused_or_dead_lettered(fuzzed: Fuzzed) -> None:
    fz = fuzzed
    wait_caught_up(fz)
    before = counts(fz)
    refused_before = in_thread(asyncio.run, _refused(fz.database_url))
    batch: list[tuple[str, str, bytes, bytes | None, list]] = []
    for topic in (*topics.COMMAND_TOPICS, *topics.EVENT_TOPICS):
        @fuzz_settings()
        @given(record=records(fz, topic))
        def gather(record) -> None:
            what, value, key, headers = record
            batch.append((topic, what, value, key, headers))

        gather()
    sent = in_thread(asyncio.run, _produce(fz.kafka, batch))
    wait_caught_up(fz)
    dead = in_thread(asyncio.run, read_topic(fz.kafka, topics.DEAD_LETTER))
    reasons: dict[str, str] = {}
    for r in dead:
        h = {k: v.decode(errors="replace") for k, v in r.headers or ()}
        reasons[h[topics.HEADER_DLQ_SOURCE]] = h.get(topics.HEADER_DLQ_REASON, "")
    refused_after = in_thread(asyncio.run, _refused(fz.database_url))
    refused = {s: refused_after[s] - refused_before[s] for s in refused_after}
    unaccounted, expected = [], Counter()
    for topic, partition, offset, what, value in sent:
        source = f"{topic}/{partition}/{offset}"
        owner = topology.SERVICES[[topology.commands_topic(s) for s in topology.SERVICES].index(topic)] \
            if topic in topics.COMMAND_TOPICS else None
        if source in reasons:
            assert reasons[source].strip(), f"{source} ({what}) dead-lettered without a reason"
            TALLY.count(f"topic {topic}", "dead-lettered")
        elif owner and _command_id(value) in refused[owner]:
            expected[(owner, "common.CommandRejected")] += 1
            TALLY.count(f"topic {topic}", "refused (CommandRejected)")
        else:
            TALLY.count(f"topic {topic}", "neither")
            unaccounted.append(f"{source} {what}: {value[:300]!r}")
    assert not unaccounted, f"{len(unaccounted)} records were neither refused nor dead-lettered:\n" + \
        "\n".join(unaccounted[:30])
    assert_alive(fz)
    got = changed(before, counts(fz))
    assert got == {k: v for k, v in expected.items() if v}, f"the stores changed by {got}; the refusals: {expected}"
