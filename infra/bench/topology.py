"""Who publishes and who consumes which events, read from the services' own specs
(`services/<name>/bootstrap.py:spec()`, as the AsyncAPI export does), never a copy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from contracts import topics
from infra.tooling.asyncapi import service_specs


@dataclass(frozen=True)
class EventConsumer:
    """A consumer of event topics: its name (the row key in `<schema>.consumer_offsets`
    and `<schema>.inbox`), its schema, the event topics it reads and the event types it
    applies (empty: every event, as the projection)."""

    name: str
    schema: str
    event_topics: tuple[str, ...]
    event_types: tuple[str, ...]


@dataclass(frozen=True)
class Topology:
    topic_of_context: dict[str, str]  # "enrollment" -> celltrail.enrollment.v1
    consumers: tuple[EventConsumer, ...]
    stores: tuple[str, ...]  # every service's schema: its event store, relayed to its topic

    def topic_of(self, event_type: str) -> str:
        return self.topic_of_context[event_type.split(".", 1)[0]]

    def consumer(self, name: str) -> EventConsumer:
        return next(c for c in self.consumers if c.name == name)

    @property
    def services_applying_events(self) -> tuple[EventConsumer, ...]:
        """The services with handlers for another context's events (not the projection)."""
        return tuple(c for c in self.consumers if c.event_types)

    def consumers_of(self, event_type: str) -> tuple[EventConsumer, ...]:
        topic = self.topic_of(event_type)
        return tuple(c for c in self.consumers if topic in c.event_topics
                     and (not c.event_types or event_type in c.event_types))


@cache
def topology() -> Topology:
    specs = service_specs()
    consumers = tuple(
        EventConsumer(name=s.name, schema=s.schema,
                      event_topics=tuple(t for t in s.subscribes_to if t in topics.EVENT_TOPICS),
                      event_types=tuple(sorted(s.event_handlers)))
        for s in specs.values() if any(t in topics.EVENT_TOPICS for t in s.subscribes_to))
    return Topology({s.name: s.publishes_to for s in specs.values() if s.publishes_to in topics.EVENT_TOPICS},
                    consumers, tuple(s.schema for s in specs.values()))
