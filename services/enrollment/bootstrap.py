"""Wires the enrollment service: the only module that imports every room."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import asyncpg

from infra.runtime.eventstore import EventStore
from infra.runtime.host import ServiceSpec, serve
from infra.runtime.settings import Settings
from infra.runtime.streams import pg_streams
from infra.runtime.wiring import Factory, handlers_in, wire
from services.enrollment.adapters.identities import PgIdentities
from services.enrollment.adapters.identity_crypto import Keyring
from services.enrollment.application import handlers
from services.enrollment.entrypoints.http import endpoints

NAME = SCHEMA = "enrollment"
# Patients are registered (and their identities erased) over HTTP only (entrypoints/http.py):
# RegisterPatient carries direct identifiers, which must never reach a topic.


def adapters() -> dict[str, Factory]:
    """What the handlers name, from PostgreSQL. The identity table's keyring is read from the
    settings when a handler first needs it (an enrolment: the age on the day), so building the
    spec needs none."""
    keyring: list[Keyring] = []

    def identity_table(uow) -> PgIdentities:  # noqa: ANN001 - the runtime's unit of work
        if not keyring:
            key = Settings().identity_key
            keyring.append(Keyring.parse(key.get_secret_value() if key else None))
        writes = uow.writes
        if writes is None:
            return PgIdentities(uow.conn, keyring[0])
        # One table per fetch, which reads the identities of every subject the fetch's commands
        # name with one query when a handler first asks for one (an enrolment's age), instead
        # of a round trip per command (`python -m infra.bench.run --only saturation`, py-spy)
        table = writes.scratch.get("identities")
        if table is None:
            subjects = [c.subject_id for c in writes.commands if isinstance(getattr(c, "subject_id", None), str)]
            table = writes.scratch["identities"] = PgIdentities(uow.conn, keyring[0], ahead=subjects)
        return table  # type: ignore[return-value]

    return {"streams": pg_streams(EventStore(SCHEMA)), "identities": identity_table}


def identities(settings: Settings) -> Callable[[asyncpg.Connection], PgIdentities]:
    """The identity table under the configured keyring; raises IdentityKeyError (and so stops
    the service at start) when there is none or it is malformed."""
    keyring = Keyring.parse(settings.identity_key.get_secret_value() if settings.identity_key else None)
    return lambda conn: PgIdentities(conn, keyring)


def spec(dependencies: Mapping[str, Factory] | None = None) -> ServiceSpec:
    """The service; unit tests pass fakes as `dependencies` in place of `adapters()`."""
    handled = wire(handlers_in(handlers), adapters() if dependencies is None else dependencies, actor=NAME)
    return ServiceSpec(
        name=NAME,
        command_handlers=handled.commands,
        event_handlers=handled.events,
        endpoints=endpoints(identities),
    )


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
