"""`celltrail bench`: CellTrail's throughput and latency against the raw broker, in one run,
on one broker and one database, every target printed beside its figure with PASS or MISS
(docs/benchmark.md explains every number).

Measurements, in the order they run (one module each):
  raw         the bare aiokafka baseline (infra.bench.raw)
  apply       each service's rate of applying upstream events (infra.bench.apply_rate)
  saturation  independent commands as fast as possible -> projection (infra.bench.saturation)
  latency     independent commands at a fixed rate -> projection (infra.bench.latency)
  journey     dependent five-command journeys (infra.bench.journey)
  rebuild     the projection rebuilt from the event topics (infra.bench.rebuild)
  burst       commands at once: each process's memory, the HTTP edge saturated (infra.bench.burst)

Starts a System in a temporary directory (embedded PostgreSQL and Tansu unless
DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are set) and always stops it. Exit status: 0 clean
(whatever the verdicts), 1 something did not arrive or the run raised, 2 bad options,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import traceback
from datetime import datetime, timezone
from typing import Any

from infra.bench import apply_rate, burst, journey, latency, raw, rebuild, saturation
from infra.bench.context import Run
from infra.bench.observe import event_partitions
from infra.bench.options import add_arguments, options, undersized
from infra.bench.output import document, write
from infra.bench.report import Section, print_section, print_summary, say
from infra.bench.system import BenchSystem
from infra.runtime.messaging import new_producer
from infra.tooling.access import MAX_TOKEN_MINUTES, TokenSource, service_signers


async def measure_all(system, info, opts: dict[str, Any]) -> list[Section]:
    producer = new_producer(info.kafka_bootstrap_servers)  # exactly ours: acks=all, no idempotence, linger 2 ms
    await producer.start()
    try:
        run = Run(info, system, secrets.token_hex(3).upper(), await event_partitions(info.kafka_bootstrap_servers),
                  producer, opts["poll_ms"] / 1000,
                  credential=await TokenSource(system.home, info.database_url, minutes=MAX_TOKEN_MINUTES).token(),
                  signers=service_signers(system.home))
        steps = {
            "raw": lambda: raw.measure(run, opts["raw_messages"]),
            "apply": lambda: apply_rate.measure(run, opts["apply_events"]),
            "saturation": lambda: saturation.measure(run, opts["saturation"]),
            "latency": lambda: latency.measure(run, opts["latency_rate"], opts["latency_seconds"]),
            "journey": lambda: journey.measure(run, opts["subjects"], opts["step_timeout"]),
            "rebuild": lambda: rebuild.measure(run, opts["events"]),
            "burst": lambda: burst.measure(run, opts["burst"]),
        }
        sections = []
        for m in opts["measurements"]:
            sections.append(await steps[m]())
            print_section(sections[-1])
        return sections
    finally:
        await producer.stop()


def main(args: argparse.Namespace | None = None) -> int:
    try:
        opts = options(args or _parser().parse_args([]))
    except ValueError as exc:
        print(f"celltrail bench: {exc}", file=sys.stderr)
        return 2
    try:
        with BenchSystem() as bench:
            environment = {"where": bench.where, "embedded_postgres": bench.embedded_postgres,
                           "embedded_broker": bench.embedded_broker, "cpus": os.cpu_count(),
                           "python": platform.python_version(), "machine": platform.machine(),
                           "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}
            say(f"starting CellTrail ({bench.where}) ...")
            info = bench.start()
            say(f"  PostgreSQL {info.database_url}\n  Kafka      {info.kafka_bootstrap_servers}")
            sections = asyncio.run(measure_all(bench.system, info, opts))
            environment["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            small = undersized(opts)
            print_summary(sections, environment, small)
            if opts["json_out"]:
                config = {k: v for k, v in opts.items() if k != "json_out"}
                write(opts["json_out"], document({**config, "undersized": small}, environment, sections))
                say(f"results written to {opts['json_out']}")
            failed = any(s.failures for s in sections)
            bench.keep_logs = failed or opts["keep_logs"]
            return 1 if failed else 0
    except KeyboardInterrupt:
        print("\ncelltrail bench: interrupted; CellTrail stopped", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        print(f"celltrail bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.bench.run", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


if __name__ == "__main__":
    sys.exit(main(_parser().parse_args()))
