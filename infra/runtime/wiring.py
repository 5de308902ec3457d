"""Wiring by name (as cosmicpython's `bootstrap.inject_dependencies`): a handler names the
dependencies it uses, the bootstrap says how to make each one, and `wire` joins the two
once, when the service starts.

A handler is an async function of one message and of the dependencies it names:

    async def record_collection(cmd: RecordApheresisCollection, streams: Streams,
                                enrolments: Enrolments) -> None: ...

    async def on_subject_enrolled(event: SubjectEnrolled, enrolments: Enrolments) -> None: ...

An event handler may take a whole run of events of its type instead of one, for a local
view written with one multi-row statement (`events: list[SubjectEnrolled]`): the consumer
hands it every consecutive event of that type in a fetch. Its dependencies are made once
for the run, with no envelope or metadata (it may not name `env`, and appends nothing).

The message parameter is the one annotated with a `CommandPayload` or `EventPayload`
subclass (or a list of an `EventPayload` subclass); its `command_type` or `event_type` is
what the handler is routed under. Every
other parameter is a dependency, looked up by name: its factory makes it per message from
that message's `UnitOfWork`, and only the dependencies a handler names are made. `env`, the
envelope, is always available, and so is `principal`, the principal the command guard
admitted a command for (services/kernel/acting.py). A parameter no factory provides stops `wire` with the
handler's and the parameter's names, so a typo fails the service at start, not at its first
message. Production passes PostgreSQL adapters, unit tests fakes, to the same `wire`.

What `wire` returns keeps the consumer pipeline's handler signature `(conn, envelope, payload)`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import asyncpg

from contracts.base import CommandPayload, EventPayload
from contracts.envelope import CommandEnvelope, EventEnvelope
from infra.runtime.access.principals import Principal
from infra.runtime.eventstore import Metadata
from infra.runtime.consumer import BatchRoute, CommandHandler, EventHandler
from infra.runtime.fetchwrites import FetchWrites
from services.kernel.streams import declared_reads, reads
from infra.runtime.messaging import command_metadata, event_metadata


@dataclass(frozen=True)
class UnitOfWork:
    """What one message is applied in: the connection of its transaction (with the inbox
    claim), its envelope, and the metadata every event appended for it carries (None for a
    run of events handled together)."""

    conn: asyncpg.Connection
    envelope: CommandEnvelope | EventEnvelope | None
    meta: Metadata | None
    # the fetch's reads and appends (infra/runtime/fetchwrites.py); None outside a consumer
    writes: FetchWrites | None = None
    # the principal the command guard admitted the command for (None for an event)
    principal: Principal | None = None


Factory = Callable[[UnitOfWork], object]
Handler = Callable[..., Awaitable[None]]

BUILT_IN: dict[str, Factory] = {"env": lambda uow: uow.envelope, "principal": lambda uow: uow.principal}


class WiringError(TypeError):
    """A handler that cannot be wired; raised by `wire`, at bootstrap."""


@dataclass(frozen=True)
class MessageHandlers:
    """A service's wired handlers by the command or event type they handle."""

    commands: dict[str, CommandHandler] = field(default_factory=dict)
    events: dict[str, EventHandler] = field(default_factory=dict)


def wire(handlers: Iterable[Handler], dependencies: Mapping[str, Factory], *, actor: str) -> MessageHandlers:
    """Route each handler under its message's type, injecting the dependencies it names.
    `actor` (the service) signs the events its event handlers append; a command's events are
    signed by the command's actor."""
    factories = {**BUILT_IN, **dependencies}
    handled, wired = MessageHandlers(), {}
    for fn in handlers:
        message, kind, names, batch = _inspect(fn, factories)
        if batch:
            if "env" in names:
                raise WiringError(f"{_name(fn)}: a handler of a run of events has no one envelope to name as 'env'")
            if kind.event_type in handled.events:
                raise WiringError(f"{_name(fn)}: {kind.event_type} is already handled by "
                                  f"{_name(wired[kind.event_type])}")
            wired[kind.event_type] = fn
            handled.events[kind.event_type] = _route_run(fn, message, {name: factories[name] for name in names})
            continue
        if issubclass(kind, CommandPayload):
            table, key, meta = handled.commands, kind.command_type, command_metadata
        else:
            table, key, meta = handled.events, kind.event_type, lambda env: event_metadata(env, actor)
        if key in table:
            raise WiringError(f"{_name(fn)}: {key} is already handled by {_name(wired[key])}")
        wired[key] = fn
        table[key] = _route(fn, message, {name: factories[name] for name in names}, meta)
    return handled


