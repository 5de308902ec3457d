"""Who publishes and who consumes which events, read from the services' own specs
(`infra.tooling.specs`, as the loader and the AsyncAPI export read them) and the topic
names of `contracts.topology`, never a copy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from contracts import topics
from contracts.topology import events_topic, service_of_event
from infra.tooling.specs import service_specs


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
    consumers: tuple[EventConsumer, ...]
    stores: tuple[str, ...]  # every service's schema: its event store, relayed to its topic

    @staticmethod
    def topic_of(event_type: str) -> str:
        return events_topic(service_of_event(event_type))

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
    return Topology(consumers, tuple(s.schema for s in specs.values()))
