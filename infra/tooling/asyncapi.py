"""AsyncAPI 3.0 document of the whole CellTrail system: `python -m infra.tooling.asyncapi > docs/asyncapi.json`.

Built with FastStream's own specification generator (`faststream.specification.AsyncAPI`)
from a documentation-only `KafkaBroker` (never started) that declares one publisher and
one subscriber per topic in `contracts.topics`: event and outcome topics carry
`EventEnvelope`, command topics `CommandEnvelope`, the dead-letter topic the original
record bytes. Who produces and consumes each topic is read from the services' wiring
(`services/<name>/bootstrap.py:spec()`), so the document cannot drift from it.

FastStream 0.7 has no parameter for Kafka message headers, message keys or partition
counts, so those (all from `contracts.topics`, `contracts.envelope` and `infra.runtime.settings`)
are added to the generated document afterwards, as AsyncAPI 3.0 `headers`, Kafka message
binding `key` and Kafka channel binding `partitions` / `replicas`.
tests/unit/test_asyncapi.py checks the committed docs/asyncapi.json is a fresh generation.
"""

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from contracts import topics
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from infra.runtime.access.policy import SIGNING
from infra.runtime.settings import Settings
from infra.tooling.specs import service_specs

TITLE = "CellTrail"
VERSION = "0.1.0"
BOOTSTRAP = "kafka:9092"  # the compose network's internal listener (docker-compose.yml)
PARTITIONS = Settings.model_fields["topic_partitions"].default  # CELLTRAIL_TOPIC_PARTITIONS
DEAD_LETTER_PARTITIONS = 1  # infra.runtime.messaging.ensure_topics
REPLICAS = 1  # single-node broker

DESCRIPTION = """\
Event-sourced backbone for cell-therapy programmes. Each bounded context publishes its
facts on its own event topic through a transactional outbox (PostgreSQL), accepts commands
on its own command topic, and consumes the event topics it depends on.

Keys: every message is keyed by the pseudonymous subject id (`S-` + 12 hex digits), or,
for messages about no subject, by the stream id (events) or centre id / command id
(commands), so one subject's messages stay in order on one partition. No message carries a
direct patient identifier: `RegisterPatient` is accepted over HTTP by enrollment only.

Delivery is at-least-once. The outbox relay advances its checkpoint only after the broker
acknowledged a batch (acks=all), so a crash republishes. Consumers are idempotent: each
service claims the event or command id in its inbox in the same PostgreSQL transaction as
its effects, applies a whole fetch in one transaction that also stores the partitions' next
offsets, and commits the Kafka offsets only after that transaction committed. A message
that cannot be decoded, or whose handler keeps failing, goes to the dead-letter topic with
its original bytes and headers plus the reason, source and consumer; an unreachable
database or broker is waited for, never held against a message. An administrator sends dead
letters back after a fix (`celltrail deadletters replay`): the original bytes, key and headers
to the source partition, marked with the replay headers, and a replay marker on the
dead-letter topic.
"""


@dataclass
class TopicDoc:
    """What one topic carries and who uses it (also the source of docs/topics.md)."""

    topic: str
    kind: str  # events | outcomes | commands | dead-letter
    payload: str  # EventEnvelope | CommandEnvelope | original bytes
    message_types: list[str]
    key: str
    headers: dict[str, str]
    producers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    partitions: int = PARTITIONS


ENVELOPE_HEADERS_EVENT = {
    topics.HEADER_MESSAGE_ID: "the envelope's event_id (UUID), for early deduplication",
    topics.HEADER_MESSAGE_TYPE: "the envelope's event_type",
    topics.HEADER_SCHEMA_VERSION: "the envelope's schema_version (decimal)",
}
ENVELOPE_HEADERS_COMMAND = {
    topics.HEADER_MESSAGE_ID: "the envelope's command_id (UUID), for early deduplication",
    topics.HEADER_MESSAGE_TYPE: "the envelope's command_type",
}
DEAD_LETTER_HEADERS = {
    topics.HEADER_DLQ_REASON: "why the record was dead-lettered (at most 4000 characters)",
    topics.HEADER_DLQ_SOURCE: "where the original came from: <topic>/<partition>/<offset>",
    topics.HEADER_DLQ_CONSUMER: "the service (consumer) that gave up on it",
}
REPLAY_MARKER_HEADERS = {
    topics.HEADER_DLQ_REPLAYED: "only on a replay marker (instead of the dead-letter headers): the id "
                                "<partition>:<offset> of the dead letter sent back; its value is JSON "
                                "(replay_of, replayed_by, replayed_at, sent_to)",
}
# On a record that `celltrail deadletters replay` sent back to its source topic, never required.
REPLAY_HEADERS = {
    topics.HEADER_REPLAY_OF: "only on a dead letter sent back: its id, <partition>:<offset> on "
                             f"{topics.DEAD_LETTER}",
    topics.HEADER_REPLAYED_BY: "only on a dead letter sent back: the principal who sent it",
    topics.HEADER_REPLAYED_AT: "only on a dead letter sent back: when (ISO 8601, UTC)",
}
OPTIONAL_HEADERS = frozenset(REPLAY_HEADERS) | frozenset(REPLAY_MARKER_HEADERS)
REPLAYER = "celltrail deadletters replay (a dead letter sent back after a fix)"
EVENT_KEY = "subject_id of the envelope (pseudonymous), else its stream_id"
COMMAND_KEY = "payload subject_id (pseudonymous), else payload centre_id, else command_id"