def handlers_in(module: types.ModuleType) -> list[Handler]:
    """The message handlers of an application module: its public async functions whose
    parameters include a message routed on Kafka (a command naming a topic, or an event).
    So adding a handler is writing it; the bootstrap lists modules, not functions. A
    function of a command that travels over HTTP only (`RegisterPatient`) is not one."""
    found = []
    for name, fn in vars(module).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(fn) or fn.__module__ != module.__name__:
            continue
        hints = typing.get_type_hints(fn)
        kinds = [_message_type(h)[0] for h in hints.values() if _message_type(h)[0] is not None]
        if any(issubclass(k, EventPayload) or getattr(k, "topic", None) for k in kinds):
            found.append(fn)
    return found


def _route(fn: Handler, message: str, factories: dict[str, Factory],
           meta: Callable[[typing.Any], Metadata]) -> Callable[..., Awaitable[None]]:
    async def handle(conn: asyncpg.Connection, env: typing.Any, payload: object,
                     writes: FetchWrites | None = None, principal: Principal | None = None) -> None:
        uow = UnitOfWork(conn, env, meta(env), writes, principal)
        await fn(**{message: payload}, **{name: make(uow) for name, make in factories.items()})

    handle.__qualname__ = f"wired({_name(fn)})"
    return reads(declared_reads(fn))(handle) if declared_reads(fn) else handle


def _route_run(fn: Handler, message: str, factories: dict[str, Factory]) -> BatchRoute:
    async def handle(conn: asyncpg.Connection, envs: typing.Any, payloads: list[object]) -> None:
        uow = UnitOfWork(conn, None, None)  # a run has no one envelope, so no metadata
        await fn(**{message: payloads}, **{name: make(uow) for name, make in factories.items()})

    handle.__qualname__ = f"wired({_name(fn)})"
    return BatchRoute(handle)


def _message_type(hint: object) -> tuple[type | None, bool]:
    """(the message type, whether a run of them) a parameter annotation names, if any."""
    if isinstance(hint, type) and issubclass(hint, (CommandPayload, EventPayload)):
        return hint, False
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and len(args) == 1 and isinstance(args[0], type) \
            and issubclass(args[0], EventPayload):
        return args[0], True
    return None, False


def _inspect(fn: Handler, factories: Mapping[str, Factory]) -> tuple[str, type, list[str], bool]:
    """(message parameter, its type, dependency names, whether it takes a run of events) of
    `fn`, or a WiringError saying why not."""
    if not inspect.iscoroutinefunction(fn):
        raise WiringError(f"{_name(fn)}: a handler must be an async function")
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise WiringError(f"{_name(fn)}: cannot resolve an annotation: {exc}") from exc
    messages, names = [], []
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name)
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise WiringError(f"{_name(fn)}: parameter {param.name!r} is not a plain named parameter")
        kind, batch = _message_type(hint)
        if kind is not None:
            messages.append((param.name, kind, batch))
        elif param.name in factories:
            names.append(param.name)
        else:
            raise WiringError(f"{_name(fn)}: no dependency named {param.name!r} "
                              f"(the bootstrap provides: {', '.join(sorted(factories))})")
    if len(messages) != 1:
        raise WiringError(f"{_name(fn)}: needs exactly one parameter annotated with a CommandPayload or "
                          f"EventPayload subclass, has {len(messages)}")
    [(message, kind, batch)] = messages
    return message, kind, names, batch


def _name(fn: Callable) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"
