"""Outcome events go through the projection's own append-only store and outbox relay to
celltrail.outcomes.v1. Their ids are derived from what they are about, so replaying the
topics (rebuild) re-derives the same ids and publishes nothing twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timezone

import asyncpg

from contracts.base import EventPayload
from contracts.envelope import EventEnvelope
from infra.runtime.eventstore import Append, EventStore, NewEvent
from infra.runtime.messaging import event_metadata, stable_id


def outcome_stream(outcome: EventPayload) -> tuple[str, str | None]:
    """The stream of an outcome and its subject: a subject's outcomes on `outcomes-<subject>`,
    a programme's (the MTD) on `outcomes-programme-<programme>`, keyed on the topic by it."""
    subject_id = getattr(outcome, "subject_id", None)
    if subject_id:
        return f"outcomes-{subject_id}", subject_id
    return f"outcomes-programme-{outcome.programme_id}", None  # type: ignore[attr-defined]


class StoredOutcomes:
    def __init__(self, conn: asyncpg.Connection, store: EventStore) -> None:
        self.conn, self.store = conn, store

    async def emit_many(self, items: Sequence[tuple[EventPayload, str, EventEnvelope]]) -> None:
        if not items:
            return
        ids = [stable_id("outcome", key) for _, key, _ in items]
        known = {r["event_id"] for r in await self.conn.fetch(
            f"SELECT event_id FROM {self.store.table} WHERE event_id = ANY($1::uuid[])", ids)}
        fresh = [(outcome, cause, event_id) for (outcome, _, cause), event_id in zip(items, ids)
                 if event_id not in known]
        if not fresh:
            return
        # Each stream's version, for all of them at once (not one load per outcome).
        versions = {r["stream_id"]: r["version"] for r in await self.conn.fetch(
            f"SELECT stream_id, max(stream_version) AS version FROM {self.store.table}"
            " WHERE stream_id = ANY($1::text[]) GROUP BY stream_id",
            list({outcome_stream(outcome)[0] for outcome, _, _ in fresh}))}
        appends: dict[str, Append] = {}
        for outcome, cause, event_id in fresh:
            if event_id in known:
                continue
            known.add(event_id)
            stream, subject_id = outcome_stream(outcome)
            event = NewEvent(outcome, occurred_at=datetime.now(timezone.utc), subject_id=subject_id,
                             event_id=event_id)
            if stream in appends:
                appends[stream] = dataclasses.replace(appends[stream], events=[*appends[stream].events, event])
            else:
                appends[stream] = Append(stream, versions.get(stream, 0), [event], event_metadata(cause, "projection"))
        await self.store.append_many(self.conn, list(appends.values()))  # one statement for the batch
