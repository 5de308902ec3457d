"""Wires the manufacturing (chain of identity and custody) service."""

from __future__ import annotations

from collections.abc import Mapping

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.streams import pg_streams
from infra.runtime.wiring import Factory, handlers_in, wire
from services.manufacturing.adapters.enrolments import PgEnrolments
from services.manufacturing.adapters.organisations import PgOrganisations
from services.manufacturing.adapters.persons import PgPersons
from services.manufacturing.application import handlers
from services.manufacturing.entrypoints import http

NAME = SCHEMA = "manufacturing"


def adapters() -> dict[str, Factory]:
    """What the handlers name, from PostgreSQL."""
    return {"streams": pg_streams(EventStore(SCHEMA)), "enrolments": lambda uow: PgEnrolments(uow.conn),
            "organisations": lambda uow: PgOrganisations(uow.conn), "persons": lambda uow: PgPersons(uow.conn)}


def spec(dependencies: Mapping[str, Factory] | None = None) -> ServiceSpec:
    """The service; unit tests pass fakes as `dependencies` in place of `adapters()`."""
    handled = wire(handlers_in(handlers), adapters() if dependencies is None else dependencies, actor=NAME)
    return ServiceSpec(
        name=NAME,
        command_handlers=handled.commands,
        event_handlers=handled.events,
        endpoints=http.ENDPOINTS,
        # whose subject a command is about, for the command guard: the enrolments view
        subject_centre=lambda conn, subject_id: PgEnrolments(conn).centre_of(subject_id),
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
