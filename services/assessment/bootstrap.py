"""Wires the assessment service."""

from __future__ import annotations

from collections.abc import Mapping

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.streams import pg_streams
from infra.runtime.subjects import PgSubjectCentres, subject_centres_in
from infra.runtime.wiring import Factory, handlers_in, wire
from services.assessment.adapters.ages import PgAges
from services.assessment.adapters.escalations import PgEscalations
from services.assessment.adapters.infusions import PgInfusions
from services.assessment.application import handlers

NAME = SCHEMA = "assessment"


def adapters() -> dict[str, Factory]:
    """What the handlers name, from PostgreSQL."""
    return {"streams": pg_streams(EventStore(SCHEMA)), "infusions": lambda uow: PgInfusions(uow.conn),
            "subject_centres": lambda uow: PgSubjectCentres(uow.conn, SCHEMA),
            "escalations": lambda uow: PgEscalations(uow.conn), "ages": lambda uow: PgAges(uow.conn)}


def spec(dependencies: Mapping[str, Factory] | None = None) -> ServiceSpec:
    """The service; unit tests pass fakes as `dependencies` in place of `adapters()`."""
    handled = wire(handlers_in(handlers), adapters() if dependencies is None else dependencies, actor=NAME)
    return ServiceSpec(
        name=NAME,
        command_handlers=handled.commands,
        event_handlers=handled.events,
        subject_centre=subject_centres_in(SCHEMA),
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