def _context(topic: str) -> str:
    return topic.split(".")[1]  # celltrail.<context>.v1 / celltrail.<context>.commands.v1


def topic_docs() -> list[TopicDoc]:
    specs = service_specs()
    docs: list[TopicDoc] = []
    for topic in (*topics.EVENT_TOPICS, topics.OUTCOMES):
        producers = [n for n, s in specs.items() if s.publishes_to == topic]
        types = [t for t in EVENT_TYPES if t.split(".")[0] == _context(topic)]
        if any(specs[n].command_handlers for n in producers):
            types.append("common.CommandRejected")  # refusals are facts on the refusing service's topic
        if any(t.split(".")[0] == _context(topic) for t in SIGNING):
            types.append("common.RecordSigned")  # signatures live beside the records they sign (policy.SIGNING)
        types.append("common.ChainHeadRecorded")  # every store's relay publishes its chain's head
        consumers = []
        for name, spec in specs.items():
            if topic in spec.subscribes_to and spec.applier is not None:
                consumers.append(f"{name} (group celltrail-{name}; applies every event, offsets stored with its "
                                 f"read models)")
            elif topic in spec.subscribes_to:
                handled = [t for t in spec.event_handlers if t in types]
                consumers.append(f"{name} (group celltrail-{name}; applies {', '.join(handled) or 'nothing'}, "
                                 f"ignores the rest)")
        if topic in topics.EVENT_TOPICS:
            consumers.append("celltrail load (watcher, no group: waits for the outcome of each command)")
        if topic == topics.OUTCOMES:
            consumers.append("downstream registries and sponsors (outside CellTrail)")
        docs.append(TopicDoc(topic, "outcomes" if topic == topics.OUTCOMES else "events", "EventEnvelope",
                             types, EVENT_KEY, {**ENVELOPE_HEADERS_EVENT, **REPLAY_HEADERS},
                             [f"{n} (transactional outbox relay)" for n in producers] + [REPLAYER], consumers))
    for topic in topics.COMMAND_TOPICS:
        types = [t for t, cls in COMMAND_TYPES.items() if getattr(cls, "topic", None) == topic]
        producers = ["celltrail load / clinical systems"]
        if topic == topics.MANUFACTURING_COMMANDS:
            producers.append("GMP facility (RecordProductRelease)")
        producers.append(REPLAYER)
        consumers = [f"{n} (group celltrail-{n}; handles {', '.join(s.command_handlers)})"
                     for n, s in specs.items() if topic in s.subscribes_to]
        docs.append(TopicDoc(topic, "commands", "CommandEnvelope", types, COMMAND_KEY,
                             {**ENVELOPE_HEADERS_COMMAND, **REPLAY_HEADERS}, producers, consumers))
    dead_letter_producers = [f"{n} (its consumer)" for n, s in specs.items() if s.subscribes_to]
    docs.append(TopicDoc(
        topics.DEAD_LETTER, "dead-letter", "original record bytes (a replay marker: JSON)", [],
        "the original record's key (a replay marker: the dead letter's id)",
        {"(original headers)": "every header of the original record, unchanged",
         **DEAD_LETTER_HEADERS, **REPLAY_MARKER_HEADERS},
        dead_letter_producers + ["celltrail deadletters replay (replay markers)"],
        ["operators: celltrail deadletters list and replay (no group; no automated consumer)"],
        DEAD_LETTER_PARTITIONS))
    return docs


def _describe(doc: TopicDoc, role: str) -> str:
    who = doc.producers if role == "publish" else doc.consumers
    lines = [f"{doc.kind} topic; payload: {doc.payload}."]
    if doc.message_types:
        noun = "command_type" if doc.kind == "commands" else "event_type"
        lines.append(f"Carries {noun}: {', '.join(doc.message_types)}.")
    lines.append(f"Key: {doc.key}.")
    lines.append("Headers: " + "; ".join(f"{h}: {d}" for h, d in doc.headers.items()) + ".")
    lines.append(f"Partitions: {doc.partitions}.")
    lines.append(("Produced by: " if role == "publish" else "Consumed by: ") + ("; ".join(who) or "nobody") + ".")
    return " ".join(lines)


def _documenting_handler(model: Any):
    async def handle(message: Any) -> None:  # pragma: no cover - documentation only, never run
        return None

    # Set explicitly (not via a string annotation) so FastStream's signature inspection
    # sees the real model.
    handle.__annotations__ = {"message": model, "return": None}
    return handle


