"""Wires the enrollment service: the only module that imports every room."""

from __future__ import annotations

from collections.abc import Mapping

from contracts import topics
from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.streams import pg_streams
from infra.runtime.wiring import Factory, MessageHandlers, wire
from services.enrollment.application import handlers
from services.enrollment.entrypoints.http import routes

NAME = SCHEMA = "enrollment"
# Patients are registered over HTTP only (entrypoints/http.py): RegisterPatient carries
# direct identifiers, which must never reach a topic.
HANDLERS = (handlers.register_centre, handlers.enroll_subject)


def message_handlers(dependencies: Mapping[str, Factory]) -> MessageHandlers:
    """The handlers, wired to PostgreSQL adapters by `spec` and to fakes by unit tests."""
    return wire(HANDLERS, dependencies, actor=NAME)


def adapters(store: EventStore) -> dict[str, Factory]:
    return {"streams": pg_streams(store)}


def spec() -> ServiceSpec:
    handled = message_handlers(adapters(EventStore(SCHEMA)))
    return ServiceSpec(
        name=NAME,
        schema=SCHEMA,
        publishes_to=topics.ENROLLMENT_EVENTS,
        subscribes_to=(topics.ENROLLMENT_COMMANDS,),
        command_handlers=handled.commands,
        event_handlers=handled.events,
        routes=routes,
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
