"""The raw baseline: what a bare aiokafka client gets from the same broker, in the same run.

Messages are real encoded journey envelopes (`JOURNEY_LENGTH` per subject key, our three headers), sent
with our producer (`new_producer`: acks=all, no idempotence, linger 2 ms, 256 KiB batches) to fresh topics
with the event topics' partition count:

* produce only: first send to the acknowledgement of the last;
* consume only: a fresh consumer (no group, default fetch settings) assigned to every
  partition, first `getmany` to the last message; no decoding;
* produce+consume: a consumer positioned on a second fresh topic reads while the producer
  sends, first send to last receive, in one process (as a service's consumer and relay).
  The denominator of the saturation target; consume only is the rebuild's.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from infra.bench.context import Run
from infra.bench.observe import now_s
from infra.bench.report import Section, rate, say
from infra.bench.workload import event_record, journeys, produce


async def _admin(bootstrap: str, create: list[str] = (), delete: list[str] = (), partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in create])
        if delete:
            await admin.delete_topics(list(delete))
    finally:
        await admin.close()


def messages(run: Run, n: int) -> tuple[list[dict[str, Any]], int]:
    """Producer arguments for `n` messages: 16 journeys' encoded envelopes, cycled; and the
    mean value size."""
    templates = [event_record(run, env)[1] for env in journeys(16, "BENCH-RAW")]
    size = round(sum(len(t["value"]) for t in templates) / len(templates))
    return list(itertools.islice(itertools.cycle(templates), n)), size


async def _positioned_consumer(bootstrap: str, topic: str, partitions: int) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    for tp in parts:
        await consumer.position(tp)
    return consumer


async def _consume(consumer: AIOKafkaConsumer, n: int, timeout: float) -> float:
    got, deadline = 0, now_s() + timeout
    while got < n:
        if now_s() > deadline:
            raise TimeoutError(f"raw consumer received {got} of {n} messages within {timeout:.0f}s")
        for records in (await consumer.getmany(timeout_ms=200)).values():
            got += len(records)
    return now_s()


async def measure(run: Run, n: int) -> Section:
    say(f"raw aiokafka baseline: {n} messages, {run.partitions} partitions, acks=all")
    msgs, size = messages(run, n)
    separate, concurrent = f"celltrail.bench.{run.run_id}.raw", f"celltrail.bench.{run.run_id}.raw-concurrent"
    await _admin(run.bootstrap, create=[separate, concurrent], partitions=run.partitions)
    timeout = max(120.0, n / 200)
    try:
        await run.producer.partitions_for(separate)
        await run.producer.partitions_for(concurrent)
        t0 = now_s()
        await produce(run.producer, ((separate, m) for m in msgs))
        produce_s = now_s() - t0

        consumer = await _positioned_consumer(run.bootstrap, separate, run.partitions)
        try:
            t0 = now_s()
            consume_s = await _consume(consumer, n, timeout) - t0
        finally:
            await consumer.stop()

        consumer = await _positioned_consumer(run.bootstrap, concurrent, run.partitions)
        try:
            t0 = now_s()
            reader = asyncio.create_task(_consume(consumer, n, timeout))
            await produce(run.producer, ((concurrent, m) for m in msgs))
            combined_s = await reader - t0
        finally:
            await consumer.stop()
    finally:
        try:
            await _admin(run.bootstrap, delete=[separate, concurrent])
        except Exception:  # best effort: an embedded broker is thrown away anyway
            pass
    figures = {"messages": n, "message_bytes": size, "partitions": run.partitions,
               "produce_seconds": round(produce_s, 3), "produce_msgs_per_s": rate(n, produce_s),
               "consume_seconds": round(consume_s, 3), "consume_msgs_per_s": rate(n, consume_s),
               "combined_seconds": round(combined_s, 3), "combined_msgs_per_s": rate(n, combined_s)}
    run.raw = figures
    return Section("raw", "Raw aiokafka baseline (the denominators)", figures, lines=[
        f"message size {size} bytes (mean encoded EventEnvelope), {run.partitions} partitions, acks=all",
        f"produce only       {rate(n, produce_s):>10,.1f} msg/s  ({n} in {produce_s:.2f}s)",
        f"consume only       {rate(n, consume_s):>10,.1f} msg/s  ({n} in {consume_s:.2f}s)",
        f"produce+consume    {rate(n, combined_s):>10,.1f} msg/s  ({n} first send to last receive in {combined_s:.2f}s)",
    ])
