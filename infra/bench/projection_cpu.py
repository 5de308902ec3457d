"""`python -m infra.bench.projection_cpu`: what the projection spends per event, in one
process, without the broker or PostgreSQL: the bench's synthetic journeys
(`workload.journey_events`), encoded, signed and batched as the relays publish them, then

* **decode**: each record's signature checked and its envelope and payload parsed, as the
  consumer does (`Consumer.decode`);
* **fold**: the decoded events folded into their subjects' views in fetches of
  `--fetch` records (`project_batch` against in-memory read models), each view read from
  and written to JSON once per fetch that touches it, as `PgReadModels` does;

and prints CPU microseconds per event for each part (process time, so that other work on the
machine does not count) (`--profile` adds cProfile's top
functions). The issue 7 rebuild target is 0.5 x the raw consume-only rate, about 25 us per
event for everything on this machine (docs/benchmark.md): this is how the part that is
CellTrail's own is measured before and after a change, repeatably, without a whole bench.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import time
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone

import orjson
from aiokafka import ConsumerRecord

from contracts.topology import SERVICES
from infra.bench.topology import topology
from contracts.topology import service_of_event
from infra.bench.workload import journey_events
from infra.runtime.access.signing import MAX_BATCH
from infra.runtime.relay import encode_event, kafka_headers
from infra.runtime.access.signing import EventVerifier, RecordSigner, generate_service_key, parse_public_keys, public_key_of
from infra.runtime.consumer import Consumer
from services.enrollment.application.handlers import new_subject_id
from services.projection.adapters.read_models import _dumps
from services.projection.application.handlers import project_batch
from services.projection.domain.subject_view import SubjectView
from services.projection.entrypoints.consumer import ProjectionApplier


class JsonReadModels:
    """The read models as PgReadModels keeps them: each view as JSON text, decoded on read
    and encoded on write."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.writes = 0

    async def get_many(self, subject_ids: Sequence[str]) -> dict[str, SubjectView]:
        return {s: SubjectView.from_json(orjson.loads(self.rows[s])) for s in subject_ids if s in self.rows}

    async def put_many(self, views: Sequence[SubjectView]) -> None:
        self.writes += len(views)
        for v in views:
            self.rows[v.subject_id] = _dumps(v.to_json())


class NoOutcomes:
    async def emit_many(self, items) -> None:
        pass


def records(subjects: int) -> list[ConsumerRecord]:
    keys = {s: generate_service_key() for s in SERVICES}
    signers = {s: RecordSigner(s, keys[s]) for s in SERVICES}
    recorded_at = datetime.now(timezone.utc)
    by_topic: dict[str, list] = {}
    for n in range(subjects):
        for env in journey_events(new_subject_id(), "BENCH-CTR", n, recorded_at):
            by_topic.setdefault(topology().topic_of(env.event_type), []).append(env)
    out: list[ConsumerRecord] = []
    for topic, envs in by_topic.items():
        for start in range(0, len(envs), MAX_BATCH):
            batch = envs[start:start + MAX_BATCH]
            values = [encode_event(e) for e in batch]
            signed = signers[service_of_event(batch[0].event_type)].sign_batch(
                topic, [(e.key, v) for e, v in zip(batch, values)])
            for i, (env, value, headers) in enumerate(zip(batch, values, signed)):
                out.append(ConsumerRecord(topic, 0, start + i, 0, 0, env.key, value, None, len(env.key), len(value),
                                          kafka_headers(env) + headers))
    verifier = EventVerifier(parse_public_keys(",".join(f"{s}:{public_key_of(k)}" for s, k in keys.items())))
    return out, verifier


def fetches_of(recs: list[ConsumerRecord], max_records: int, partitions: int = 3,
               partition_records: int = 1_300) -> list[list[ConsumerRecord]]:
    """The fetches a consumer of every event topic gets, as aiokafka hands them over: each
    fetch response brings up to a partition's fetch size (1 MiB, about 1,300 of these
    records) of every partition, and `getmany(max_records=...)` drains the buffered
    partitions one after another. So a subject's events on four topics come in different
    fetches, and its view is read and written once for each."""
    parts: dict[tuple[str, int], list[ConsumerRecord]] = {}
    for r in recs:
        parts.setdefault((r.topic, zlib.crc32(r.key) % partitions), []).append(r)
    fetches: list[list[ConsumerRecord]] = []
    start = 0
    while any(len(p) > start for p in parts.values()):
        current: list[ConsumerRecord] = []
        for p in parts.values():
            chunk = p[start:start + partition_records]
            while chunk:
                take = max_records - len(current)
                current += chunk[:take]
                chunk = chunk[take:]
                if len(current) == max_records:
                    fetches.append(current)
                    current = []
        if current:
            fetches.append(current)
        start += partition_records
    return fetches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", type=int, default=5000)
    p.add_argument("--fetch", type=int, default=500, help="records per fetch (CELLTRAIL_CONSUMER_MAX_RECORDS)")
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    recs, verifier = records(args.subjects)
    consumer = Consumer.__new__(Consumer)
    consumer.applier, consumer.authenticity = ProjectionApplier(None), verifier
    fetches = fetches_of(recs, args.fetch)
    # the records arrive a fetch at a time in the service: kept out of the collector's way
    # here, so that its passes cost what they cost there
    gc.collect()
    gc.freeze()
    profiler = cProfile.Profile() if args.profile else None

    async def run() -> tuple[float, float, int]:
        if profiler:
            profiler.enable()
        models, decode_s, fold_s = JsonReadModels(), 0.0, 0.0
        for f in fetches:
            t0 = time.process_time()
            decoded = [consumer.decode(r) for r in f]
            t1 = time.process_time()
            assert not any(isinstance(m, str) for m in decoded), f"a record did not decode: {decoded}"
            await project_batch(models, NoOutcomes(), [(m.envelope, m.payload) for m in decoded])
            t2 = time.process_time()
            decode_s, fold_s = decode_s + t1 - t0, fold_s + t2 - t1
        if profiler:
            profiler.disable()
        return decode_s, fold_s, models.writes

    decode_s, fold_s, writes = asyncio.run(run())
    n = len(recs)
    print(f"{n} events of {args.subjects} journeys, fetches of {args.fetch}: "
          f"decode {decode_s / n * 1e6:.1f} us/event, fold and views {fold_s / n * 1e6:.1f} us/event "
          f"({writes} view writes, {writes / n:.2f} per event); "
          f"together {(decode_s + fold_s) / n * 1e6:.1f} us/event = {n / (decode_s + fold_s):,.0f} events/s")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
