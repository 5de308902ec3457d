"""Wires the projection service."""

from __future__ import annotations

import asyncio

from contracts import topics
from infra.host import Runtime, ServiceSpec, serve
from services.projection.entrypoints.consumer import ProjectionRunner
from services.projection.entrypoints.http import routes_for, status_for

SCHEMA = "projection"


def spec() -> ServiceSpec:
    runner_ref: dict = {}

    async def background(rt: Runtime, stop: asyncio.Event) -> None:
        runner_ref["runner"] = runner = ProjectionRunner(rt)
        await runner.run(stop)

    return ServiceSpec(name="projection", schema=SCHEMA, publishes_to=topics.OUTCOMES,
                       routes=routes_for(runner_ref), background=background, status=status_for(runner_ref))


def main() -> None:
    serve(spec())


if __name__ == "__main__":
    main()
