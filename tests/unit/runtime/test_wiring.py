"""Wiring by name: a handler is routed under its message's type and gets the dependencies it
names, made per message from that message's unit of work; one that cannot be wired stops
the bootstrap, naming the handler and the parameter."""

from __future__ import annotations

import types
from datetime import date, datetime, timezone

import pytest

from contracts.commands import RecordProductRelease, RegisterCentre, RegisterPatient
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.events import SubjectEnrolled
from infra.runtime.consumer import BatchRoute
from infra.runtime.eventstore import Metadata
from infra.runtime.wiring import UnitOfWork, WiringError, handlers_in, wire
from tests.unit.services.fakes import envelope

CONN = object()  # stands in for the transaction's connection
RELEASE = RecordProductRelease(coi_id="W0001250000011", subject_id="S-0123456789AB", lot_number="LOT-1",
                               released_at=datetime(2024, 3, 24, tzinfo=timezone.utc), released_by="QP",
                               viable_cells_per_ml=2.5e6, volume_ml=50.0)
ENROLLED = SubjectEnrolled(subject_id="S-0123456789AB", programme_id="CARCIK-CD19-P2", centre_id="OSR-MILANO",
                           enrolled_on=date(2024, 3, 4))
calls: list[tuple[str, dict]] = []


async def release(cmd: RecordProductRelease, streams: UnitOfWork) -> None:
    calls.append(("release", {"cmd": cmd, "streams": streams}))


async def enrolled_last(enrolments: UnitOfWork, event: SubjectEnrolled) -> None:
    calls.append(("enrolled", {"event": event, "enrolments": enrolments}))


async def enrolled_with_env(event: SubjectEnrolled, env: EventEnvelope) -> None:
    calls.append(("env", {"env": env}))


async def enrolled_runs(events: list[SubjectEnrolled], enrolments: UnitOfWork) -> None:
    calls.append(("run", {"events": events, "enrolments": enrolments}))


async def run_with_env(events: list[SubjectEnrolled], env: EventEnvelope) -> None: ...


async def misspelt(event: SubjectEnrolled, enrolment: object) -> None: ...


async def no_message(streams: object) -> None: ...


async def two_messages(cmd: RecordProductRelease, event: SubjectEnrolled) -> None: ...


async def release_again(cmd: RecordProductRelease) -> None: ...


async def with_kwargs(cmd: RecordProductRelease, **more: object) -> None: ...


def not_async(cmd: RecordProductRelease) -> None: ...


def unit_of_work(uow: UnitOfWork) -> UnitOfWork:
    return uow


def never(uow: UnitOfWork) -> object:
    raise AssertionError("a dependency no handler names was made")


DEPENDENCIES = {"streams": unit_of_work, "enrolments": unit_of_work, "unused": never}


@pytest.fixture(autouse=True)
def fresh_calls():
    calls.clear()


def command_envelope() -> CommandEnvelope:
    return CommandEnvelope.wrap(RELEASE, actor="qp-j-smith")


def event_envelope() -> EventEnvelope:
    return envelope(ENROLLED, subject_id=ENROLLED.subject_id, occurred_at=datetime(2024, 3, 4, tzinfo=timezone.utc))


class TestRouting:
    def test_a_command_handler_is_routed_under_its_commands_type(self):
        wired = wire([release], DEPENDENCIES, actor="manufacturing")

        assert (list(wired.commands), list(wired.events)) == (["RecordProductRelease"], [])

    def test_an_event_handler_is_routed_under_its_events_type(self):
        wired = wire([enrolled_last], DEPENDENCIES, actor="manufacturing")

        assert (list(wired.commands), list(wired.events)) == ([], ["enrollment.SubjectEnrolled"])


class TestRunsOfEvents:
    def test_a_handler_of_a_list_of_events_is_routed_under_the_events_type(self):
        wired = wire([enrolled_runs], DEPENDENCIES, actor="manufacturing")

        assert isinstance(wired.events["enrollment.SubjectEnrolled"], BatchRoute)

    async def test_it_gets_the_whole_run_and_its_dependencies_once_without_an_envelope(self):
        envs = [event_envelope(), event_envelope()]

        await wire([enrolled_runs], DEPENDENCIES, actor="manufacturing").events[ENROLLED.event_type].handle(
            CONN, envs, [ENROLLED, ENROLLED])

        [(_, kwargs)] = calls
        assert kwargs["events"] == [ENROLLED, ENROLLED]
        assert (kwargs["enrolments"].conn, kwargs["enrolments"].envelope, kwargs["enrolments"].meta) == (
            CONN, None, None)

    def test_one_naming_env_is_refused_for_a_run_has_no_one_envelope(self):
        with pytest.raises(WiringError, match=r"run_with_env: a handler of a run of events has no one envelope"):
            wire([run_with_env], DEPENDENCIES, actor="manufacturing")

    def test_it_and_a_handler_of_one_such_event_are_refused_together(self):
        with pytest.raises(WiringError, match=r"enrolled_runs: enrollment.SubjectEnrolled is already handled"):
            wire([enrolled_last, enrolled_runs], DEPENDENCIES, actor="manufacturing")


