"""Wires the enrollment service: the only module that imports every room."""

from __future__ import annotations

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.wiring import command_route
from services.enrollment.application import handlers
from services.enrollment.entrypoints.http import routes

SCHEMA = "enrollment"


def spec() -> ServiceSpec:
    store = EventStore(SCHEMA)
    return ServiceSpec(
        name="enrollment",
        command_handlers={
            "RegisterCentre": command_route(store, handlers.register_centre),
            "EnrollSubject": command_route(store, handlers.enroll_subject),
        },
        routes=routes,
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