def build_broker(docs: list[TopicDoc] | None = None) -> KafkaBroker:
    """A documentation-only broker: never connected or started."""
    docs = topic_docs() if docs is None else docs
    broker = KafkaBroker(BOOTSTRAP, description="Apache Kafka (KRaft). Containers: kafka:9092; "
                         "the host: 127.0.0.1:9094 (docker-compose.yml).", logger=None)
    models: dict[str, Any] = {"EventEnvelope": EventEnvelope, "CommandEnvelope": CommandEnvelope}
    for doc in docs:
        model = models.get(doc.payload, bytes)
        broker.publisher(doc.topic, title=f"{doc.topic}.publish", description=_describe(doc, "publish"),
                         schema=model)
        broker.subscriber(doc.topic, title=f"{doc.topic}.subscribe", description=_describe(doc, "subscribe"))(
            _documenting_handler(model))
    return broker


def _header_schema(doc: TopicDoc) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, desc in doc.headers.items():
        if name.startswith("("):
            continue
        schema: dict[str, Any] = {"type": "string", "description": desc}
        if name == topics.HEADER_MESSAGE_ID:
            schema["format"] = "uuid"
        if name == topics.HEADER_SCHEMA_VERSION:
            schema["pattern"] = "^[1-9][0-9]*$"
        props[name] = schema
    required = [name for name in props if name not in OPTIONAL_HEADERS]
    out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    if doc.kind == "dead-letter":
        out["additionalProperties"] = {"type": "string", "description": "a header of the original record"}
        out["description"] = ("The original record's headers, unchanged, plus the three dead-letter headers; "
                              "a replay marker carries only its own header.")
        out["required"] = []
        out["oneOf"] = [{"required": required}, {"required": list(REPLAY_MARKER_HEADERS)}]
    return out


def document() -> dict[str, Any]:
    """The AsyncAPI document as JSON-able data (FastStream's, plus headers, keys, partitions)."""
    docs = topic_docs()
    by_topic = {d.topic: d for d in docs}
    spec = AsyncAPI(build_broker(docs), title=TITLE, version=VERSION, description=DESCRIPTION,
                    schema_version="3.0.0").to_specification()
    data = json.loads(spec.to_json())
    messages = data.get("components", {}).get("messages", {})
    for channel in data.get("channels", {}).values():
        doc = by_topic[channel["address"]]
        kafka = channel.setdefault("bindings", {}).setdefault("kafka", {})
        kafka["partitions"] = doc.partitions
        kafka["replicas"] = REPLICAS
        for ref in channel.get("messages", {}).values():
            message = messages[ref["$ref"].rsplit("/", 1)[1]]
            message["headers"] = _header_schema(doc)
            message["bindings"] = {"kafka": {"key": {"type": "string", "description": doc.key},
                                             "bindingVersion": "0.4.0"}}
            if doc.payload in ("EventEnvelope", "CommandEnvelope"):
                # CellTrail's correlation id travels in the envelope, not in a FastStream header.
                message["correlationId"] = {"location": "$message.payload#/correlation_id"}
            else:
                message.pop("correlationId", None)
                message["description"] = ("The original record's value, byte for byte (possibly malformed); "
                                          "a replay marker's is a JSON object (replay_of, replayed_by, "
                                          "replayed_at, sent_to).")
    return data


TOPICS_BEGIN = "<!-- generated by python -m infra.tooling.asyncapi --topics-md: do not edit -->"
TOPICS_END = "<!-- end of generated table -->"


def topics_table() -> str:
    """The topics table of docs/topics.md, from the same source as the AsyncAPI document."""
    def cell(items: list[str]) -> str:
        return "; ".join(items).replace("|", "\\|") or "nobody"

    rows = ["| Topic | Payload | Message types | Producers | Consumers | Partitions |", "|---|---|---|---|---|---|"]
    for d in topic_docs():
        types = ", ".join(f"`{t}`" for t in d.message_types) or "any (including malformed)"
        parts = "`CELLTRAIL_TOPIC_PARTITIONS` (default 3)" if d.partitions == PARTITIONS else str(d.partitions)
        rows.append(f"| `{d.topic}` | {d.payload} | {types} | {cell(d.producers)} | {cell(d.consumers)} | {parts} |")
    return "\n".join([TOPICS_BEGIN, *rows, TOPICS_END])


def render_topics_md(current: str) -> str:
    """docs/topics.md with its generated table replaced."""
    head, _, rest = current.partition(TOPICS_BEGIN)
    _, _, tail = rest.partition(TOPICS_END)
    return head + topics_table() + tail


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    if sys.argv[1:] == ["--topics-md"]:
        from pathlib import Path

        path = Path(__file__).resolve().parents[2] / "docs" / "topics.md"
        path.write_text(render_topics_md(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
