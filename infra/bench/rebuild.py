"""Projection rebuild from the event topics.

The event topics are topped up to at least `events` events with full synthetic journeys
(`workload.journey_events`: `JOURNEY_LENGTH` contract-valid envelopes per subject), produced straight to
the topics, keyed by subject, as the relays would publish them: a replayed log. Nothing is
written into any service's store. The live consumers (the projection and every service
reading another's events) apply them as they arrive; the bench waits until all of them
have reached the end of the log, so the rebuild runs on a quiet system.

Then `POST /admin/rebuild` (one transaction drops the read models, the projection's inbox
and its stored offsets; the consumer rejoins and replays from the start) and the clock runs
until the projection's stored offsets reach the true end of every event partition.
**events/s** = every event on the event topics / that time. Target (issue 7, item 8): at
least 0.5 x the raw consume-only rate of the same run. The rebuild re-derives the outcome
events too; their ids are stable, so nothing is published twice.
"""

from __future__ import annotations

import asyncio
import math

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from infra.bench.context import Run
from infra.bench.cpu import CpuUse
from infra.bench.observe import behind, http_json, log_ends, now_s, projection_lag, settle, stored_offsets
from infra.bench.report import Section, Target, fmt, rate, say
from infra.bench.topology import topology
from infra.bench.workload import JOURNEY_LENGTH, event_records, journeys, produce

RATIO = 0.5


async def _count(bootstrap: str, ends: dict[TopicPartition, int]) -> int:
    """Records on the partitions (a retained log may have been trimmed at its start)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        begins = await consumer.beginning_offsets(list(ends))
    finally:
        await consumer.stop()
    return sum(end - begins[tp] for tp, end in ends.items())


async def top_up(run: Run, min_events: int) -> tuple[int, float]:
    existing = await _count(run.bootstrap, await log_ends(run.bootstrap, topics.EVENT_TOPICS))
    n_subjects = math.ceil(max(0, min_events - existing) / JOURNEY_LENGTH)
    if not n_subjects:
        return 0, 0.0
    say(f"  {existing} events on the event topics; producing {n_subjects} synthetic journeys "
        f"({n_subjects * JOURNEY_LENGTH} events) ...")
    t0, sent, chunk = now_s(), 0, 5_000
    centre = run.new_name("SYN")
    for start in range(0, n_subjects, chunk):
        size = min(chunk, n_subjects - start)
        sent += len(await produce(run.producer, event_records(run, journeys(size, centre, start))))
        if (start // chunk) % 10 == 9:
            say(f"    {sent} events produced ...")
    return sent, now_s() - t0


async def measure(run: Run, min_events: int, timeout: float | None = None) -> Section:
    say(f"projection rebuild: at least {min_events} events")
    generated, gen_s = await top_up(run, min_events)
    say(f"  produced {generated} events in {gen_s:.1f}s; waiting for the live consumers to apply them ...")
    settle_s = await settle(run.bootstrap, run.database_url, timeout=max(600.0, min_events / 100))
    ends = await log_ends(run.bootstrap, topics.EVENT_TOPICS)
    total = await _count(run.bootstrap, ends)
    projection = topology().consumer("projection")
    timeout = timeout or max(300.0, total / 100)
    conn = await asyncpg.connect(run.database_url)
    try:
        say(f"  settled after {settle_s:.1f}s; rebuilding the projection from {total} events ...")
        cpu = CpuUse(run)
        cpu.start()
        t0 = now_s()
        await http_json("POST", f"{run.url('projection')}/admin/rebuild", token=run.token(), timeout=120)
        status_zero: float | None = None
        while True:
            if status_zero is None and await projection_lag(run.url("projection"), run.token()) == 0:
                status_zero = now_s() - t0
            if behind(await stored_offsets(conn, projection), ends) == 0:
                break
            if now_s() - t0 > timeout:
                raise TimeoutError(f"rebuild did not finish within {timeout:.0f}s")
            await asyncio.sleep(0.05)
        seconds = now_s() - t0
        cpu.stop(seconds)
        views = await conn.fetchval("SELECT count(*) FROM projection.subject_state")
    finally:
        await conn.close()
    figures = {"events": total, "generated": generated, "generate_seconds": round(gen_s, 3),
               "generate_events_per_s": rate(generated, gen_s), "settle_seconds": round(settle_s, 3),
               "seconds": round(seconds, 3), "events_per_s": rate(total, seconds),
               "status_lag0_seconds": None if status_zero is None else round(status_zero, 3),
               "subject_views": views, "cpu": cpu.figures(total, "event")}
    baseline = run.raw.get("consume_msgs_per_s")
    targets = [Target("rebuild events/s", figures["events_per_s"], round(RATIO * baseline, 1), "events/s",
                      f"{RATIO} x raw consume-only {fmt(baseline)} msg/s")] if baseline else []
    lines = [f"{total} events replayed in {seconds:.2f}s: {fmt(figures['events_per_s'])} events/s "
             f"({views} subject views)",
             f"set-up: {generated} events generated at {fmt(figures['generate_events_per_s'])}/s, "
             f"applied live within {settle_s:.1f}s",
             f"GET /status first said lag 0 after {fmt(status_zero, 2)}s (Tansu under-reports the end of a log)",
             *cpu.lines(total, "event")]
    return Section("rebuild", f"Projection rebuild from {total} events", figures, lines, targets)
