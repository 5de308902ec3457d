"""Dependent journeys: every subject through five commands, each waiting for the last.

`subjects` patients are registered over HTTP (not timed). Then every subject runs
concurrently through EnrollSubject -> RecordApheresisCollection -> RecordProductRelease ->
RecordInfusion -> RecordResponseAssessment, each a CommandEnvelope on its command topic.
A subject's next command is sent only when its step is visible in the projection **and**
the service that checks the next command has applied the event (its inbox holds it:
manufacturing for SubjectEnrolled, infusion for ProductReleased, assessment for
ProductInfused, read from the services' specs), because otherwise the next command would
rightly be refused. That wait is not part of a command's latency, but is part of the
throughput: this is the throughput of interleaved *dependent* journeys, a latency-bound
workload, reported apart from the saturation rate. After the run a sample of subjects is
read back over GET /subjects/{id} and must be `assessed`; the day-28 outcome of each must
reach celltrail.outcomes.v1.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

from contracts import events as ev
from contracts import isbt128
from contracts.base import CommandPayload
from contracts.commands import (
    RecordApheresisCollection,
    RecordInfusion,
    RecordProductRelease,
    RecordResponseAssessment,
)
from infra.bench.context import Run
from infra.bench.observe import Step, StepFailed, Tracker, http_json, now_s
from infra.bench.report import Section, fmt, latency_ms, rate, say
from infra.bench.topology import EventConsumer, topology
from infra.bench.workload import command, enrolment, prepare_subjects

COMMANDS = ("EnrollSubject", "RecordApheresisCollection", "RecordProductRelease", "RecordInfusion",
            "RecordResponseAssessment")


def downstream_of(event_type: str) -> EventConsumer | None:
    return next((c for c in topology().services_applying_events if event_type in c.event_types), None)


def journey_plan(n: int, subject: str, centre: str) -> list[tuple[CommandPayload, type, str]]:
    """Subject `subject`'s (the `n`th of a run) five dependent commands, in order: each with the
    event it causes and the projection phase that shows it. Also the soak's journeys
    (infra/soak/load.py)."""
    enrol = enrolment(subject, centre, n)
    day0 = enrol.enrolled_on
    coi = str(isbt128.issue("B0001", 2026, n + 1))
    collected = datetime.combine(day0 + timedelta(days=10), dtime(9, 30), tzinfo=timezone.utc)
    released = datetime.combine(day0 + timedelta(days=30), dtime(16), tzinfo=timezone.utc)
    infused = datetime.combine(day0 + timedelta(days=33), dtime(10), tzinfo=timezone.utc)
    return [
        (enrol, ev.SubjectEnrolled, "enrolled"),
        (RecordApheresisCollection(coi_id=coi, subject_id=subject, centre_id=centre, collected_at=collected),
         ev.ApheresisCollected, "collected"),
        (RecordProductRelease(coi_id=coi, subject_id=subject, lot_number=f"LOT-{subject[2:]}",
                              released_at=released, released_by="QP-BENCH", viable_cells_per_ml=2.5e6,
                              volume_ml=68.0), ev.ProductReleased, "released"),
        (RecordInfusion(subject_id=subject, coi_id=coi, infused_at=infused), ev.ProductInfused, "infused"),
        (RecordResponseAssessment(subject_id=subject, assessed_on=infused.date() + timedelta(days=28),
                                  marrow_blasts_percent=2.0, circulating_blasts=False,
                                  extramedullary_disease=False, anc_per_ul=1800, platelets_per_ul=120000,
                                  flow_mrd_percent=0.0, molecular_mrd_percent=0.0),
         ev.ResponseAssessed, "assessed"),
    ]


class Driver:
    def __init__(self, run: Run, tracker: Tracker, timeout: float) -> None:
        self.run, self.tracker, self.timeout = run, tracker, timeout
        self.steps: list[Step] = []
        self.failures: list[str] = []

    async def issue(self, subject: str, payload: CommandPayload, expected_event: str, phase: str) -> Step:
        env, (topic, kwargs) = command(self.run, payload)
        step = self.tracker.new_step(subject, env.command_type, env.command_id, expected_event, phase,
                                     downstream_of(expected_event))
        step.t_publish = now_s()
        await self.run.producer.send_and_wait(topic, **kwargs)
        try:
            await asyncio.wait_for(step.visible, self.timeout)
            if step.ready is not None:
                await asyncio.wait_for(step.ready, self.timeout)
        except asyncio.TimeoutError:
            raise StepFailed(f"{step.command_type} for {subject}: not visible within {self.timeout:.0f}s") from None
        finally:
            self.tracker.forget(step)
        self.steps.append(step)
        return step

    async def journey(self, n: int, subject: str, centre: str) -> None:
        plan = journey_plan(n, subject, centre)
        try:
            for payload, event_cls, phase in plan:
                await self.issue(subject, payload, event_cls.event_type, phase)
        except StepFailed as exc:
            self.failures.append(str(exc))


async def measure(run: Run, n_subjects: int, step_timeout: float) -> Section:
    say(f"dependent journeys: {n_subjects} subjects x 5 commands")
    centre, subjects = await prepare_subjects(run, n_subjects, "JNY")
    tracker = Tracker(run.bootstrap, run.database_url, run.poll_s)
    await tracker.start()
    driver = Driver(run, tracker, step_timeout)
    try:
        tracker.subjects.update(subjects)
        await asyncio.gather(*(driver.journey(i, s, centre) for i, s in enumerate(subjects)))
        steps = driver.steps
        done = [s for s in steps if s.t_visible is not None]
        wall = (max(s.t_visible for s in done) - min(s.t_publish for s in steps)) if done else 0.0
        # The day-28 outcome (celltrail.outcomes.v1) of each assessed subject: wait for the stragglers.
        assessed = {s.subject: s for s in done if s.command_type == "RecordResponseAssessment"}
        deadline = now_s() + 30
        while now_s() < deadline and not assessed.keys() <= tracker.outcome_seen.keys():
            await asyncio.sleep(0.05)
        outcome_lat = [tracker.outcome_seen[k] - s.t_publish for k, s in assessed.items() if k in tracker.outcome_seen]
        # Check, outside the timed window, that the projection's HTTP API agrees.
        sample = subjects[:: max(1, len(subjects) // 20)]
        views = await asyncio.gather(*(http_json("GET", f"{run.url('projection')}/subjects/{s}", token=run.token())
                                       for s in sample))
        not_assessed = [v["subject_id"] for v in views if v["phase"] != "assessed"]
    finally:
        await tracker.stop()
    by_type: dict[str, dict[str, Any]] = {}
    for ctype in COMMANDS:
        of = [s for s in done if s.command_type == ctype]
        by_type[ctype] = {"visible_ms": latency_ms([s.t_visible - s.t_publish for s in of]),
                          "on_topic_ms": latency_ms([s.t_on_topic - s.t_publish for s in of if s.t_on_topic])}
    failures = driver.failures[:20] + [f"{s}: not assessed over HTTP" for s in not_assessed]
    failures += [f"{len(assessed) - len(outcome_lat)} day-28 outcomes did not reach the outcomes topic"] \
        if len(outcome_lat) < len(assessed) else []
    lat = latency_ms([s.t_visible - s.t_publish for s in done])
    on_topic = latency_ms([s.t_on_topic - s.t_publish for s in done if s.t_on_topic])
    outcome = latency_ms(outcome_lat)
    n_events = len(done)  # each of these commands causes exactly one event
    figures = {
        "subjects": n_subjects, "commands": len(steps), "commands_expected": 5 * n_subjects,
        "failed": len(driver.failures), "events": n_events, "outcomes": len(outcome_lat),
        "seconds": round(wall, 3), "commands_per_s": rate(len(done), wall), "events_per_s": rate(n_events, wall),
        "latency_ms": lat, "on_topic_ms": on_topic, "outcome_ms": outcome, "by_command": by_type,
        "poll_ms": run.poll_s * 1000, "polls": tracker.polls,
        "http_check": {"sampled": len(sample), "not_assessed": not_assessed},
    }
    lines = [
        f"{len(done)} of {5 * n_subjects} commands in {wall:.2f}s: {fmt(figures['events_per_s'])} events/s",
        f"publish -> visible in the projection: p50 {fmt(lat['p50'])} ms, p99 {fmt(lat['p99'])} ms",
        f"publish -> event on the topic: p50 {fmt(on_topic['p50'])} ms, p99 {fmt(on_topic['p99'])} ms",
        f"assessment -> day-28 outcome on celltrail.outcomes.v1: p50 {fmt(outcome['p50'])} ms, "
        f"p99 {fmt(outcome['p99'])} ms ({len(outcome_lat)} outcomes)",
        "per command (p50 / p99 ms to the projection): " + ", ".join(
            f"{k} {fmt(v['visible_ms']['p50'])}/{fmt(v['visible_ms']['p99'])}" for k, v in by_type.items()),
    ]
    return Section("journey", f"Dependent journeys: {n_subjects} subjects x 5 commands (no target; reported apart)",
                   figures, lines, [], failures)
