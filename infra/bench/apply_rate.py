"""Each service's rate of applying upstream events.

For every service with handlers for another context's events, and every such event type
(read from its spec: manufacturing applies enrollment.SubjectEnrolled; infusion
enrollment.SubjectEnrolled and manufacturing.ProductReleased; assessment
enrollment.SubjectEnrolled and infusion.ProductInfused), on a quiet system: the service is
stopped (SIGTERM, a
clean shutdown), `n` contract-valid events of that type, each about a fresh subject, are
produced straight to the upstream topic, and the service is started again, so it finds a
backlog of `n` events and applies them as fast as it can. Clock: from the last moment its
stored offsets (written in the transaction of its effects, polled every 5 ms) showed none
of the backlog applied until they reach the acknowledged end of every partition (so the
group join after the restart is not counted, and the window is at most one poll too long).
**events/s** = n / that window. (Timed from the first send instead, with the service running,
the figure is the bench's producing rate whenever that is the slower.) The projection reads
the same events at the same time, as it would live; its own rate is the rebuild
measurement's. Target (issue 7, item 8): at least 5,000 events/s per service.
"""

from __future__ import annotations

import asyncio

import asyncpg

from infra.bench.context import Run
from infra.bench.observe import behind, ends_of, now_s, settle, stored_offsets
from infra.bench.report import Section, Target, fmt, rate, say
from infra.bench.topology import EventConsumer, topology
from infra.bench.workload import event_records, events_of_type, produce

TARGET = 5_000.0


async def _drain(conn: asyncpg.Connection, service: EventConsumer, ends, n: int, timeout: float) -> tuple[float, float]:
    """(the last moment nothing of the backlog was applied yet, the moment all was), polled
    every 5 ms: the window is at most one poll longer than the work."""
    t0 = untouched = now_s()
    while True:
        left = behind(await stored_offsets(conn, service), ends, service.event_topics)
        t = now_s()
        if left == n:
            untouched = t
        elif left == 0:
            return untouched, t
        if t - t0 > timeout:
            raise TimeoutError(f"{service.name} applied {n - left} of {n} events within {timeout:.0f}s")
        await asyncio.sleep(0.005)


async def measure(run: Run, n: int, timeout: float = 600) -> Section:
    services = topology().services_applying_events
    say(f"per-service apply rate: a backlog of {n} upstream events for each of "
        f"{', '.join(c.name for c in services)}")
    figures, lines, targets = {}, [], []
    conn = await asyncpg.connect(run.database_url)
    try:
        for service in services:
            for event_type in service.event_types:
                records = list(event_records(run, events_of_type(event_type, n, run.new_name("APL"))))
                await settle(run.bootstrap, run.database_url, timeout=max(300.0, n / 100))
                await asyncio.to_thread(run.system.stop_service, service.name)
                ends = ends_of(await produce(run.producer, records))
                restarted = now_s()
                await asyncio.to_thread(run.system.restart_service, service.name)
                start, done = await _drain(conn, service, ends, n, timeout)
                seconds = done - start
                figures.setdefault(service.name, {})[event_type] = {
                    "events": n, "seconds": round(seconds, 3), "events_per_s": rate(n, seconds),
                    "restart_to_start_seconds": round(start - restarted, 3)}
                lines.append(f"{service.name:<14} {n} {event_type} applied in {seconds:.2f}s: "
                             f"{fmt(rate(n, seconds))} events/s (it started on them {start - restarted:.1f}s "
                             "after its restart)")
                targets.append(Target(f"{service.name} applies {event_type} (events/s)", rate(n, seconds), TARGET,
                                      "events/s", "issue 7"))
    finally:
        await conn.close()
    return Section("apply_rate", "Per-service apply rate of upstream events (a backlog)", figures, lines, targets)
