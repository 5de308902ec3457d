"""Saturation: independent commands published as fast as possible.

`n` patients are registered over HTTP beforehand (set-up, not timed; the system is let
settle). Then `n` `EnrollSubject` commands, one per subject, all built before the clock
starts, are published with our producer as fast as it sends. Each causes one
`enrollment.SubjectEnrolled`, an event four consumers apply: manufacturing (its local view
of enrolled subjects), infusion and assessment (each subject's centre, for the command
guard) and the projection (the subject's read model).

Clock: first publish until every subject is visible as enrolled in the projection's
committed read model. Progress is read from the offsets each consumer stores in the
transaction of its effects (cheap to poll); the end is confirmed by reading every subject
back. **events/s** = n / that time. Target (issue 7, item 8): at least 0.25 x the raw
produce+consume rate of the same run. Also reported: when enrollment had applied every
command, and when each of the other consumers had applied every event.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka import TopicPartition

from contracts import topics
from contracts.events import SubjectEnrolled
from infra.bench.context import Run
from infra.bench.cpu import CpuUse
from infra.bench.memory import Memory
from infra.bench.observe import ends_of, log_ends, now_s
from infra.bench.report import Section, Target, fmt, rate, say
from infra.bench.topology import topology
from infra.bench.workload import command, enrolment, prepare_subjects, produce

RATIO = 0.25


async def _stored_total(conn: asyncpg.Connection, schema: str, consumer: str, topic: str) -> int:
    return await conn.fetchval(f"SELECT coalesce(sum(next_offset), 0) FROM {schema}.consumer_offsets"
                               " WHERE consumer = $1 AND topic = $2", consumer, topic)


async def _all_visible(conn: asyncpg.Connection, subjects: list[str]) -> bool:
    return await conn.fetchval("SELECT count(*) FROM projection.subject_state WHERE subject_id = ANY($1::text[])"
                               " AND phase <> 'registered'", subjects) == len(subjects)


# Where each service that applies SubjectEnrolled keeps the subjects it learnt.
LOCAL_VIEWS = {"manufacturing": "manufacturing.enrolled_subjects", "infusion": "infusion.subject_centres",
               "assessment": "assessment.subject_centres"}


async def _all_known(conn: asyncpg.Connection, service: str, subjects: list[str]) -> bool:
    return await conn.fetchval(f"SELECT count(DISTINCT subject_id) FROM {LOCAL_VIEWS[service]}"
                               " WHERE subject_id = ANY($1::text[])", subjects) == len(subjects)


async def measure(run: Run, n: int, timeout: float = 900) -> Section:
    say(f"saturation: {n} independent EnrollSubject commands, published as fast as possible")
    centre, subjects = await prepare_subjects(run, n, "SAT")
    records = [command(run, enrolment(s, centre, i))[1] for i, s in enumerate(subjects)]
    event_topic = topology().topic_of(SubjectEnrolled.event_type)
    consumers = topology().consumers_of(SubjectEnrolled.event_type)  # the projection and three services
    base = sum((await log_ends(run.bootstrap, [event_topic])).values())
    conn = await asyncpg.connect(run.database_url)
    memory, cpu = Memory(run), CpuUse(run)
    try:
        async with memory.sampling():
            cpu.start()
            t0 = now_s()
            acks = await produce(run.producer, records)
            published = now_s()
            command_ends: dict[TopicPartition, int] = ends_of(acks)
            done: dict[str, float] = {}
            while len(done) < len(consumers) + 1:
                t = now_s()
                if "enrollment" not in done:
                    rows = await conn.fetch(
                        "SELECT topic, partition, next_offset FROM enrollment.consumer_offsets"
                        " WHERE consumer = 'enrollment' AND topic = $1", topics.ENROLLMENT_COMMANDS)
                    stored = {TopicPartition(r["topic"], r["partition"]): r["next_offset"] for r in rows}
                    if all(stored.get(tp, 0) >= end for tp, end in command_ends.items()):
                        done["enrollment"] = t
                for c in consumers:
                    # every event of the run applied (a relay's duplicate could make the count
                    # arrive early, so the end is confirmed by reading the subjects back)
                    if c.name not in done and await _stored_total(conn, c.schema, c.name, event_topic) - base >= n:
                        if await (_all_visible(conn, subjects) if c.name == "projection"
                                  else _all_known(conn, c.name, subjects)):
                            done[c.name] = t
                if now_s() - t0 > timeout:
                    raise TimeoutError(f"saturation: not every enrolment was applied within {timeout:.0f}s "
                                       f"(done: {sorted(done)})")
                await asyncio.sleep(run.poll_s)
            cpu.stop(now_s() - t0)
    finally:
        await conn.close()
    seconds = done["projection"] - t0
    figures = {"commands": n, "publish_seconds": round(published - t0, 3),
               "publish_msgs_per_s": rate(n, published - t0),
               "seconds": round(seconds, 3), "events_per_s": rate(n, seconds),
               "enrollment_seconds": round(done["enrollment"] - t0, 3),
               "enrollment_commands_per_s": rate(n, done["enrollment"] - t0),
               "memory": memory.figures(), "cpu": cpu.figures(n, "command"),
               "consumers": {c.name: {"seconds": round(done[c.name] - t0, 3), "events_per_s": rate(n, done[c.name] - t0)}
                             for c in consumers}}
    baseline = run.raw.get("combined_msgs_per_s")
    targets = [Target("saturation events/s (publish -> visible in the projection)", figures["events_per_s"],
                      round(RATIO * baseline, 1), "events/s",
                      f"{RATIO} x raw produce+consume {fmt(baseline)} msg/s")] if baseline else []
    lines = [f"{n} commands published in {published - t0:.2f}s ({fmt(figures['publish_msgs_per_s'])}/s)",
             f"enrollment applied every command after {done['enrollment'] - t0:.2f}s "
             f"({fmt(figures['enrollment_commands_per_s'])} commands/s)"]
    lines += [f"{c.name} applied every SubjectEnrolled after {done[c.name] - t0:.2f}s "
              f"({fmt(rate(n, done[c.name] - t0))} events/s)" for c in consumers]
    lines += memory.lines() + cpu.lines(n, "command")
    return Section("saturation", f"Saturation: {n} independent commands -> projection", figures, lines, targets)
