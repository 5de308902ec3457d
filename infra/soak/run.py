"""`celltrail soak`: a mixed load for a set time while a random service, the broker or
PostgreSQL is killed (SIGKILL) every few seconds, then the checks that nothing was lost,
nothing applied twice, the projection equals a rebuild and every hash chain verifies
(issue 12 item 7; docs/operations.md, "Soak").

1. Starts a whole System in a temporary home on embedded PostgreSQL and the embedded broker
   (always: both are among the targets), with a short restart backoff (`--max-backoff`: the
   soak kills ten times more often than any crash loop; the backoff policy itself is
   unit-tested), and stops and removes it at the end (its logs are kept after a failure).
2. Runs the supervisor (`System.supervise`, twice a second, as `celltrail up`) and the killer
   in threads of their own (infra/soak/chaos.py), and the load (infra/soak/load.py) for
   `--duration` seconds.
3. Then stops killing and starting new steps; the steps in flight learn their outcomes;
   waits until every component runs, every relay has published its store and every
   consumer has applied the whole log; and checks (infra/soak/checks.py), rebuilds the
   projection and compares, and runs `celltrail verify`.

Prints the counts and PASS/FAIL per check. Exit status: 0 every check passed, 1 one failed
(or the run raised), 2 bad options, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import secrets
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from contracts import topics
from infra.bench.observe import behind, http_json, log_ends, projection_lag, settle, stored_offsets
from infra.bench.report import say
from infra.bench.system import BenchSystem
from infra.bench.topology import topology
from infra.soak.chaos import Chaos, parse_targets
from infra.soak.checks import Check, collect, nothing_lost, nothing_twice
from infra.soak.load import Load
from infra.tooling.access import MAX_TOKEN_MINUTES, TokenSource
from infra.tooling.verify import verify

MIN_KILLS = 100  # the issue's


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=600, metavar="SECONDS", help="how long the load runs (600)")
    p.add_argument("--kill-every", type=float, default=5, metavar="SECONDS", help="one kill every so often (5)")
    p.add_argument("--seed", type=int, default=1, help="the killer's random choices (1)")
    p.add_argument("--targets", default="all", help="what may be killed: all, services, broker, postgres or "
                                                    "service names, comma-separated (all)")
    p.add_argument("--journeys", type=int, default=6, help="subject journeys running at once (6)")
    p.add_argument("--resubmit-after", type=float, default=20, metavar="SECONDS",
                   help="a command without an outcome this long is sent again under its key (20)")
    p.add_argument("--max-backoff", type=float, default=4, metavar="SECONDS",
                   help="the supervisor's longest wait before a restart (4; `celltrail up`: 30)")
    p.add_argument("--drain", type=float, default=420, metavar="SECONDS",
                   help="after the load, how long the commands in flight may take to learn their outcomes "
                        "(420: longer than an HTTP idempotency claim is held, 5 min)")
    p.add_argument("--min-kills", type=int, default=MIN_KILLS, help=f"fewer kills fail the run ({MIN_KILLS})")
    p.add_argument("--json-out", metavar="FILE", help="also write every figure as JSON")
    p.add_argument("--keep-logs", action="store_true", help="keep the system's home and logs after a clean run")


def main(args: argparse.Namespace) -> int:
    try:
        targets = parse_targets(args.targets)
        if args.duration <= 0 or args.kill_every <= 0 or args.journeys < 1:
            raise ValueError("--duration, --kill-every and --journeys must be positive")
    except ValueError as exc:
        print(f"celltrail soak: {exc}", file=sys.stderr)
        return 2
    # the soak's own clients of a broker it kills: their reconnection attempts are expected
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    env = {k: os.environ.pop(k) for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS") if k in os.environ}
    if env:
        say(f"celltrail soak: ignoring {', '.join(env)}: the soak kills its own embedded PostgreSQL and broker")
    try:
        with BenchSystem("soak", backoff=(min(1.0, args.max_backoff), args.max_backoff, 2 * args.max_backoff)) as bench:
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            say(f"starting CellTrail in {bench.home} (embedded PostgreSQL + embedded Tansu) ...")
            bench.start()
            chaos = Chaos(bench.system, args.kill_every, args.seed, targets, say=say)
            try:
                doc = asyncio.run(soak(bench, chaos, args))
            finally:
                chaos.stop()
            doc["environment"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                                  "machine": platform.machine(), "started": started,
                                  "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg())}
            doc["options"] = {k: v for k, v in vars(args).items() if k not in ("fn", "cmd", "json_out")}
            print_summary(doc)
            if args.json_out:
                Path(args.json_out).write_text(json.dumps(doc, indent=2, default=str) + "\n")
                say(f"results written to {args.json_out}")
            failed = not all(c["passed"] for c in doc["checks"])
            bench.keep_logs = failed or args.keep_logs
            return 1 if failed else 0
    except KeyboardInterrupt:
        print("\ncelltrail soak: interrupted; CellTrail stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - said in one line after the traceback
        traceback.print_exc()
        print(f"celltrail soak: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


async def soak(bench: BenchSystem, chaos: Chaos, args: argparse.Namespace) -> dict[str, Any]:
    system, info = bench.system, bench.system.info
    assert info is not None
    run_id = secrets.token_hex(3).upper()
    credential = await TokenSource(system.home, info.database_url, minutes=MAX_TOKEN_MINUTES).token()
    load = Load(bootstrap=info.kafka_bootstrap_servers, database_url=info.database_url, urls=dict(info.urls),
                credential=credential, run_id=run_id, journeys=args.journeys, resubmit_after=args.resubmit_after,
                say=say)
    await load.start()
    say(f"soak {run_id}: {args.journeys} journeys at once for {args.duration:g}s, a kill every {args.kill_every:g}s "
        f"among {', '.join(chaos.targets)} (seed {args.seed})")
    t0 = time.monotonic()
    chaos.t0 = t0
    chaos.start()
    progress = asyncio.create_task(_progress(load, chaos, t0))
    try:
        running = asyncio.create_task(load.run(args.duration, args.drain))
        await asyncio.sleep(args.duration)
        chaos.stop_killing()
        say(f"  [{time.monotonic() - t0:7.1f}s] load and kills stop; the commands in flight learn their outcomes ...")
        await running
        load_seconds = time.monotonic() - t0
        restarts_during = dict(system.restarts)
        say(f"  [{time.monotonic() - t0:7.1f}s] waiting for every component to run and the log to be applied ...")
        settle_s = await settle_all(chaos, info, timeout=600)
    finally:
        progress.cancel()
        await load.close()
    token = credential[1]
    projection = info.urls["projection"]
    views_before = await http_json("GET", f"{projection}/subjects", token=token, timeout=60)
    report_before = await http_json("GET", f"{projection}/report", token=token, timeout=60)
    stored = await collect(info.database_url)
    phases = {v["subject_id"]: v["phase"] for v in views_before}
    checks: list[Check] = [nothing_lost(load.submissions, stored.rows, stored.unapplied, phases),
                           nothing_twice(load.submissions, stored.rows)]
    checks.append(await rebuild_equals(info, token, views_before, report_before))
    report = await verify(info.database_url, info.kafka_bootstrap_servers)
    checks.append(Check("celltrail verify", report.intact and report.published_checked,
                        "; ".join(report.lines()[-2:]), [ln for ln in report.lines() if "BROKEN" in ln]))
    kills = len(chaos.kills)
    checks.append(Check(f"at least {args.min_kills} kills", kills >= args.min_kills, f"{kills} kills"))
    unprovoked = {k: n - restarts_during.get(k, 0) for k, n in system.restarts.items()
                  if n - restarts_during.get(k, 0)}
    return {
        "run_id": run_id, "seconds": {"load": round(args.duration, 1), "load_and_drain": round(load_seconds, 1),
                                      "settle": round(settle_s, 1), "total": round(time.monotonic() - t0, 1)},
        "load": load.figures(),
        "kills": {"total": kills, "by_target": chaos.kills_by_target, "every_s": args.kill_every,
                  "list": [[k.at, k.target] for k in chaos.kills]},
        "restarts": {"by_component": dict(sorted(system.restarts.items())), "total": sum(system.restarts.values()),
                     "after_the_kills": unprovoked, "supervise_errors": chaos.supervise_errors},
        "events_per_store": stored.events_per_store(), "events": len(stored.rows),
        "subject_views": len(views_before),
        "checks": [c.to_json() for c in checks],
    }


async def _progress(load: Load, chaos: Chaos, t0: float) -> None:
    while True:
        await asyncio.sleep(30)
        f = load.figures()
        say(f"  [{time.monotonic() - t0:7.1f}s] {len(chaos.kills)} kills, {sum(chaos.system.restarts.values())} "
            f"restarts; {f['commands']} commands: {f['accepted']} accepted, {f['refused']} refused, "
            f"{f['resubmissions']} resubmissions; {f['journeys_completed']} journeys completed")


async def settle_all(chaos: Chaos, info, timeout: float) -> float:
    """Until every component runs (for three looks in a row), answers /health, and the whole
    log is published and applied. Returns the seconds it took."""
    t0 = time.monotonic()
    steady = 0
    while steady < 3:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"the system did not come back within {timeout:.0f}s")
        steady = steady + 1 if chaos.all_alive() and await _healthy(info.urls) else 0
        await asyncio.sleep(1)
    while True:
        try:
            await settle(info.kafka_bootstrap_servers, info.database_url, timeout=max(60.0, timeout - (time.monotonic() - t0)))
            break
        except Exception as exc:  # noqa: BLE001 - a consumer still joining its group, the broker's metadata
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"the log was not applied within {timeout:.0f}s: {exc}") from None
            await asyncio.sleep(1)
    return time.monotonic() - t0


async def _healthy(urls: dict[str, str]) -> bool:
    for url in urls.values():
        try:
            await http_json("GET", f"{url}/health", token="", timeout=5)
        except Exception:  # noqa: BLE001 - not yet
            return False
    return True


async def rebuild_equals(info, token: str, views: Any, report: Any, timeout: float = 600) -> Check:
    """POST /admin/rebuild; once the projection's stored offsets reach the true end of every
    event partition, its read models must equal what it built incrementally."""
    import asyncpg

    projection = info.urls["projection"]
    t0 = time.monotonic()
    await http_json("POST", f"{projection}/admin/rebuild", token=token, timeout=120)
    ends = await log_ends(info.kafka_bootstrap_servers, topics.EVENT_TOPICS)
    conn = await asyncpg.connect(info.database_url)
    try:
        while behind(await stored_offsets(conn, topology().consumer("projection")), ends) > 0:
            if time.monotonic() - t0 > timeout:
                return Check("projection equals a rebuild", False, f"the rebuild did not finish within {timeout:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    views_after = report_after = None
    while time.monotonic() - t0 < timeout:  # a batch or so later than the offsets say, as the e2e test polls
        if await projection_lag(projection, token) == 0:
            views_after = await http_json("GET", f"{projection}/subjects", token=token, timeout=60)
            report_after = await http_json("GET", f"{projection}/report", token=token, timeout=60)
            if views_after == views and report_after == report:
                return Check("projection equals a rebuild", True,
                             f"{len(views)} subject views and the report identical after a rebuild from "
                             f"{sum(ends.values())} records ({time.monotonic() - t0:.1f}s)")
        await asyncio.sleep(0.5)
    views_after = views_after or []
    differ = sorted({v["subject_id"] for v in views} ^ {v["subject_id"] for v in views_after}
                    | {v["subject_id"] for v in views if v not in views_after})
    return Check("projection equals a rebuild", False,
                 f"{len(views)} views before, {len(views_after)} after {timeout:.0f}s; {len(differ)} differ; "
                 f"report {'identical' if report_after == report else 'differs'}", differ)


def print_summary(doc: dict[str, Any]) -> None:
    f, k, r = doc["load"], doc["kills"], doc["restarts"]
    say("")
    say(f"=== soak {doc['run_id']}: {doc['seconds']['load']:g}s of load ({doc['seconds']['load_and_drain']:g}s with "
        f"the drain), settled in {doc['seconds']['settle']:g}s, {doc['seconds']['total']:g}s in all ===")
    say(f"commands sent    {f['commands']} ({f['sends']} submissions): {f['accepted']} accepted, {f['refused']} refused"
        + (f" {f['refused_by_code']}" if f['refused_by_code'] else "") + f", {f['unknown']} without an outcome")
    say(f"resubmissions    {f['resubmissions']} (of {f['resubmitted_commands']} commands), "
        f"{f['deliberate_duplicates']} deliberate duplicates; slowest outcome {f['outcome_seconds_max']}s")
    say(f"journeys         {f['journeys_completed']} completed of {f['journeys_started']} started "
        f"({f['subjects']} subjects registered)")
    say("by command       " + ", ".join(f"{t} {n}" for t, n in f["by_command"].items()))
    say(f"kills            {k['total']}: " + ", ".join(f"{t} {n}" for t, n in k["by_target"].items()))
    say(f"restarts         {r['total']}: " + ", ".join(f"{t} {n}" for t, n in r["by_component"].items())
        + (f"; after the kills stopped: {r['after_the_kills']}" if r["after_the_kills"] else ""))
    say("failures seen    " + (", ".join(f"{t} {n}" for t, n in f["failures"].items()) or "none"))
    say("events per store " + ", ".join(f"{s} {n}" for s, n in doc["events_per_store"].items())
        + f" ({doc['events']} in all; {doc['subject_views']} subject views)")
    for c in doc["checks"]:
        say(f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}")
        for p in c["problems"][:20]:
            say(f"        {p}")
    say("soak: " + ("PASS" if all(c["passed"] for c in doc["checks"]) else "FAIL"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.soak.run", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return p


if __name__ == "__main__":
    sys.exit(main(_parser().parse_args()))
