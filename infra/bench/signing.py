"""`python -m infra.bench.signing`: what signing and verifying one event costs, per event,
on a realistic envelope (a `ProductReleased` as the relay encodes it), signed alone and in
batches of `MAX_BATCH` as the relay signs them, against the JSON decode the consumer does
anyway. Figures in docs/design.md, "Broker"."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from aiokafka import ConsumerRecord

from contracts.envelope import EventEnvelope
from contracts.events import ProductReleased
from contracts.topology import SERVICES, events_topic
from infra.runtime.access.signing import (
    MAX_BATCH, EventVerifier, RecordSigner, generate_service_key, parse_public_keys, public_key_of)
from infra.runtime.relay import encode_event


def main(n: int = 20_000) -> None:
    keys = {s: generate_service_key() for s in SERVICES}
    signer = RecordSigner("manufacturing", keys["manufacturing"])
    verifier = EventVerifier(parse_public_keys(",".join(f"{s}:{public_key_of(k)}" for s, k in keys.items())))
    now = datetime.now(timezone.utc)
    payload = ProductReleased(coi_id="W0001250000011", subject_id="S-0000000000AB", lot_number="LOT-1", released_at=now,
                              released_by="QP", viable_cells_per_ml=2e6, volume_ml=50)
    env = EventEnvelope(event_id=uuid.uuid4(), event_type=payload.event_type, schema_version=1, stream_id="coi-1",
                        stream_version=2, position=7, subject_id="S-0000000000AB", occurred_at=now, recorded_at=now,
                        correlation_id=uuid.uuid4(), actor="celltrail-cli", payload=payload.model_dump(mode="json"))
    topic, value = events_topic("manufacturing"), encode_event(env)
    t0 = time.perf_counter()
    for _ in range(n):
        headers = signer.headers(topic, env.key, value)
    t1 = time.perf_counter()
    record = ConsumerRecord(topic, 0, 0, 0, 0, env.key, value, None, len(env.key), len(value), headers)
    for _ in range(n):
        verifier._nodes.clear()  # alone: every record its own signature
        assert verifier.check(record, env.event_type) is None
    t2 = time.perf_counter()
    batch = [(env.key, value)] * MAX_BATCH
    rounds = max(1, n // MAX_BATCH)
    t3 = time.perf_counter()
    for _ in range(rounds):
        signed = signer.sign_batch(topic, batch)
    t4 = time.perf_counter()
    records = [ConsumerRecord(topic, 0, 0, 0, 0, env.key, value, None, len(env.key), len(value), h) for h in signed]
    verifier.signatures_verified = 0
    t5 = time.perf_counter()
    for _ in range(rounds):
        verifier._nodes.clear()  # a fresh batch each round
        for r in records:
            assert verifier.check(r, env.event_type) is None
    t6 = time.perf_counter()
    for _ in range(n):
        EventEnvelope.model_validate_json(value)
    t7 = time.perf_counter()
    per = rounds * MAX_BATCH
    print(f"{len(value)}-byte event, {n} times. Alone: sign {(t1 - t0) / n * 1e6:.1f} us, verify "
          f"{(t2 - t1) / n * 1e6:.1f} us per event. In batches of {MAX_BATCH}: sign {(t4 - t3) / per * 1e6:.1f} us, "
          f"verify {(t6 - t5) / per * 1e6:.1f} us per event ({verifier.signatures_verified} signature checks for "
          f"{per} events). Decode the envelope (for comparison) {(t7 - t6) / n * 1e6:.1f} us per event.")

if __name__ == "__main__":
    main()
