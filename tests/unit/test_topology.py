"""One source of the topology (contracts/topology.py plus each service's handlers): what is
derived cannot disagree, and every copy that has to be kept by hand (migrations are
history, import-linter and compose are not Python) is held to it here."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

from contracts import topics, topology
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from infra.runtime.host import ServiceSpec, TopologyError
from infra.runtime.settings import DEFAULT_HTTP_PORTS
from infra.tooling.specs import service_specs, subscriptions

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_contract(name: str) -> dict:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


class TestHandKeptCopies:
    @pytest.mark.parametrize("revision", ["0001_event_stores", "0002_relay_horizon", "0003_consumer_offsets",
                                      "0004_event_chain"])
    def test_the_migrations_create_a_schema_per_service(self, revision: str) -> None:
        migration = importlib.import_module(f"migrations.versions.{revision}")
        assert tuple(migration.SERVICE_SCHEMAS) == topology.SERVICES

    def test_import_linter_keeps_every_service_independent(self) -> None:
        modules = _pyproject_contract("Services never import each other")["modules"]
        assert modules == [f"services.{s}" for s in topology.SERVICES]

    def test_import_linter_gives_every_service_its_four_rooms(self) -> None:
        assert _pyproject_contract("Each service is four rooms and a bootstrap")["containers"] == [
            f"services.{s}" for s in topology.SERVICES]

    def test_import_linter_keeps_every_domain_and_application_pure(self) -> None:
        sources = _pyproject_contract("Domain and application code import no adapters or frameworks")["source_modules"]
        assert sources == [f"services.{s}.{room}" for s in topology.SERVICES for room in ("domain", "application")]

    def test_every_service_has_a_bootstrap_and_nothing_else_poses_as_one(self) -> None:
        packages = {p.parent.name for p in (ROOT / "services").glob("*/bootstrap.py")}
        assert packages == set(topology.SERVICES)


class TestDerived:
    def test_ports_and_topics_follow_the_list(self) -> None:
        assert list(DEFAULT_HTTP_PORTS) == list(topology.SERVICES)
        assert len(set(DEFAULT_HTTP_PORTS.values())) == len(topology.SERVICES)
        assert topics.EVENT_TOPICS == tuple(topology.events_topic(s) for s in topology.SERVICES[:-1])
        assert topics.OUTCOMES == topology.events_topic("projection")

    def test_every_command_on_a_topic_is_handled_by_the_service_that_owns_the_topic(self) -> None:
        specs = service_specs()
        for command_type, cls in COMMAND_TYPES.items():
            handlers = [n for n, s in specs.items() if command_type in s.command_handlers]
            if cls.topic is None:
                assert handlers == [], f"{command_type} travels over HTTP only"
            else:
                owner = next(s for s in topology.SERVICES if topology.commands_topic(s) == cls.topic)
                assert handlers == [owner], command_type

    def test_a_service_subscribes_exactly_to_its_command_topic_and_what_its_handlers_consume(self) -> None:
        for name, spec in service_specs().items():
            wanted = {topology.events_topic(topology.service_of_event(t)) for t in spec.event_handlers}
            if spec.command_handlers:
                wanted.add(topology.commands_topic(name))
            if spec.applier is not None:
                wanted = set(topics.EVENT_TOPICS)
            assert set(spec.subscribes_to) == wanted, name
            assert spec.publishes_to == topology.events_topic(name)

    def test_the_loaders_wait_set_is_every_group_that_reads_an_event_topic(self) -> None:
        subs = subscriptions()
        assert subs["celltrail-manufacturing"] == {topics.ENROLLMENT_EVENTS, topics.INFUSION_EVENTS}  # a bag infused
        assert subs["celltrail-projection"] == set(topics.EVENT_TOPICS)
        assert subs["celltrail-enrollment"] == {topics.ASSESSMENT_EVENTS}  # a DLT evaluation, for the escalation

    def test_every_event_type_belongs_to_a_context(self) -> None:
        for event_type in EVENT_TYPES:
            assert event_type.startswith("common.") or topology.service_of_event(event_type) in topology.SERVICES


class TestWiringThatDisagreesIsRefusedAtBootstrap:
    async def _noop(self, conn, env, payload) -> None:
        return None

    def test_a_command_of_another_services_topic(self) -> None:
        with pytest.raises(TopologyError, match="its contract names topic 'celltrail.infusion.commands.v1'"):
            ServiceSpec(name="manufacturing", command_handlers={"RecordInfusion": self._noop})

    def test_an_event_no_contract_defines(self) -> None:
        with pytest.raises(TopologyError, match="which no contract defines"):
            ServiceSpec(name="infusion", event_handlers={"manufacturing.ProductTeleported": self._noop})

    def test_a_service_consuming_its_own_events(self) -> None:
        with pytest.raises(TopologyError, match="other contexts' events"):
            ServiceSpec(name="infusion", event_handlers={"infusion.ProductInfused": self._noop})

    def test_an_unknown_service(self) -> None:
        with pytest.raises(TopologyError, match="not one of"):
            ServiceSpec(name="pharmacy")
