"""What must hold after the soak, judged from the stores, the inboxes and the projection.

- **nothing lost**: every command whose outcome was `accepted` caused its events (those its
  service recorded under its key) in its service's store; every accepted registration
  stored its `PatientRegistered`; every stored event was applied by every service and the
  projection reading it (their inboxes hold it); and the projection shows every subject in
  the phase its last accepted command put it in.
- **nothing twice**: no accepted command's event is stored more than once, no other envelope
  sent under a command's key (a resubmission or a deliberate duplicate) caused anything, a
  refused command caused nothing but its refusal, and no store holds two events of one type
  on one stream caused by the same message (an upstream event applied twice).
- **projection = rebuild** and **`celltrail verify`** are judged in `infra.soak.run`.

The judging functions are pure (unit-tested in tests/unit/soak); `collect` reads what
they judge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contracts import topology
from contracts.events import ChainHeadRecorded, CommandRejected
from infra.bench.topology import topology as consumers_topology
from infra.soak.load import Submission
from services.projection.domain.subject_view import PHASES

REJECTED = CommandRejected.event_type
UNCOUNTED = {ChainHeadRecorded.event_type}  # a store's own bookkeeping, caused by nothing of ours
REGISTERED = "enrollment.PatientRegistered"
SHOWN = 20  # problems listed per check


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "problems": self.problems[:SHOWN]}


@dataclass(frozen=True)
class Row:
    """One stored event, as far as the checks care."""

    store: str
    event_id: str
    event_type: str
    stream_id: str
    causation_id: str | None
    subject_id: str | None


@dataclass
class Stored:
    """What `collect` read: every event of every store, and the events some consumer has not
    applied (`(consumer, store, event type, event id)`)."""

    rows: list[Row] = field(default_factory=list)
    unapplied: list[tuple[str, str, str, str]] = field(default_factory=list)

    def events_per_store(self) -> dict[str, int]:
        counts = Counter(r.store for r in self.rows)
        return {s: counts.get(s, 0) for s in topology.SERVICES}


def caused_by(rows: Iterable[Row]) -> dict[str, Counter[tuple[str, str]]]:
    """Per causation id, the (stream, type) of every event it caused, chain heads aside."""
    out: dict[str, Counter[tuple[str, str]]] = {}
    for r in rows:
        if r.causation_id is not None and r.event_type not in UNCOUNTED:
            out.setdefault(r.causation_id, Counter())[(r.stream_id, r.event_type)] += 1
    return out


def nothing_lost(subs: Sequence[Submission], rows: Sequence[Row], unapplied: Sequence[tuple[str, str, str, str]],
                 phases: Mapping[str, str]) -> Check:
    """`phases`: each subject's phase in the projection (GET /subjects)."""
    caused = caused_by(rows)
    registered = Counter(r.subject_id for r in rows if r.event_type == REGISTERED)
    problems: list[str] = []
    accepted = [s for s in subs if s.outcome == "accepted"]
    for s in accepted:
        if s.via == "http":
            if s.command_type == "RegisterPatient" and registered.get(s.subject, 0) == 0:
                problems.append(f"{s.key}: accepted, but no {REGISTERED} of {s.subject} is stored")
            continue
        if s.original not in s.command_ids:
            problems.append(f"{s.key}: its outcome names command {s.original}, never sent under the key")
            continue
        missing = Counter(s.events) - caused.get(s.original, Counter())
        if missing:
            problems.append(f"{s.key}: accepted, but {sum(missing.values())} of its events are not stored: "
                            f"{sorted(missing)}")
    for consumer, store, event_type, event_id in unapplied:
        problems.append(f"{consumer} has not applied {event_type} {event_id} of {store}")
    expected: dict[str, str] = {}
    unsure: set[str] = {s.subject for s in subs if s.outcome is None and s.subject}
    for s in accepted:
        if s.phase and s.subject and (s.subject not in expected
                                      or PHASES.index(s.phase) > PHASES.index(expected[s.subject])):
            expected[s.subject] = s.phase
    for subject, phase in expected.items():
        shown = phases.get(subject)
        if shown is None or shown not in PHASES or PHASES.index(shown) < PHASES.index(phase):
            problems.append(f"subject {subject}: the projection shows {shown!r}, its accepted commands {phase!r}")
        elif shown != phase and subject not in unsure:
            problems.append(f"subject {subject}: the projection shows {shown!r}, beyond its accepted {phase!r}")
    n_events = sum(len(s.events) for s in accepted)
    detail = (f"{len(accepted)} accepted commands, {n_events} events they caused, {len(expected)} subjects' phases; "
              + (f"{len(problems)} problems" if problems else "all stored, applied and shown"))
    return Check("no accepted command lost", not problems, detail, problems)


