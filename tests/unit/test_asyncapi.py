"""The AsyncAPI document (infra/tooling/asyncapi.py) covers every topic, and docs/asyncapi.json is
a fresh generation of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import topics
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from infra.tooling import asyncapi
from infra.tooling.specs import service_specs

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
TOPICS_MD = ROOT / "docs" / "topics.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return asyncapi.render()


@pytest.fixture(scope="module")
def document(rendered) -> dict:
    return json.loads(rendered)


def channels_by_topic(document: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for channel in document["channels"].values():
        out.setdefault(channel["address"], []).append(channel)
    return out


def message_of(document: dict, channel: dict) -> dict:
    (ref,) = channel["messages"].values()
    return document["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]


def payload_schema_name(document: dict, channel: dict) -> str:
    return message_of(document, channel)["payload"]["$ref"].rsplit("/", 1)[1]


def test_is_asyncapi_3(document):
    assert document["asyncapi"].startswith("3.")
    assert document["info"]["title"] == "CellTrail"
    assert {s["protocol"] for s in document["servers"].values()} == {"kafka"}


def test_every_topic_is_documented(document):
    by_topic = channels_by_topic(document)
    missing = [t for t in topics.ALL_TOPICS if t not in by_topic]
    assert missing == []
    assert set(by_topic) == set(topics.ALL_TOPICS)  # and nothing else
    actions = {op["action"] for op in document["operations"].values()}
    assert actions == {"send", "receive"}
    for topic, channels in by_topic.items():
        assert len(channels) == 2, f"{topic}: expected one publisher and one subscriber"


@pytest.mark.parametrize("topic", topics.EVENT_TOPICS + (topics.OUTCOMES,))
def test_event_topics_carry_event_envelopes(document, topic):
    for channel in channels_by_topic(document)[topic]:
        assert payload_schema_name(document, channel) == "EventEnvelope"
        headers = message_of(document, channel)["headers"]["properties"]
        assert {topics.HEADER_MESSAGE_ID, topics.HEADER_MESSAGE_TYPE, topics.HEADER_SCHEMA_VERSION} <= set(headers)
        prefix = "outcomes." if topic == topics.OUTCOMES else topic.split(".")[1] + "."
        for event_type in (t for t in EVENT_TYPES if t.startswith(prefix)):
            assert event_type in channel["description"]


@pytest.mark.parametrize("topic", topics.COMMAND_TOPICS)
def test_command_topics_carry_command_envelopes(document, topic):
    for channel in channels_by_topic(document)[topic]:
        assert payload_schema_name(document, channel) == "CommandEnvelope"
        for command_type, cls in COMMAND_TYPES.items():
            assert (command_type in channel["description"]) == (cls.topic == topic)
        assert "RegisterPatient" not in channel["description"]


def test_dead_letter_headers(document):
    for channel in channels_by_topic(document)[topics.DEAD_LETTER]:
        headers = message_of(document, channel)["headers"]
        assert {topics.HEADER_DLQ_REASON, topics.HEADER_DLQ_SOURCE, topics.HEADER_DLQ_CONSUMER} <= set(
            headers["properties"])
        assert headers["additionalProperties"]  # the original record's headers travel along
        assert channel["bindings"]["kafka"]["partitions"] == 1


def test_envelope_schemas_are_the_contract_models(document):
    from contracts.envelope import CommandEnvelope, EventEnvelope

    schemas = document["components"]["schemas"]
    for model in (EventEnvelope, CommandEnvelope):
        assert set(schemas[model.__name__]["properties"]) == set(model.model_fields)
        assert set(schemas[model.__name__]["required"]) == {
            n for n, f in model.model_fields.items() if f.is_required()}


def test_producers_and_consumers_follow_the_wiring():
    docs = {d.topic: d for d in asyncapi.topic_docs()}
    specs = service_specs()
    for name, spec in specs.items():
        assert any(p.startswith(name) for p in docs[spec.publishes_to].producers)
        for topic in spec.subscribes_to:
            assert any(c.startswith(name) for c in docs[topic].consumers), f"{name} should consume {topic}"


def test_generation_is_deterministic(rendered):
    assert asyncapi.render() == rendered


def test_committed_document_is_fresh(rendered):
    assert COMMITTED.is_file(), "docs/asyncapi.json missing: python -m infra.tooling.asyncapi > docs/asyncapi.json"
    committed = COMMITTED.read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(rendered), (
        "docs/asyncapi.json is stale: python -m infra.tooling.asyncapi > docs/asyncapi.json")
    assert committed == rendered, "docs/asyncapi.json formatting differs: regenerate it"


def test_topics_md_names_every_topic_and_header():
    text = TOPICS_MD.read_text(encoding="utf-8")
    for name in (*topics.ALL_TOPICS, topics.HEADER_MESSAGE_ID, topics.HEADER_MESSAGE_TYPE,
                 topics.HEADER_SCHEMA_VERSION, topics.HEADER_DLQ_REASON, topics.HEADER_DLQ_SOURCE,
                 topics.HEADER_DLQ_CONSUMER):
        assert f"`{name}`" in text, f"docs/topics.md does not mention {name}"


def test_topics_md_table_is_fresh():
    text = TOPICS_MD.read_text(encoding="utf-8")
    assert asyncapi.render_topics_md(text) == text, (
        "docs/topics.md's table is stale: python -m infra.tooling.asyncapi --topics-md")
