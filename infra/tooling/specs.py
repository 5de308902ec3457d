"""Each service's `ServiceSpec`, read from its bootstrap (nothing is started): what tooling
derives the topology from (the loader's wait-set, docs/asyncapi.json, docs/topics.md)."""

from __future__ import annotations

import importlib
from functools import cache

from contracts.topology import SERVICES, group_id
from infra.runtime.host import ServiceSpec


@cache
def service_specs() -> dict[str, ServiceSpec]:
    return {name: importlib.import_module(f"services.{name}.bootstrap").spec() for name in SERVICES}


def subscriptions() -> dict[str, set[str]]:
    """Consumer group -> the event topics it reads (command topics are not waited on)."""
    out = {}
    for name, spec in service_specs().items():
        upstream = {t for t in spec.subscribes_to if not t.endswith(".commands.v1")}
        if upstream:
            out[group_id(name)] = upstream
    return out
