"""The options of `celltrail bench` (also `python -m infra.bench.run`), and the sizes issue 7
requires. Imports nothing heavy: the CLI builds its parser from here on every command."""

from __future__ import annotations

import argparse
import os
from typing import Any

MEASUREMENTS = ("raw", "apply", "saturation", "latency", "journey", "rebuild", "burst")

# The sizes issue 7 (item 8) requires; `celltrail bench` runs them unless told otherwise.
FULL = {"raw_messages": 50_000, "apply_events": 20_000, "saturation": 20_000, "latency_rate": 100.0,
        "latency_seconds": 30.0, "subjects": 200, "events": 1_000_000, "burst": 100_000}
# `--quick`: every measurement at sizes that take a minute or two, for trying changes.
QUICK = {"raw_messages": 10_000, "apply_events": 5_000, "saturation": 2_000, "latency_rate": 100.0,
         "latency_seconds": 10.0, "subjects": 50, "events": 50_000, "burst": 5_000}
SIZES = tuple(FULL)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`celltrail bench` and `python -m infra.bench.run` take the same options."""
    p.add_argument("--quick", action="store_true", help=f"small sizes for a quick run: {QUICK}")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(MEASUREMENTS)} (raw runs whenever "
                                  "saturation or rebuild does: it is their denominator)")
    p.add_argument("--raw-messages", type=int, help=f"messages for the raw baseline ({FULL['raw_messages']})")
    p.add_argument("--apply-events", type=int, help=f"upstream events per service ({FULL['apply_events']})")
    p.add_argument("--saturation", type=int, help=f"independent commands, as fast as possible ({FULL['saturation']})")
    p.add_argument("--latency-rate", type=float, help=f"commands per second offered ({FULL['latency_rate']:g})")
    p.add_argument("--latency-seconds", type=float, help=f"for how long ({FULL['latency_seconds']:g})")
    p.add_argument("--subjects", type=int, help=f"subjects in the dependent journeys ({FULL['subjects']})")
    p.add_argument("--events", type=int, help=f"events for the rebuild ({FULL['events']:,})")
    p.add_argument("--burst", type=int, help=f"commands at once, memory and the HTTP edge watched ({FULL['burst']:,}; "
                                             "issue 12 item 8)")
    p.add_argument("--json-out", help="also write every figure as JSON to this file (or CELLTRAIL_BENCH_JSON)")
    p.add_argument("--keep-logs", action="store_true", help="keep the service logs also after a clean run")
    p.add_argument("--poll-ms", type=float, default=5.0, help="how often visibility is polled (5)")
    p.add_argument("--step-timeout", type=float, default=60.0,
                   help="seconds a journey's command may take to become visible (60)")


def options(args: argparse.Namespace) -> dict[str, Any]:
    opts = dict(QUICK if getattr(args, "quick", False) else FULL)
    for k in SIZES:
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    for k in SIZES:
        if opts[k] <= 0:
            raise ValueError(f"--{k.replace('_', '-')} must be positive")
    only = getattr(args, "only", None)
    chosen = set(MEASUREMENTS) if not only else {m.strip() for m in only.split(",") if m.strip()}
    unknown = chosen - set(MEASUREMENTS)
    if unknown:
        raise ValueError(f"--only: unknown measurement(s) {sorted(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    if chosen & {"saturation", "rebuild"}:
        chosen.add("raw")
    opts["measurements"] = [m for m in MEASUREMENTS if m in chosen]
    opts["json_out"] = getattr(args, "json_out", None) or os.environ.get("CELLTRAIL_BENCH_JSON")
    opts["keep_logs"] = getattr(args, "keep_logs", False)
    opts["poll_ms"] = getattr(args, "poll_ms", 5.0)
    opts["step_timeout"] = getattr(args, "step_timeout", 60.0)
    return opts


def undersized(opts: dict[str, Any]) -> list[str]:
    """Where a run is smaller than the issue requires (its verdicts are then indicative)."""
    m, notes = opts["measurements"], []
    if "saturation" in m and opts["saturation"] < FULL["saturation"]:
        notes.append(f"saturation {opts['saturation']} < {FULL['saturation']} commands")
    if "latency" in m and (opts["latency_seconds"] < FULL["latency_seconds"] or
                           opts["latency_rate"] != FULL["latency_rate"]):
        notes.append(f"latency {opts['latency_rate']:g}/s for {opts['latency_seconds']:g}s, not "
                     f"{FULL['latency_rate']:g}/s for >= {FULL['latency_seconds']:g}s")
    if "burst" in m and opts["burst"] < FULL["burst"]:
        notes.append(f"burst {opts['burst']:,} < {FULL['burst']:,} commands")
    if "rebuild" in m and opts["events"] < FULL["events"]:
        notes.append(f"rebuild {opts['events']:,} < {FULL['events']:,} events")
    return notes
