"""Adapts an application handler `fn(streams, command)` to the message pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from contracts.envelope import CommandEnvelope, EventEnvelope
from infra.runtime.eventstore import EventStore
from infra.runtime.messaging import command_metadata, event_metadata
from infra.runtime.streams import PgStreams


def command_route(store: EventStore, fn: Callable[..., Awaitable[None]],
                  *extra: Callable[[asyncpg.Connection], Any]):
    async def handle(conn: asyncpg.Connection, env: CommandEnvelope, command: Any) -> None:
        await fn(PgStreams(conn, store, command_metadata(env)), *(make(conn) for make in extra), command)

    return handle


def event_route(store: EventStore, actor: str, fn: Callable[..., Awaitable[None]],
                *extra: Callable[[asyncpg.Connection], Any]):
    async def handle(conn: asyncpg.Connection, env: EventEnvelope, event: Any) -> None:
        await fn(PgStreams(conn, store, event_metadata(env, actor)), *(make(conn) for make in extra), event, env)

    return handle
