"""Wires the infusion service."""

from __future__ import annotations

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.wiring import command_route, event_route
from services.infusion.adapters.products import PgReleasedProducts
from services.infusion.application import handlers

SCHEMA = "infusion"


def spec() -> ServiceSpec:
    store = EventStore(SCHEMA)
    return ServiceSpec(
        name="infusion",
        command_handlers={
            "RecordInfusion": command_route(store, handlers.record_infusion, PgReleasedProducts),
        },
        event_handlers={
            "manufacturing.ProductReleased": event_route(store, "infusion", handlers.on_product_released,
                                                         PgReleasedProducts),
        },
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
