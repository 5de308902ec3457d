"""Wires the projection service."""

from __future__ import annotations

from contracts import topics
from infra.runtime.host import ServiceSpec, serve
from services.projection.entrypoints.consumer import ProjectionApplier
from services.projection.entrypoints.http import routes

SCHEMA = "projection"


def spec() -> ServiceSpec:
    return ServiceSpec(name="projection", schema=SCHEMA, publishes_to=topics.OUTCOMES,
                       subscribes_to=topics.EVENT_TOPICS, routes=routes,
                       applier=lambda rt: ProjectionApplier(rt.store))


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
