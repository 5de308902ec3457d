"""Each service's rate of applying upstream events.

For every service with handlers for another context's events (read from its spec:
manufacturing applies enrollment.SubjectEnrolled, infusion manufacturing.ProductReleased,
assessment infusion.ProductInfused), on a quiet system: `n` contract-valid events of that
type, each about a fresh subject, built before the clock starts and produced straight to
the upstream topic as fast as our producer sends. Clock: first send until the service's
offsets, stored in the transaction of its effects, reach the acknowledged end of every
partition. **events/s** = n / that time (so it includes the produce time: a lower bound
when producing is the faster). The projection reads the same events at the same time,
as it would live; its own rate is the rebuild measurement's. Target (issue 7, item 8):
at least 5,000 events/s per service.
"""

from __future__ import annotations

import asyncpg

from infra.bench.context import Run
from infra.bench.observe import ends_of, now_s, settle, wait_applied
from infra.bench.report import Section, Target, fmt, rate, say
from infra.bench.topology import topology
from infra.bench.workload import event_record, events_of_type, produce

TARGET = 5_000.0


async def measure(run: Run, n: int, timeout: float = 600) -> Section:
    services = topology().services_applying_events
    say(f"per-service apply rate: {n} upstream events for each of {', '.join(c.name for c in services)}")
    figures, lines, targets = {}, [], []
    conn = await asyncpg.connect(run.database_url)
    try:
        for service in services:
            event_type = service.event_types[0]
            records = [event_record(e) for e in events_of_type(event_type, n, run.new_name("APL"))]
            await settle(run.bootstrap, run.database_url, timeout=max(300.0, n / 100))
            t0 = now_s()
            acks = await produce(run.producer, records)
            produced = now_s()
            done = await wait_applied(conn, [service], ends_of(acks), timeout, poll_s=max(run.poll_s, 0.01),
                                      what=f"{n} {event_type}")
            seconds = done[service.name] - t0
            figures[service.name] = {"event_type": event_type, "events": n, "seconds": round(seconds, 3),
                                     "events_per_s": rate(n, seconds), "produce_seconds": round(produced - t0, 3)}
            lines.append(f"{service.name:<14} {n} {event_type} applied in {seconds:.2f}s "
                         f"(produced in {produced - t0:.2f}s): {fmt(rate(n, seconds))} events/s")
            targets.append(Target(f"{service.name} applies {event_type} (events/s)", rate(n, seconds), TARGET,
                                  "events/s", "issue 7"))
    finally:
        await conn.close()
    return Section("apply_rate", "Per-service apply rate of upstream events", figures, lines, targets)
