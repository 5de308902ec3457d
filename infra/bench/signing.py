"""`python -m infra.bench.signing`: what signing and verifying one event costs, per event,
on a realistic envelope (a `ProductReleased` as the relay encodes it), against the JSON
decode the consumer does anyway. Figures in docs/design.md, "Broker"."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

from aiokafka import ConsumerRecord

from contracts.envelope import EventEnvelope
from contracts.events import ProductReleased
from contracts.topology import SERVICES, events_topic
from infra.runtime.access.signing import EventVerifier, RecordSigner, generate_service_key, parse_public_keys, \
    public_key_of
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
        assert verifier.check(record, env.event_type) is None
    t2 = time.perf_counter()
    for _ in range(n):
        EventEnvelope.model_validate_json(value)
    t3 = time.perf_counter()
    print(f"{len(value)}-byte event, {n} times: sign {(t1 - t0) / n * 1e6:.1f} us, verify {(t2 - t1) / n * 1e6:.1f} us, "
          f"decode the envelope (for comparison) {(t3 - t2) / n * 1e6:.1f} us per event")


if __name__ == "__main__":
    main()
