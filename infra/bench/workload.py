"""What the benchmark sends: contract-valid events and commands, encoded and keyed as the
services' relays and `celltrail load` encode and key them, and the set-up every command
measurement needs (a registered centre and registered patients).

Nothing here is a copy: envelopes are built with the contracts models, stream names with
the services' own functions, event records with the relay's `encode_event`/`kafka_headers`,
command records with the loader's `command_record`, patients registered with its
`post_patient`, and subject ids drawn as enrollment draws them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from contracts import events as ev
from contracts import isbt128
from contracts.base import CommandPayload, EventPayload
from contracts.custody import CustodyState, CustodyStep, Disposition, StorageCondition, UnitKind
from contracts.commands import EnrollSubject, RegisterCentre, RegisterPatient
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.topology import service_of_event
from infra.bench.context import Run
from infra.bench.observe import now_s, settle
from infra.bench.report import say
from infra.bench.topology import topology
from infra.runtime.access.signing import MAX_BATCH
from infra.runtime.relay import encode_event, kafka_headers
from infra.tooling.loader import command_record, post_patient
from services.assessment.domain.model import assessment_stream
from services.enrollment.application.handlers import new_subject_id
from services.enrollment.domain.model import centre_stream, subject_stream
from services.infusion.domain.model import infusion_stream
from services.kernel.clinical_dates import start_of_day
from services.manufacturing.domain.model import coi_stream

ACTOR = "celltrail-bench"
BENCH_FACILITY = "BENCH-GMP"
BENCH_PROGRAMMES = ("CART-BALL-RR", "CARCIK-CD19-P2")  # two of the bundled definitions (infra/tooling/programmes)

Record = tuple[str, dict[str, Any]]  # (topic, producer.send keyword arguments)


# --- events ----------------------------------------------------------------------------
JOURNEY_LENGTH = 10  # events per synthetic journey (`journey_events`)


def journey_events(subject_id: str, centre_id: str, n: int, recorded_at: datetime) -> list[EventEnvelope]:
    """One subject's full journey as its services would have published it: `JOURNEY_LENGTH`
    events (registered, enrolled, collected, its product labelled as one unit, the unit's QC
    results judged against the specification, the release record, its certification by the
    QP's signature, the bag shipped to the centre, infused, assessed at day 28), each payload and envelope
    validated by the contracts models. Every fourth subject does not respond."""
    day0 = date(2024, 1, 1) + timedelta(days=n % 700)
    programme = BENCH_PROGRAMMES[n % len(BENCH_PROGRAMMES)]
    coi = str(isbt128.issue("B0002", 2024, n % 999_999 + 1))
    collected = datetime.combine(day0 + timedelta(days=10), dtime(9, 30), tzinfo=timezone.utc)
    released = datetime.combine(day0 + timedelta(days=30), dtime(16), tzinfo=timezone.utc)
    labelled, tested, unit = released - timedelta(days=12), released - timedelta(days=1), coi + "A0"
    infused = datetime.combine(day0 + timedelta(days=33), dtime(10), tzinfo=timezone.utc)
    assessed_on = infused.date() + timedelta(days=28)
    if n % 4 == 3:
        response = dict(marrow_blasts_percent=12.0, circulating_blasts=True, extramedullary_disease=False,
                        anc_per_ul=600, platelets_per_ul=40000, flow_mrd_percent=1.5, molecular_mrd_percent=None,
                        response_category=ev.ResponseCategory.NO_RESPONSE, mrd_status=ev.MrdStatus.POSITIVE,
                        morphologic_response=False, flow_response=True, molecular_response=None)
    else:
        response = dict(marrow_blasts_percent=2.0, circulating_blasts=False, extramedullary_disease=False,
                        anc_per_ul=1800, platelets_per_ul=120000, flow_mrd_percent=0.0, molecular_mrd_percent=0.0,
                        response_category=ev.ResponseCategory.CR, mrd_status=ev.MrdStatus.NEGATIVE,
                        morphologic_response=True, flow_response=True, molecular_response=True)
    items: list[tuple[str, int, EventPayload, datetime, str | None]] = [
        (subject_stream(subject_id), 1, ev.PatientRegistered(subject_id=subject_id, centre_id=centre_id),
         start_of_day(day0), centre_id),
        (subject_stream(subject_id), 2, ev.SubjectEnrolled(subject_id=subject_id, programme_id=programme,
                                                           centre_id=centre_id, enrolled_on=day0),
         start_of_day(day0), centre_id),
        (coi_stream(coi), 1, ev.ApheresisCollected(coi_id=coi, subject_id=subject_id, centre_id=centre_id,
                                                   collected_at=collected), collected, centre_id),
        (coi_stream(coi), 2, ev.ProductUnitsRegistered(coi_id=coi, subject_id=subject_id, facility_id=BENCH_FACILITY,
                                                       lot_number=f"LOT-{coi[8:]}", unit_ids=[unit],
                                                       location="bench suite", registered_at=labelled,
                                                       role="operator", storage=StorageCondition.CRYOPRESERVED),
         labelled, None),
        (coi_stream(coi), 3, ev.QcResultsRecorded(
            unit_id=unit, coi_id=coi, subject_id=subject_id, programme_id=programme, specification_version=1,
            results=[ev.JudgedResult(attribute="viability_percent", value=91.0, criterion=">= 70 %", passed=True),
                     ev.JudgedResult(attribute="sterility", detected=False, criterion="not detected", passed=True)],
            within_specification=True, org_id=BENCH_FACILITY, role="qc_analyst", location="bench QC lab",
            scanned_id=unit, tested_at=tested), tested, None),
        (coi_stream(coi), 4, ev.ProductReleased(coi_id=coi, subject_id=subject_id, lot_number=f"LOT-{coi[8:]}",
                                                released_at=released, released_by="QP-BENCH",
                                                viable_cells_per_ml=2.5e6, volume_ml=68.0,
                                                facility_id=BENCH_FACILITY, awaiting_signature=True), released, None),
        (coi_stream(coi), 5, ev.ReleaseCertified(
            coi_id=coi, subject_id=subject_id, facility_id=BENCH_FACILITY, release_event_id=uuid.uuid4(),
            units=[ev.CertifiedUnit(unit_id=unit)], signer="qp.bench", printed_name="QP Bench",
            signed_at=released + timedelta(minutes=5), record_hash="0" * 64), released + timedelta(minutes=5), None),
        (coi_stream(coi), 6, ev.CustodyStepRecorded(unit_id=unit, coi_id=coi, subject_id=subject_id,
                                                    unit_kind=UnitKind.PRODUCT, step=CustodyStep.SHIPPED,
                                                    from_state=CustodyState.RELEASED,
                                                    to_state=CustodyState.IN_TRANSIT, org_id=BENCH_FACILITY,
                                                    role="operator", location="bench dispatch",
                                                    at=released + timedelta(hours=1), scanned_id=unit,
                                                    destination_org_id=centre_id),
         released + timedelta(hours=1), None),
        (infusion_stream(subject_id), 1, ev.ProductInfused(subject_id=subject_id, coi_id=coi, infused_at=infused,
                                                           infusion_number=1, unit_id=unit), infused, None),
        (assessment_stream(subject_id), 1, ev.ResponseAssessed(subject_id=subject_id, assessed_on=assessed_on,
                                                               study_day=28, **response),
         start_of_day(assessed_on), None),
    ]
    return _envelopes(subject_id, recorded_at, items)


def _envelopes(subject_id: str, recorded_at: datetime,
               items: list[tuple[str, int, EventPayload, datetime, str | None]]) -> list[EventEnvelope]:
    correlation = uuid.uuid4()
    return [EventEnvelope(event_id=uuid.uuid4(), event_type=p.event_type, schema_version=p.schema_version,
                          stream_id=stream, stream_version=version, position=None, subject_id=subject_id,
                          occurred_at=occurred, recorded_at=recorded_at, correlation_id=correlation,
                          causation_id=uuid.uuid4(), actor=ACTOR, centre_id=centre,
                          payload=p.model_dump(mode="json"))
            for stream, version, p, occurred, centre in items]


def incident_events(subject_id: str, centre_id: str, n: int, recorded_at: datetime) -> list[EventEnvelope]:
    """What happens to a few journeys only, so not in `journey_events`: a temperature excursion
    of the product's unit in transit, quality assurance's acceptance of it, a correction of
    the day-28 assessment, and a dose escalation's DLT evaluation."""
    coi = str(isbt128.issue("B0003", 2024, n % 999_999 + 1))
    unit, at = coi + "A0", datetime(2024, 6, 1, 8, tzinfo=timezone.utc) + timedelta(minutes=n % 10_000)
    return _envelopes(subject_id, recorded_at, [
        (coi_stream(coi), 6, ev.ExcursionDetected(
            unit_id=unit, coi_id=coi, subject_id=subject_id, storage=StorageCondition.CRYOPRESERVED, low_celsius=None,
            high_celsius=-150.0, started_at=at, ended_at=at + timedelta(minutes=20), ongoing=False, minutes=20.0,
            peak_celsius=-131.0, deviation=19.0, logger_id="BENCH-LOGGER"), at, None),
        (coi_stream(coi), 7, ev.QaDispositionRecorded(
            unit_id=unit, coi_id=coi, subject_id=subject_id, decision=Disposition.ACCEPT,
            justification="within the stability data", org_id=BENCH_FACILITY, role="qualified_person",
            decided_at=at + timedelta(hours=2)), at + timedelta(hours=2), None),
        (assessment_stream(subject_id), 2, ev.ResponseAssessmentCorrected(
            subject_id=subject_id, assessed_on=at.date(), study_day=28, marrow_blasts_percent=2.0,
            circulating_blasts=False, extramedullary_disease=False, anc_per_ul=1800, platelets_per_ul=120000,
            flow_mrd_percent=0.0, molecular_mrd_percent=0.0, response_category=ev.ResponseCategory.CR,
            mrd_status=ev.MrdStatus.NEGATIVE, morphologic_response=True, flow_response=True, molecular_response=True,
            reason="flow cytometry re-read"), at + timedelta(days=1), None),
        (assessment_stream(subject_id), 3, ev.DltEvaluated(
            subject_id=subject_id, programme_id=BENCH_PROGRAMMES[0], dose_level=1, dlt_window_days=28,
            infused_on=at.date() - timedelta(days=28), evaluated_on=at.date()), at, None),
    ])


def event_record(run: Run, env: EventEnvelope) -> Record:
    """The event as a relay publishes it alone: to its context's topic, keyed by subject,
    signed by the service that owns the topic (infra/runtime/access/signing.py)."""
    return next(event_records(run, [env]))


def event_records(run: Run, envs: Iterable[EventEnvelope]) -> Iterator[Record]:
    """The events as relays publish them: each topic's signed a batch of `MAX_BATCH` at a
    time (one signature over the batch's Merkle root, a proof per record), in order within
    each topic."""
    pending: dict[str, list[tuple[EventEnvelope, bytes]]] = {}

    def flush(topic: str) -> Iterator[Record]:
        batch = pending.pop(topic, [])
        if not batch:
            return
        signer = run.signers[service_of_event(batch[0][0].event_type)]
        signed = signer.sign_batch(topic, [(env.key, value) for env, value in batch])
        for (env, value), headers in zip(batch, signed):
            yield topic, {"value": value, "key": env.key, "headers": kafka_headers(env) + headers}

    for env in envs:
        topic = topology().topic_of(env.event_type)
        pending.setdefault(topic, []).append((env, encode_event(env)))
        if len(pending[topic]) >= MAX_BATCH:
            yield from flush(topic)
    for topic in list(pending):
        yield from flush(topic)


def journeys(n_subjects: int, centre: str, start: int = 0) -> Iterable[EventEnvelope]:
    """Events of `n_subjects` fresh synthetic journeys, journey after journey."""
    recorded_at = datetime.now(timezone.utc)
    for n in range(start, start + n_subjects):
        yield from journey_events(new_subject_id(), centre, n, recorded_at)


def events_of_type(event_type: str, n: int, centre: str) -> list[EventEnvelope]:
    """`n` events of one type, each about a fresh subject (taken from fresh journeys)."""
    recorded_at = datetime.now(timezone.utc)
    def one(i: int) -> EventEnvelope:
        subject = new_subject_id()
        return next(e for make in (journey_events, incident_events) for e in make(subject, centre, i, recorded_at)
                    if e.event_type == event_type)
    return [one(i) for i in range(n)]


async def produce(producer: AIOKafkaProducer, records: Iterable[Record], window: int = 10_000) -> list[RecordMetadata]:
    """Send everything as fast as the client allows, at most `window` unacknowledged;
    returns the broker's acknowledgements in order."""
    acks: list[RecordMetadata] = []
    pending = []
    for topic, kwargs in records:
        pending.append(await producer.send(topic, **kwargs))
        if len(pending) >= window:
            acks += await asyncio.gather(*pending)
            pending.clear()
    acks += await asyncio.gather(*pending)
    return acks


# --- commands and their set-up ----------------------------------------------------------
def command(run: Run, payload: CommandPayload) -> tuple[CommandEnvelope, Record]:
    env, kwargs = command_record(payload, *run.credential)
    return env, (payload.topic, kwargs)


def enrolment(subject_id: str, centre_id: str, n: int) -> EnrollSubject:
    return EnrollSubject(subject_id=subject_id, programme_id=BENCH_PROGRAMMES[n % len(BENCH_PROGRAMMES)],
                         centre_id=centre_id, enrolled_on=date(2025, 1, 6) + timedelta(days=n % 300))


async def register_centre(run: Run, centre_id: str, timeout: float = 60) -> None:
    """Registers a centre through enrollment's command topic and waits until it is stored."""
    producer, database_url = run.producer, run.database_url
    _, (topic, kwargs) = command(run, RegisterCentre(centre_id=centre_id, name=f"Bench centre {centre_id}",
                                                country="IT"))
    await producer.send_and_wait(topic, **kwargs)
    conn = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await conn.fetchval("SELECT 1 FROM enrollment.events WHERE stream_id = $1",
                                      centre_stream(centre_id)):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"centre {centre_id} was not registered within {timeout:.0f}s")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def register_patients(enrollment_url: str, centres: Sequence[str], n: int, prefix: str,
                            token: Callable[[], str], concurrency: int = 16) -> list[str]:
    """`n` patients registered over enrollment's HTTP API, round robin over `centres`, with
    hospital record numbers `<prefix>-<i>` (a prefix used twice would find the same
    patients again); returns their subject ids in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        cmd = RegisterPatient(centre_id=centres[i % len(centres)], hospital_record_number=f"{prefix}-{i}",
                              family_name="Bench", given_name=f"Subject {i}", date_of_birth=date(1970, 1, 1),
                              registered_on=date(2025, 1, 6))
        async with sem:
            body = await asyncio.to_thread(post_patient, enrollment_url, cmd, token(), 60)
        return body["subject_id"]

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def prepare_subjects(run: Run, n: int, tag: str) -> tuple[str, list[str]]:
    """A fresh centre and `n` patients registered at it (set-up, never timed into a
    measurement), then a quiet system: everything relayed and applied."""
    centre = run.new_name(tag)
    await register_centre(run, centre)
    t0 = now_s()
    subjects = await register_patients(run.url("enrollment"), [centre], n, centre, run.token)
    say(f"  set-up: {n} patients registered over HTTP in {now_s() - t0:.1f}s at centre {centre}")
    await settle(run.bootstrap, run.database_url, timeout=max(300.0, n / 50))
    return centre, subjects
