"""Kafka plumbing shared by every service: producers, topic set-up, message metadata and
deterministic ids. Applying what arrives is `infra.runtime.consumer`'s."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts import topics
from contracts.envelope import CommandEnvelope, EventEnvelope
from infra.runtime.eventstore import Metadata


def new_producer(bootstrap_servers: str, **security: str) -> AIOKafkaProducer:
    """`security`: the broker's authentication (`Settings.kafka_security`)."""
    # acks=all and no idempotence: Tansu has no InitProducerId. Duplicates from retries are
    # absorbed by every consumer's inbox; ordering per key is kept by one in-flight batch.
    # aiokafka keeps one request in flight per broker and makes a sender wait once its
    # partition's batch is full: with the default 16 KiB (about 20 signed events) a relay
    # publishing 500 rows waited on ~25 round trips; 256 KiB takes them in one or two.
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False,
                            max_request_size=1_048_576, max_batch_size=262_144, linger_ms=2, **security)


async def ensure_topics(bootstrap_servers: str, partitions: int, **security: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, num_partitions=1 if t == topics.DEAD_LETTER else partitions, replication_factor=1)
                   for t in topics.ALL_TOPICS if t not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def command_metadata(env: CommandEnvelope) -> Metadata:
    return Metadata(correlation_id=env.correlation_id, causation_id=env.command_id, actor=env.actor)


def event_metadata(env: EventEnvelope, actor: str) -> Metadata:
    return Metadata(correlation_id=env.correlation_id, causation_id=env.event_id, actor=actor)


def stable_id(*parts: object) -> uuid.UUID:
    """A deterministic event id, so a re-derived event (e.g. after a rebuild) is recognised."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "celltrail:" + ":".join(str(p) for p in parts))
