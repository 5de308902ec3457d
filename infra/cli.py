"""The `celltrail` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from infra.settings import DEFAULT_HTTP_PORTS


def home() -> Path:
    return Path(os.environ.get("CELLTRAIL_HOME", ".celltrail")).resolve()


def _run_info():
    from infra.supervisor import RunInfo

    return RunInfo.load(home())


def _url(service: str) -> str:
    env = os.environ.get(f"CELLTRAIL_{service.upper()}_URL")
    if env:
        return env
    try:
        return _run_info().urls[service]
    except FileNotFoundError:
        return f"http://127.0.0.1:{DEFAULT_HTTP_PORTS[service]}"


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def cmd_up(args: argparse.Namespace) -> int:
    from infra.supervisor import System

    system = System(home())
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        info = system.start()
        print("CellTrail is up:")
        print(f"  PostgreSQL  {info.database_url}")
        print(f"  Kafka       {info.kafka_bootstrap_servers}")
        for name, url in info.urls.items():
            print(f"  {name:<15}{url}")
        print("Ctrl-C stops everything.")
        while not stopping:
            for name, proc in system.procs.items():
                if proc.poll() is not None:
                    print(f"service {name} exited with code {proc.returncode}; stopping", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("stopping ...")
        system.stop()
    return 0


def _print_results(results) -> tuple[int, int]:
    bad = 0
    for r in results:
        print(f"  {r}")
        bad += r.status in ("invalid", "timeout")
    return len(results), bad


def cmd_load(args: argparse.Namespace) -> int:
    from infra.loader import Loader, read_lines

    path = Path(args.file)
    if not path.exists():
        print(f"celltrail load: {path} does not exist", file=sys.stderr)
        return 2
    info = _run_info()
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"])
    results = asyncio.run(loader.load(read_lines(path)))
    n, bad = _print_results(results)
    refused = sum(r.status == "refused" for r in results)
    print(f"{n} lines: {n - bad - refused} accepted, {refused} refused, {bad} invalid or timed out")
    return 1 if bad else 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        view = _get(f"{_url('projection')}/subjects/{args.subject}")
    except urllib.error.HTTPError as exc:
        print(f"celltrail status: {json.loads(exc.read()).get('error')}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        print_subject(view)
    return 0


def print_subject(view: dict) -> None:
    print(f"{view['subject_id']}  programme {view['programme_id']}  centre {view['centre_id']}  phase {view['phase']}")
    for t in view["timeline"]:
        print(f"    {t['at'][:16]:<17} {t['summary']}")
    if view.get("vein_to_vein_days") is not None:
        print(f"    vein-to-vein time: {view['vein_to_vein_days']} days")


def print_report(report: list) -> None:
    for p in report:
        print(f"{p['programme_id']}: enrolled {p['enrolled']}, infused {p['infused']}, "
              f"day-28 evaluable {p['day28_evaluable']}, responders {p['day28_responders']}")
        if p["day28_orr"]:
            lo, hi = p["day28_orr"]["ci95"]
            print(f"    day-28 ORR {p['day28_orr']['estimate']:.0%} (95% CI {lo:.0%}-{hi:.0%}, Clopper-Pearson)")
        if p["vein_to_vein_days"]:
            v = p["vein_to_vein_days"]
            print(f"    vein-to-vein median {v['median']:g} days (range {v['minimum']:g}-{v['maximum']:g}, n={v['n']})")


def cmd_report(args: argparse.Namespace) -> int:
    url = f"{_url('projection')}/report"
    if args.programme:
        url += f"?programme={args.programme}"
    report = _get(url)
    print(json.dumps(report, indent=2)) if args.json else print_report(report)
    return 0


def wait_caught_up(projection_url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _get(f"{projection_url}/status").get("lag") == 0:
                return
        except urllib.error.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("projection did not catch up")


def cmd_rebuild(args: argparse.Namespace) -> int:
    url = _url("projection")
    started = time.monotonic()
    urllib.request.urlopen(urllib.request.Request(f"{url}/admin/rebuild", method="POST"), timeout=60).read()
    wait_caught_up(url)
    n = len(_get(f"{url}/subjects"))
    print(f"rebuilt {n} subject views from the start of the topics in {time.monotonic() - started:.2f}s")
    return 0


def cmd_republish(args: argparse.Namespace) -> int:
    import asyncpg

    from infra.relay import rewind
    from infra.settings import SERVICES

    if args.service not in SERVICES:
        print(f"celltrail republish: unknown service {args.service!r}; one of {SERVICES}", file=sys.stderr)
        return 2
    db = os.environ.get("DATABASE_URL") or _run_info().database_url

    async def go() -> None:
        conn = await asyncpg.connect(db)
        try:
            await rewind(conn, args.service)
        finally:
            await conn.close()

    asyncio.run(go())
    print(f"{args.service} will republish its whole history; consumers deduplicate by event id")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from infra.loader import Loader
    from infra.supervisor import System

    demo_home = Path(tempfile.mkdtemp(prefix="celltrail-demo-"))
    system = System(demo_home, fixed_ports=False)
    try:
        print("starting CellTrail (embedded PostgreSQL and broker unless DATABASE_URL / "
              "KAFKA_BOOTSTRAP_SERVERS are set) ...")
        info = system.start()
        print(f"  PostgreSQL {info.database_url}\n  Kafka      {info.kafka_bootstrap_servers}")
        scenario = resources.files("infra").joinpath("examples/demo.jsonl").read_text().splitlines()
        print("\nloading the bundled scenario (infra/examples/demo.jsonl):")
        loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"])
        results = asyncio.run(loader.load(scenario))
        _, bad = _print_results(results)
        wait_caught_up(info.urls["projection"])
        print("\nsubject states (projection):")
        for view in _get(f"{info.urls['projection']}/subjects"):
            print_subject(view)
        print("\nreport:")
        print_report(_get(f"{info.urls['projection']}/report"))
        return 1 if bad else 0
    finally:
        system.stop()


def cmd_bench(args: argparse.Namespace) -> int:
    from infra.bench import main as bench_main

    return bench_main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="celltrail", description="CellTrail: cell-therapy event backbone")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="run the whole system locally until Ctrl-C").set_defaults(fn=cmd_up)
    p = sub.add_parser("load", help="submit a JSONL file of commands (docs/load-format.md)")
    p.add_argument("file")
    p.set_defaults(fn=cmd_load)
    p = sub.add_parser("status", help="one subject's state")
    p.add_argument("subject")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("report", help="endpoint metrics per programme")
    p.add_argument("--programme")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_report)
    sub.add_parser("rebuild", help="drop the projection's read models and replay the topics").set_defaults(
        fn=cmd_rebuild)
    p = sub.add_parser("republish", help="make a service republish its whole event history")
    p.add_argument("service")
    p.set_defaults(fn=cmd_republish)
    sub.add_parser("demo", help="up, load the example scenario, print states and report").set_defaults(fn=cmd_demo)
    p = sub.add_parser("bench", help="throughput and latency against the raw broker")
    p.add_argument("--events", type=int, default=100_000, help="events for the rebuild measurement")
    p.add_argument("--subjects", type=int, default=200, help="subjects driven end to end")
    p.add_argument("--raw-messages", type=int, default=50_000)
    p.add_argument("--json-out", help="also write the results as JSON to this file")
    p.set_defaults(fn=cmd_bench)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
