"""Small HTTP helpers shared by the services' entry points."""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from contracts.base import from_json
from contracts.errors import CommandRefused


class BadRequest(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


async def parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    """The body as `model`, read strictly (contracts/base.py, `from_json`): `"no"` is not a
    boolean, `"12"` not a number; a refusal names each field at fault (422)."""
    try:
        raw = await request.body()
        return from_json(model, raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "error": e["msg"]} for e in exc.errors()]
        raise BadRequest(JSONResponse({"error": "invalid request", "details": errors}, status_code=422))
    except json.JSONDecodeError as exc:
        raise BadRequest(JSONResponse({"error": f"body is not JSON: {exc}"}, status_code=400))


def refused(exc: CommandRefused) -> JSONResponse:
    return JSONResponse({"error": exc.reason, "code": exc.code}, status_code=409)
