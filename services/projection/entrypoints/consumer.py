"""The projection's side of the one consumer (infra/runtime/consumer.py): every event topic,
each fetch folded as one batch into the read models, in the transaction that also claims the
fetch's event ids and stores its offsets. A rebuild is one transaction (drop the read models,
the claims and the offsets) followed by seeking every partition to its start
(`Consumer.replay`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts import topics
from infra.runtime.consumer import Consumer, Message, Outcome
from infra.runtime.eventstore import EventStore
from services.projection.adapters.outcomes import StoredOutcomes
from services.projection.adapters.read_models import PgReadModels
from services.projection.application.handlers import project_batch


class ProjectionApplier:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def wants(self, topic: str, message_type: str) -> bool:
        return topic in topics.EVENT_TOPICS

    async def apply(self, conn: asyncpg.Connection, messages: Sequence[Message], outcome: Outcome) -> None:
        await project_batch(PgReadModels(conn), StoredOutcomes(conn, self.store),
                            [(m.envelope, m.payload) for m in messages])


async def rebuild(consumer: Consumer) -> int:
    """Drop the read models and replay every event topic from its start. Returns how many
    subject views were dropped. Outcome events are not re-published: their ids are derived
    from their content and the projection's event store keeps them."""
    async def drop_read_models(conn: asyncpg.Connection) -> int:
        dropped = await conn.fetchval("SELECT count(*) FROM projection.subject_state")
        await PgReadModels(conn).clear()
        return dropped

    return await consumer.replay(drop_read_models)
