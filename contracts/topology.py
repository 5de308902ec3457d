"""The services of CellTrail and how their topics are named: the one list every other list
is derived from (settings, topics, the loader's wait-set, docs, the benchmark), and that a
test holds the hand-kept copies to (the migrations, import-linter, docker-compose).

What each service accepts and applies is not listed here: a command belongs to the service
whose command topic its contract names (`CommandPayload.topic`), an event to the service
whose context prefixes its type (`enrollment.SubjectEnrolled`), and a service consumes the
event types its handlers take (`services/<name>/bootstrap.py`).
"""

from __future__ import annotations

# Each is a bounded context with its own PostgreSQL schema, event topic and consumer group.
SERVICES = ("enrollment", "manufacturing", "infusion", "assessment", "projection")

# The projection's facts are outcomes for downstream consumers, on a topic of their own.
EVENT_CONTEXT = {"enrollment": "enrollment", "manufacturing": "manufacturing", "infusion": "infusion",
                 "assessment": "assessment", "projection": "outcomes"}
_SERVICE_OF_CONTEXT = {c: s for s, c in EVENT_CONTEXT.items()}  # every consumer asks, for every event

HTTP_PORT_BASE = 8101  # on loopback: enrollment 8101 ... projection 8105 (override with HTTP_PORT)


def http_port(service: str) -> int:
    return HTTP_PORT_BASE + SERVICES.index(service)


def events_topic(service: str) -> str:
    return f"celltrail.{EVENT_CONTEXT[service]}.v1"


def commands_topic(service: str) -> str:
    return f"celltrail.{service}.commands.v1"


def group_id(service: str) -> str:
    return f"celltrail-{service}"


def service_of_event(event_type: str) -> str | None:
    """The service that emits `event_type` (None for `common.*`, emitted by any service)."""
    return _SERVICE_OF_CONTEXT.get(event_type.split(".", 1)[0])
