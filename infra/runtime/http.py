"""Small HTTP helpers shared by the services' entry points."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from contracts.errors import CommandRefused


class BadRequest(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


async def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        raw = await request.body()
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        raise BadRequest(JSONResponse({"error": "invalid request", "details": errors}, status_code=422))
    except json.JSONDecodeError as exc:
        raise BadRequest(JSONResponse({"error": f"body is not JSON: {exc}"}, status_code=400))


def refused(exc: CommandRefused) -> JSONResponse:
    return JSONResponse({"error": exc.reason, "code": exc.code}, status_code=409)
