"""Wires the manufacturing (chain of identity and custody) service."""

from __future__ import annotations

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.wiring import command_route, event_route
from services.manufacturing.adapters.enrolments import PgEnrolments
from services.manufacturing.application import handlers

SCHEMA = "manufacturing"


def spec() -> ServiceSpec:
    store = EventStore(SCHEMA)
    return ServiceSpec(
        name="manufacturing",
        command_handlers={
            "RecordApheresisCollection": command_route(store, handlers.record_collection, PgEnrolments),
            "RecordProductRelease": command_route(store, handlers.record_release),
        },
        event_handlers={
            "enrollment.SubjectEnrolled": event_route(store, "manufacturing", handlers.on_subject_enrolled,
                                                      PgEnrolments),
        },
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
