"""Wires the infusion service."""

from __future__ import annotations

from collections.abc import Mapping

from contracts import topics
from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.streams import pg_streams
from infra.runtime.wiring import Factory, MessageHandlers, wire
from services.infusion.adapters.products import PgReleasedProducts
from services.infusion.application import handlers

NAME = SCHEMA = "infusion"
HANDLERS = (handlers.record_infusion, handlers.on_product_released)


def message_handlers(dependencies: Mapping[str, Factory]) -> MessageHandlers:
    """The handlers, wired to PostgreSQL adapters by `spec` and to fakes by unit tests."""
    return wire(HANDLERS, dependencies, actor=NAME)


def adapters(store: EventStore) -> dict[str, Factory]:
    return {"streams": pg_streams(store), "products": lambda uow: PgReleasedProducts(uow.conn)}


def spec() -> ServiceSpec:
    handled = message_handlers(adapters(EventStore(SCHEMA)))
    return ServiceSpec(
        name=NAME,
        schema=SCHEMA,
        publishes_to=topics.INFUSION_EVENTS,
        subscribes_to=(topics.INFUSION_COMMANDS, topics.MANUFACTURING_EVENTS),
        command_handlers=handled.commands,
        event_handlers=handled.events,
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
