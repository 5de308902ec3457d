"""Wires the assessment service."""

from __future__ import annotations

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.wiring import command_route, event_route
from services.assessment.adapters.infusions import PgInfusions
from services.assessment.application import handlers

SCHEMA = "assessment"


def spec() -> ServiceSpec:
    store = EventStore(SCHEMA)
    return ServiceSpec(
        name="assessment",
        command_handlers={
            "RecordResponseAssessment": command_route(store, handlers.record_response, PgInfusions),
        },
        event_handlers={
            "infusion.ProductInfused": event_route(store, "assessment", handlers.on_product_infused, PgInfusions),
        },
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
