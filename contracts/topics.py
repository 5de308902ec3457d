"""Kafka topic names: the public routing contract.

One event topic per bounded context, one inbound command topic per service that accepts
commands over Kafka, one topic for downstream consumers of outcomes and one dead-letter
topic. Names carry a major version: a breaking change to a topic's contract gets a new topic.
"""

from contracts.topology import SERVICES, commands_topic, events_topic

ENROLLMENT_EVENTS = events_topic("enrollment")
MANUFACTURING_EVENTS = events_topic("manufacturing")
INFUSION_EVENTS = events_topic("infusion")
ASSESSMENT_EVENTS = events_topic("assessment")
OUTCOMES = events_topic("projection")

ENROLLMENT_COMMANDS = commands_topic("enrollment")
MANUFACTURING_COMMANDS = commands_topic("manufacturing")
INFUSION_COMMANDS = commands_topic("infusion")
ASSESSMENT_COMMANDS = commands_topic("assessment")

DEAD_LETTER = "celltrail.deadletter.v1"

# Every context's event topic (what the projection folds); outcomes are for downstream.
EVENT_TOPICS = tuple(events_topic(s) for s in SERVICES if s != "projection")
# Services that accept commands on Kafka: those whose command topic some contract names.
COMMAND_TOPICS = tuple(commands_topic(s) for s in SERVICES if s != "projection")
ALL_TOPICS = (*EVENT_TOPICS, OUTCOMES, *COMMAND_TOPICS, DEAD_LETTER)

# Kafka headers every CellTrail message carries.
HEADER_MESSAGE_ID = "celltrail-message-id"
HEADER_MESSAGE_TYPE = "celltrail-message-type"
HEADER_SCHEMA_VERSION = "celltrail-schema-version"
# Dead-letter headers: why, and where the original bytes came from.
HEADER_DLQ_REASON = "celltrail-dlq-reason"
HEADER_DLQ_SOURCE = "celltrail-dlq-source"
HEADER_DLQ_CONSUMER = "celltrail-dlq-consumer"
# A replay marker on the dead-letter topic (`celltrail deadletters replay`): the id
# (`<partition>:<offset>` on the dead-letter topic) of the dead letter sent back.
HEADER_DLQ_REPLAYED = "celltrail-dlq-replayed"
# On a record sent back to its source topic by a replay: which dead letter, by whom, when.
HEADER_REPLAY_OF = "celltrail-replay-of"
HEADER_REPLAYED_BY = "celltrail-replayed-by"
HEADER_REPLAYED_AT = "celltrail-replayed-at"
