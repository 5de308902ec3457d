"""A service's OpenAPI 3.1 document, generated from the same endpoint declarations the edge
enforces (`infra.runtime.endpoints`): a route cannot be served without being documented,
nor documented with a security it does not have."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from infra.runtime.access.http import SECURITY, SECURITY_SCHEMES
from contracts.envelope import IDEMPOTENCY_KEY_PATTERN
from infra.runtime.endpoints import Endpoint, Guard

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
ERROR = {"type": "object", "required": ["error"],
         "properties": {"error": {"type": "string"}, "code": {"type": "string"}}}


def _json(description: str, schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(schema or {})}}}


def _request_body(body: type[BaseModel] | Mapping[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, type) and issubclass(body, BaseModel):
        schema = body.model_json_schema(ref_template=REF_TEMPLATE)
        schemas.update(schema.pop("$defs", {}))
        schemas[body.__name__] = schema
        ref: Mapping[str, Any] = {"$ref": REF_TEMPLATE.format(model=body.__name__)}
    else:
        ref = body
    return {"required": True, "content": {"application/json": {"schema": dict(ref)}}}


def _operation(service: str, ep: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    words = re.findall(r"[a-z0-9]+", ep.path.replace(".json", ""))
    op: dict[str, Any] = {
        "operationId": "_".join([service, ep.method.lower(), *words]),
        "summary": ep.summary,
        "responses": {str(status): _json(text) for status, text in sorted(ep.answers.items())},
    }
    if ep.path_params:
        op["parameters"] = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                            for name in ep.path_params]
    if ep.idempotent:  # infra/runtime/edge.py: a resubmission is answered as the first was
        op.setdefault("parameters", []).append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            "description": "The caller's name for this request: one resubmitted with the same key and body is "
                           "answered as the first was (header `Idempotent-Replayed: true`) and changes nothing; "
                           "the same key with another body is refused (422 IDEMPOTENCY_KEY_REUSED)"})
    if ep.body is not None:
        op["requestBody"] = _request_body(ep.body, schemas)
    # infra/runtime/admission.py: busy (SATURATED) or a database or broker unreachable (UNAVAILABLE)
    op["responses"].setdefault("503", {**_json("busy, or a service it needs is unreachable: retry after the "
                                               "`Retry-After` header's seconds", ERROR),
                                       "headers": {"Retry-After": {"schema": {"type": "integer"}}}})
    if ep.access.authenticated:
        op["security"] = SECURITY
        op["responses"]["401"] = _json("no credential, or not a valid one (RFC 6750 §3)", ERROR)
        if ep.access.guard in (Guard.RESOURCE, Guard.LISTING):
            op["responses"]["403"] = _json("the policy refuses this principal the action", ERROR)
            op["x-celltrail-action"] = str(ep.access.action)
            op["description"] = (f"Needs `{ep.access.action}`" + (
                " for the resource the request names." if ep.access.guard is Guard.RESOURCE else
                " somewhere; answers only the items the policy lets the caller see."))
    else:
        op["security"] = []  # public: overrides the document's default
    return op


def document(service: str, endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(service, ep, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": f"CellTrail {service}", "version": "1",
                 "description": "Every operation but /health needs a bearer token (`celltrail access token`) "
                                "or a system's API key (`celltrail access apikey`); docs/design.md, Access."},
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": schemas},
        "security": SECURITY,
    }
