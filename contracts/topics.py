"""Kafka topic names: the public routing contract.

One event topic per bounded context, one inbound command topic per service that accepts
commands over Kafka, one topic for downstream consumers of outcomes and one dead-letter
topic. Names carry a major version: a breaking change to a topic's contract gets a new topic.
"""

ENROLLMENT_EVENTS = "celltrail.enrollment.v1"
MANUFACTURING_EVENTS = "celltrail.manufacturing.v1"
INFUSION_EVENTS = "celltrail.infusion.v1"
ASSESSMENT_EVENTS = "celltrail.assessment.v1"
OUTCOMES = "celltrail.outcomes.v1"

ENROLLMENT_COMMANDS = "celltrail.enrollment.commands.v1"
MANUFACTURING_COMMANDS = "celltrail.manufacturing.commands.v1"
INFUSION_COMMANDS = "celltrail.infusion.commands.v1"
ASSESSMENT_COMMANDS = "celltrail.assessment.commands.v1"

DEAD_LETTER = "celltrail.deadletter.v1"

EVENT_TOPICS = (ENROLLMENT_EVENTS, MANUFACTURING_EVENTS, INFUSION_EVENTS, ASSESSMENT_EVENTS)
COMMAND_TOPICS = (ENROLLMENT_COMMANDS, MANUFACTURING_COMMANDS, INFUSION_COMMANDS, ASSESSMENT_COMMANDS)
ALL_TOPICS = (*EVENT_TOPICS, OUTCOMES, *COMMAND_TOPICS, DEAD_LETTER)

# Kafka headers every CellTrail message carries.
HEADER_MESSAGE_ID = "celltrail-message-id"
HEADER_MESSAGE_TYPE = "celltrail-message-type"
HEADER_SCHEMA_VERSION = "celltrail-schema-version"
# Dead-letter headers: why, and where the original bytes came from.
HEADER_DLQ_REASON = "celltrail-dlq-reason"
HEADER_DLQ_SOURCE = "celltrail-dlq-source"
HEADER_DLQ_CONSUMER = "celltrail-dlq-consumer"
