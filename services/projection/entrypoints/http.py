"""Projection HTTP API: read models as JSON, and the rebuild trigger."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.runtime.host import Runtime
from services.projection.adapters.read_models import PgReadModels
from services.projection.domain.report import programme_report
from services.projection.entrypoints.consumer import rebuild as rebuild_projection


def routes(rt: Runtime) -> list[Route]:
    async def subject(request: Request) -> JSONResponse:
        async with rt.pool.acquire() as conn:
            view = await PgReadModels(conn).get(request.path_params["subject_id"])
        if view is None:
            return JSONResponse({"error": f"no subject {request.path_params['subject_id']}"}, status_code=404)
        return JSONResponse(view.to_json())

    async def subjects(request: Request) -> JSONResponse:
        async with rt.pool.acquire() as conn:
            return JSONResponse(await PgReadModels(conn).all_views())

    async def report(request: Request) -> JSONResponse:
        async with rt.pool.acquire() as conn:
            rows = await PgReadModels(conn).programme_rows(request.query_params.get("programme"))
        return JSONResponse(programme_report(rows))

    async def rebuild(request: Request) -> JSONResponse:
        dropped = await rebuild_projection(rt.consumer)
        return JSONResponse({"rebuilding": True, "dropped_views": dropped}, status_code=202)

    return [
        Route("/subjects", subjects),
        Route("/subjects/{subject_id}", subject),
        Route("/report", report),
        Route("/admin/rebuild", rebuild, methods=["POST"]),
    ]
