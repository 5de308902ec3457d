"""Every service's HTTP endpoints, as declared: served as routes, documented in a valid
OpenAPI 3.1 document with the security each one has, and guarded (all but /health)."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from infra.runtime.access.http import SECURITY, SECURITY_SCHEMES
from infra.runtime.endpoints import Guard
from infra.runtime.host import build_app, endpoints_of
from infra.runtime.openapi import document
from infra.runtime.settings import SERVICES, Settings
from infra.tooling.specs import service_specs

SETTINGS = Settings(DATABASE_URL="postgresql://nowhere/x", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")


@pytest.fixture(params=SERVICES)
def spec(request):
    return service_specs()[request.param]


class TestOpenApi:
    def test_the_document_is_valid_openapi_3_1(self, spec) -> None:
        doc = document(spec.name, endpoints_of(spec))
        assert doc["openapi"].startswith("3.1")
        validate(doc)  # raises, naming what is wrong

    def test_it_lists_exactly_the_declared_endpoints(self, spec) -> None:
        doc = document(spec.name, endpoints_of(spec))
        listed = {f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method in ops}
        assert listed == {ep.key for ep in endpoints_of(spec)}

    def test_it_publishes_the_bearer_and_api_key_schemes(self, spec) -> None:
        schemes = document(spec.name, endpoints_of(spec))["components"]["securitySchemes"]
        assert schemes == SECURITY_SCHEMES
        assert schemes["bearerAuth"]["scheme"] == "bearer" and schemes["apiKey"]["in"] == "header"

    def test_every_operation_but_health_needs_a_credential_and_says_401(self, spec) -> None:
        doc = document(spec.name, endpoints_of(spec))
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                if path == "/health":
                    assert op["security"] == [] and "401" not in op["responses"]
                else:
                    assert op["security"] == SECURITY and "401" in op["responses"], f"{method} {path}"

    def test_an_operation_the_policy_guards_names_its_action_and_403(self, spec) -> None:
        doc = document(spec.name, endpoints_of(spec))
        for ep in endpoints_of(spec):
            op = doc["paths"][ep.path][ep.method.lower()]
            guarded = ep.access.guard in (Guard.RESOURCE, Guard.LISTING)
            assert op.get("x-celltrail-action") == (str(ep.access.action) if guarded else None)
            assert "403" in op["responses"] or not guarded


class TestRoutes:
    def test_the_app_serves_exactly_the_declared_endpoints(self, spec) -> None:
        app = build_app(spec, SETTINGS)
        served = {f"{m} {r.path}" for r in app.routes if isinstance(r, Route) for m in r.methods if m != "HEAD"}
        assert served == {ep.key for ep in endpoints_of(spec)}

    def test_only_health_is_public(self, spec) -> None:
        assert [ep.path for ep in endpoints_of(spec) if not ep.access.authenticated] == ["/health"]

    def test_an_endpoint_declared_twice_stops_the_service(self, spec) -> None:
        from dataclasses import replace

        from infra.runtime.host import TopologyError, host_endpoints

        twice = replace(spec, endpoints=spec.endpoints + (host_endpoints(spec)[0],))
        with pytest.raises(TopologyError, match="declares an endpoint twice"):
            build_app(twice, SETTINGS)
