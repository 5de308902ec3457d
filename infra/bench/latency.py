"""Latency at a fixed offered load: independent commands at a steady rate.

`rate x seconds` patients are registered over HTTP beforehand (set-up, not timed; the
system is let settle). Then one `EnrollSubject` per subject is published on a fixed
schedule (command i at t0 + i / rate), open loop: the next is sent on time whatever the
previous is doing. Latency of a command = from just before its send until the projection's
committed read model shows the subject enrolled (polled every `--poll-ms`, one query for
every subject in flight). Target (issue 7, item 8): p99 <= 150 ms at 100 commands/s for
at least 30 s. Also reported: command -> its event on the topic (seen by the bench's own
consumer, up to its 20 ms fetch wait late), and how far the sends lagged the schedule.
"""

from __future__ import annotations

import asyncio
import time

from contracts.events import SubjectEnrolled
from infra.bench.context import Run
from infra.bench.observe import StepFailed, Tracker, now_s
from infra.bench.report import Section, Target, fmt, latency_ms, rate, say
from infra.bench.workload import command, enrolment, prepare_subjects

P99_MS = 150.0


async def measure(run: Run, per_second: float, seconds: float, timeout: float = 60) -> Section:
    n = max(1, round(per_second * seconds))
    say(f"fixed-rate latency: {n} independent EnrollSubject commands at {per_second:g}/s")
    centre, subjects = await prepare_subjects(run, n, "LAT")
    planned = [command(run, enrolment(s, centre, i)) for i, s in enumerate(subjects)]
    tracker = Tracker(run.bootstrap, run.database_url, run.poll_s)
    await tracker.start()
    steps, acks, late = [], [], []
    try:
        t0 = now_s()
        for i, ((env, (topic, kwargs)), subject) in enumerate(zip(planned, subjects)):
            due = t0 + i / per_second
            if due > now_s():
                await asyncio.sleep(due - now_s())
            step = tracker.new_step(subject, env.command_type, env.command_id, SubjectEnrolled.event_type,
                                    "enrolled", None)
            step.t_publish, step.wall_publish = now_s(), time.time()
            late.append(step.t_publish - due)
            acks.append(await run.producer.send(topic, **kwargs))
            steps.append(step)
        last_send = now_s()
        await asyncio.gather(*acks)
        failures = []
        for step in steps:
            try:
                await asyncio.wait_for(step.visible, max(0.1, step.t_publish + timeout - now_s()))
            except asyncio.TimeoutError:
                failures.append(f"{step.subject}: not visible within {timeout:.0f}s")
            except StepFailed as exc:
                failures.append(str(exc))
            finally:
                tracker.forget(step)
        await asyncio.sleep(0.1)  # the watcher may see an event after the projection showed it
    finally:
        await tracker.stop()
    done = [s for s in steps if s.t_visible is not None]
    lat = latency_ms([s.t_visible - s.t_publish for s in done])
    on_topic = latency_ms([s.t_on_topic - s.t_publish for s in done if s.t_on_topic])
    # Where the time goes: the service's append (recorded_at, its clock), the relay's send
    # (the record's timestamp, milliseconds), the bench's consumer, the projection.
    stored = latency_ms([s.stored_after for s in done if s.stored_after is not None])
    relayed = latency_ms([s.relayed_after for s in done if s.relayed_after is not None])
    offered = rate(len(steps) - 1, last_send - t0) if len(steps) > 1 else 0.0
    figures = {"commands": n, "rate_per_s": per_second, "seconds": round(last_send - t0, 3),
               "offered_per_s": offered, "latency_ms": lat, "on_topic_ms": on_topic,
               "stored_ms": stored, "relayed_ms": relayed, "send_late_ms": latency_ms(late), "poll_ms": run.poll_s * 1000, "polls": tracker.polls}
    targets = [Target(f"fixed-rate p99 at {per_second:g} commands/s (publish -> visible)", lat["p99"], P99_MS, "ms",
                      "issue 7", at_most=True)]
    lines = [f"{n} commands over {last_send - t0:.1f}s (offered {fmt(offered)}/s; sends late by p99 "
             f"{fmt(figures['send_late_ms']['p99'])} ms)",
             f"publish -> visible in the projection: p50 {fmt(lat['p50'])} ms, p90 {fmt(lat['p90'])} ms, "
             f"p99 {fmt(lat['p99'])} ms, max {fmt(lat['max'])} ms",
             "on the way (p50 / p99 ms from publish): appended by enrollment "
             f"{fmt(stored['p50'])} / {fmt(stored['p99'])}, sent by its relay {fmt(relayed['p50'])} / "
             f"{fmt(relayed['p99'])}, seen on the topic {fmt(on_topic['p50'])} / {fmt(on_topic['p99'])}, "
             f"visible in the projection {fmt(lat['p50'])} / {fmt(lat['p99'])}"]
    return Section("latency", f"Latency at a fixed {per_second:g} commands/s", figures, lines, targets, failures)