def nothing_twice(subs: Sequence[Submission], rows: Sequence[Row]) -> Check:
    caused = caused_by(rows)
    problems: list[str] = []
    registered = Counter(r.subject_id for r in rows if r.event_type == REGISTERED)
    for s in subs:
        if s.via == "http":
            if s.outcome == "accepted" and registered.get(s.subject, 0) > 1:
                problems.append(f"{s.key}: {registered[s.subject]} {REGISTERED} of {s.subject}")
            continue
        if s.outcome == "accepted":
            extra = caused.get(s.original or "", Counter()) - Counter(s.events)
            if extra:
                problems.append(f"{s.key}: events beyond its outcome's: {sorted(extra)}")
        elif s.outcome == "refused":
            effects = {k: n for k, n in caused.get(s.original or "", Counter()).items() if k[1] != REJECTED}
            if effects:
                problems.append(f"{s.key}: refused ({s.reason_code}) but caused {sorted(effects)}")
        for other in s.command_ids:
            if other != s.original and other in caused:
                problems.append(f"{s.key}: its resubmission {other} caused {sorted(caused[other])}")
    for (store, causation, stream, event_type), n in sorted(doubled(rows).items()):
        problems.append(f"{store}: {n} {event_type} on {stream} caused by one message {causation}")
    sent = sum(len(s.command_ids) for s in subs)
    detail = (f"{sent} submissions of {len(subs)} commands, {len(rows)} stored events; "
              + (f"{len(problems)} applied twice" if problems else "none applied twice"))
    return Check("none applied twice", not problems, detail, problems)


def doubled(rows: Iterable[Row]) -> dict[tuple[str, str, str, str], int]:
    """(store, causation, stream, type) caused more than once: a message applied twice."""
    counts = Counter((r.store, r.causation_id, r.stream_id, r.event_type) for r in rows
                     if r.causation_id is not None and r.event_type not in UNCOUNTED)
    return {k: n for k, n in counts.items() if n > 1}


async def collect(database_url: str) -> Stored:
    """Every store's events and what each consumer has not applied, in one snapshot."""
    stored = Stored()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for store in topology.SERVICES:
                for r in await conn.fetch(f"SELECT event_id::text, event_type, stream_id, causation_id::text,"
                                          f" subject_id FROM {store}.events"):
                    stored.rows.append(Row(store, r[0], r[1], r[2], r[3], r[4]))
            for c in consumers_topology().consumers:
                stores = [s for s in topology.SERVICES if topology.events_topic(s) in c.event_topics]
                for store in stores:
                    types = list(c.event_types)
                    for r in await conn.fetch(
                            f"SELECT e.event_type, e.event_id::text FROM {store}.events e WHERE"
                            f" ($2::text[] = '{{}}' OR e.event_type = ANY($2::text[])) AND NOT EXISTS"
                            f" (SELECT 1 FROM {c.schema}.inbox i WHERE i.consumer = $1 AND i.message_id = e.event_id)",
                            c.name, types):
                        stored.unapplied.append((c.name, store, r[0], r[1]))
    finally:
        await conn.close()
    return stored