class TestInjection:
    async def test_a_handler_gets_its_message_and_the_dependencies_it_names_and_nothing_else(self):
        env = command_envelope()

        await wire([release], DEPENDENCIES, actor="manufacturing").commands["RecordProductRelease"](CONN, env, RELEASE)

        [(_, kwargs)] = calls
        assert set(kwargs) == {"cmd", "streams"} and kwargs["cmd"] is RELEASE

    async def test_a_dependency_is_made_from_the_messages_connection_and_envelope(self):
        env = command_envelope()

        await wire([release], DEPENDENCIES, actor="manufacturing").commands["RecordProductRelease"](CONN, env, RELEASE)

        uow = calls[0][1]["streams"]
        assert (uow.conn, uow.envelope) == (CONN, env)

    async def test_what_a_command_appends_is_caused_by_the_command_and_signed_by_its_actor(self):
        env = command_envelope()

        await wire([release], DEPENDENCIES, actor="manufacturing").commands["RecordProductRelease"](CONN, env, RELEASE)

        assert calls[0][1]["streams"].meta == Metadata(correlation_id=env.correlation_id, causation_id=env.command_id,
                                                       actor="qp-j-smith")

    async def test_what_an_event_handler_appends_is_caused_by_the_event_and_signed_by_the_service(self):
        env = event_envelope()

        await wire([enrolled_last], DEPENDENCIES, actor="manufacturing").events[ENROLLED.event_type](
            CONN, env, ENROLLED)

        assert calls[0][1]["enrolments"].meta == Metadata(correlation_id=env.correlation_id,
                                                          causation_id=env.event_id, actor="manufacturing")

    async def test_the_message_parameter_may_stand_anywhere(self):
        await wire([enrolled_last], DEPENDENCIES, actor="manufacturing").events[ENROLLED.event_type](
            CONN, event_envelope(), ENROLLED)

        assert calls[0][1]["event"] is ENROLLED

    async def test_a_handler_naming_env_gets_the_envelope(self):
        env = event_envelope()

        await wire([enrolled_with_env], DEPENDENCIES, actor="manufacturing").events[ENROLLED.event_type](
            CONN, env, ENROLLED)

        assert calls == [("env", {"env": env})]


class TestRefusedAtBootstrap:
    def test_an_unknown_dependency_name_names_the_handler_and_the_parameter(self):
        with pytest.raises(WiringError, match=r"test_wiring\.misspelt: no dependency named 'enrolment'"):
            wire([misspelt], DEPENDENCIES, actor="manufacturing")

    def test_a_handler_without_a_message_parameter_is_refused(self):
        with pytest.raises(WiringError, match=r"no_message: needs exactly one parameter annotated"):
            wire([no_message], DEPENDENCIES, actor="manufacturing")

    def test_a_handler_of_two_messages_is_refused(self):
        with pytest.raises(WiringError, match=r"two_messages: needs exactly one .* has 2"):
            wire([two_messages], DEPENDENCIES, actor="manufacturing")

    def test_a_second_handler_for_one_message_type_is_refused(self):
        with pytest.raises(WiringError, match=r"release_again: RecordProductRelease is already handled by .*\.release$"):
            wire([release, release_again], DEPENDENCIES, actor="manufacturing")

    def test_a_handler_taking_arbitrary_keywords_is_refused(self):
        with pytest.raises(WiringError, match=r"with_kwargs: parameter 'more' is not a plain named parameter"):
            wire([with_kwargs], DEPENDENCIES, actor="manufacturing")

    def test_a_handler_that_is_not_async_is_refused(self):
        with pytest.raises(WiringError, match=r"not_async: a handler must be an async function"):
            wire([not_async], DEPENDENCIES, actor="manufacturing")


class TestHandlersOfAModule:
    def test_the_public_handlers_of_kafka_routed_messages_are_found_and_nothing_else(self):
        module = types.ModuleType("fake_handlers")

        async def on_enrolled(event: SubjectEnrolled) -> None: ...
        async def on_enrolled_runs(events: list[SubjectEnrolled]) -> None: ...
        async def register_centre(cmd: RegisterCentre) -> None: ...
        async def register_patient(cmd: RegisterPatient) -> None: ...  # HTTP only: not routed
        async def _private(event: SubjectEnrolled) -> None: ...
        def not_async(event: SubjectEnrolled) -> None: ...

        for fn in (on_enrolled, on_enrolled_runs, register_centre, register_patient, _private, not_async):
            fn.__module__ = module.__name__
            setattr(module, fn.__name__, fn)
        assert [f.__name__ for f in handlers_in(module)] == ["on_enrolled", "on_enrolled_runs", "register_centre"]
