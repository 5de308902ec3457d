"""The `Streams` port: the event store as a command handler sees it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from contracts.base import EventPayload


class Streams(Protocol):
    """The event store inside the handler's transaction, so what a handler appends commits
    or rolls back with everything else it writes.

    `load` returns a stream's events in order and its version (how many there are; 0 for a
    stream never written). `append` writes events after `expected_version`; if another
    writer appended to the stream since it was loaded, it raises
    `ConcurrencyConflictError` (infra.runtime.eventstore) and appends nothing.
    `occurred_at` is the clinical time of the events (`clinical_dates.start_of_day` for a
    fact known only by its date); `subject_id` and `centre_id` travel in their envelopes.
    """

    async def load(self, stream_id: str) -> tuple[list[EventPayload], int]: ...

    async def append(self, stream_id: str, expected_version: int, events: list[EventPayload], *,
                     occurred_at: datetime, subject_id: str | None = None,
                     centre_id: str | None = None) -> None: ...


# What a command handler loads, as a function of its command (`reads`).
ReadSet = Callable[[Any], Iterable[str]]


def reads(streams: ReadSet) -> Callable[[Callable], Callable]:
    """Declare the streams a command handler loads, so the consumer loads them for every
    command of a fetch with one query (infra/runtime/fetchwrites.py):

        @reads(lambda cmd: [subject_stream(cmd.subject_id), centre_stream(cmd.centre_id)])
        async def enroll_subject(cmd: EnrollSubject, streams: Streams) -> None: ...

    Only an optimisation: a stream not declared is loaded when the handler asks for it."""
    def mark(fn: Callable) -> Callable:
        fn.__celltrail_reads__ = streams  # type: ignore[attr-defined]
        return fn
    return mark


def declared_reads(fn: Callable | None) -> ReadSet | None:
    return getattr(fn, "__celltrail_reads__", None)
