"""An example downstream consumer of CellTrail's outcomes (a registry, a sponsor's dashboard).

Reads `celltrail.outcomes.v1` from the beginning with its own consumer group, decodes each
record as an `EventEnvelope` with its payload (the contracts, `contracts/`), and keeps the
latest outcome per what it is about, as docs/asyncapi.json says of each type: the day-28
response per subject, a response per subject and date, a toxicity episode per subject, kind
and onset, vein-to-vein per product, a death per subject, a relapse per subject, date and
site, and the MTD per programme (a dose escalation's, about no subject). Delivery is at least
once: an outcome can arrive twice, so keeping "the latest per key" is also what makes it
idempotent.

    python docs/examples/outcome_consumer.py --bootstrap 127.0.0.1:9092

Identities never travel on this topic: subjects are pseudonymous (`S-...`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterable

from contracts import events as ev
from contracts.envelope import EventEnvelope
from contracts.registry import parse_event
from contracts.topics import OUTCOMES


def about(outcome: ev.EventPayload) -> tuple:
    """What an outcome is about: a later outcome with the same key supersedes an earlier one."""
    if isinstance(outcome, ev.Day28ResponseDetermined):
        return ("day28", outcome.subject_id)
    if isinstance(outcome, ev.ResponseDetermined):
        return ("response", outcome.subject_id, outcome.assessed_on)
    if isinstance(outcome, ev.ToxicityEpisodeClosed):
        return ("toxicity", outcome.subject_id, outcome.kind.value, outcome.onset_day)
    if isinstance(outcome, ev.VeinToVeinTimeDetermined):
        return ("v2v", outcome.subject_id, outcome.coi_id)
    if isinstance(outcome, ev.DeathRecorded):
        return ("death", outcome.subject_id)
    if isinstance(outcome, ev.RelapseRecorded):
        return ("relapse", outcome.subject_id, outcome.relapsed_on, outcome.site)
    if isinstance(outcome, ev.MtdDetermined):
        return ("mtd", outcome.programme_id)
    return ("other", outcome.event_type)


def latest(records: Iterable[bytes]) -> dict[tuple, ev.EventPayload]:
    """The latest outcome per key, from record values in topic order (a key's records share a
    partition: the subject's, or for the MTD the programme's)."""
    kept: dict[tuple, ev.EventPayload] = {}
    for value in records:
        outcome = parse_event(EventEnvelope.model_validate(json.loads(value)))
        kept[about(outcome)] = outcome
    return kept


async def main(bootstrap: str, idle_ms: int) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(OUTCOMES, bootstrap_servers=bootstrap, group_id="example-outcome-consumer",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    values: list[bytes] = []
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms):
            values += [r.value for records in batch.values() for r in records if r.value]
        for key, outcome in sorted(latest(values).items(), key=lambda kv: str(kv[0])):
            print(*key, outcome.model_dump_json(exclude={"subject_id"}), sep="  ")
    finally:
        await consumer.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--idle-ms", type=int, default=2000, help="stop after this long without a record")
    args = parser.parse_args()
    asyncio.run(main(args.bootstrap, args.idle_ms))
