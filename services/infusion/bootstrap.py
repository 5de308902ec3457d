"""Wires the infusion service."""

from __future__ import annotations

from collections.abc import Mapping

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.streams import pg_streams
from infra.runtime.subjects import PgSubjectCentres, subject_centres_in
from infra.runtime.wiring import Factory, handlers_in, wire
from services.infusion.adapters.products import PgReleasedProducts
from services.infusion.adapters.policies import PgPolicies, PgTreatments
from services.infusion.adapters.units import PgUnits
from services.infusion.application import handlers
from services.infusion.entrypoints import http

NAME = SCHEMA = "infusion"


def adapters() -> dict[str, Factory]:
    """What the handlers name, from PostgreSQL."""
    return {"streams": pg_streams(EventStore(SCHEMA)), "products": lambda uow: PgReleasedProducts(uow.conn),
            "subject_centres": lambda uow: PgSubjectCentres(uow.conn, SCHEMA), "units": lambda uow: PgUnits(uow.conn),
            "policies": lambda uow: PgPolicies(uow.conn), "treatments": lambda uow: PgTreatments(uow.conn)}


def spec(dependencies: Mapping[str, Factory] | None = None) -> ServiceSpec:
    """The service; unit tests pass fakes as `dependencies` in place of `adapters()`."""
    # SubjectEnrolled: handlers.on_subjects_enrolled keeps the subject's centre and its policy
    handled = wire(handlers_in(handlers), adapters() if dependencies is None else dependencies, actor=NAME)
    return ServiceSpec(
        name=NAME,
        command_handlers=handled.commands,
        event_handlers=handled.events,
        endpoints=http.ENDPOINTS,
        subject_centre=subject_centres_in(SCHEMA),
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
