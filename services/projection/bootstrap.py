"""Wires the projection service."""

from __future__ import annotations

from infra.runtime.host import ServiceSpec, serve
from services.projection.entrypoints.consumer import ProjectionApplier
from services.projection.entrypoints.http import ENDPOINTS


def spec() -> ServiceSpec:
    return ServiceSpec(name="projection", endpoints=ENDPOINTS,
                       applier=lambda rt: ProjectionApplier(rt.store))


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
