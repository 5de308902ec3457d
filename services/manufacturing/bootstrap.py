"""Wires the manufacturing (chain of identity and custody) service."""

from __future__ import annotations

from collections.abc import Mapping

from contracts import topics
from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.streams import pg_streams
from infra.runtime.wiring import Factory, MessageHandlers, wire
from services.manufacturing.adapters.enrolments import PgEnrolments
from services.manufacturing.application import handlers

NAME = SCHEMA = "manufacturing"
HANDLERS = (handlers.record_collection, handlers.record_release, handlers.on_subject_enrolled)


def message_handlers(dependencies: Mapping[str, Factory]) -> MessageHandlers:
    """The handlers, wired to PostgreSQL adapters by `spec` and to fakes by unit tests."""
    return wire(HANDLERS, dependencies, actor=NAME)


def adapters(store: EventStore) -> dict[str, Factory]:
    return {"streams": pg_streams(store), "enrolments": lambda uow: PgEnrolments(uow.conn)}


def spec() -> ServiceSpec:
    handled = message_handlers(adapters(EventStore(SCHEMA)))
    return ServiceSpec(
        name=NAME,
        schema=SCHEMA,
        publishes_to=topics.MANUFACTURING_EVENTS,
        # GMP facilities report product release on manufacturing's command topic.
        subscribes_to=(topics.MANUFACTURING_COMMANDS, topics.ENROLLMENT_EVENTS),
        command_handlers=handled.commands,
        event_handlers=handled.events,
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
