"""Manufacturing HTTP API: its records and their electronic signatures (a release is
approved by a qualified person's signature, EU GMP Annex 16 §1; 21 CFR 11.50)."""

from __future__ import annotations

from starlette.routing import Route

from infra.runtime.access.policy import Action
from infra.runtime.host import Runtime
from infra.runtime.signing import signature_routes
from services.manufacturing.adapters.records import record_resource


def routes(rt: Runtime) -> list[Route]:
    return signature_routes(rt, record_resource, Action.READ_PRODUCT)
