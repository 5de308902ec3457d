"""The `celltrail` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from aiokafka.errors import KafkaError

from infra.tooling import access as access_commands


class CliError(Exception):
    """Said in one line, exit status 1 (or `status`), never a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def home() -> Path:
    from infra.tooling.supervisor import default_home

    return default_home()


def _run_info():
    from infra.tooling.supervisor import NotRunningError, RunInfo

    try:
        return RunInfo.load(home())
    except NotRunningError as exc:
        raise CliError(str(exc)) from None


def _url(service: str) -> str:
    return os.environ.get(f"CELLTRAIL_{service.upper()}_URL") or _run_info().urls[service]


_tokens: access_commands.TokenSource | None = None


def token() -> str:
    """The bearer token each call sends: the CLI principal's, minted from the home's signing
    key (`infra.tooling.access.TokenSource`, kept until shortly before it expires)."""
    import asyncpg

    global _tokens
    if os.environ.get("CELLTRAIL_TOKEN"):  # one's own token, e.g. against docker-compose
        return os.environ["CELLTRAIL_TOKEN"].strip()
    if _tokens is None:
        _tokens = access_commands.TokenSource(home(), _database_url())
    try:
        return access_commands.cli_token(_tokens)
    except access_commands.AccessCliError as exc:
        raise CliError(str(exc)) from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise CliError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?") from None


def _request(req: urllib.request.Request | str, timeout: float = 10, *,
             bearer: Callable[[], str] | None = None) -> object:
    """The JSON a service answers, called with the CLI's credential (`bearer()`, by default
    `token()` of the home)."""
    if isinstance(req, str):
        req = urllib.request.Request(req)
    url = req.full_url
    for name, value in access_commands.bearer((bearer or token)()).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error")
        except (ValueError, AttributeError):
            detail = None
        raise CliError(detail or f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"CellTrail is not answering at {url} ({reason}); is `celltrail up` still running? "
                       f"Start it with `celltrail up`") from None


def _get(url: str, bearer: Callable[[], str] | None = None) -> object:
    return _request(url, bearer=bearer)


def cmd_up(args: argparse.Namespace) -> int:
    from infra.tooling.embedded import EmbeddedStartError
    from infra.tooling.supervisor import AlreadyRunningError, HomeLock, System

    lock = HomeLock(home())
    try:
        lock.acquire()
    except AlreadyRunningError as exc:
        raise CliError(str(exc)) from None
    system = System(home())
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            info = system.start()
        except (EmbeddedStartError, RuntimeError, OSError) as exc:
            raise CliError(f"could not start: {exc} (logs in {system.log_dir})") from None
        print(f"CellTrail is up (home {system.home}; every `celltrail` command finds it from any directory):")
        print(f"  PostgreSQL  {info.database_url}")
        print(f"  Kafka       {info.kafka_bootstrap_servers}")
        for name, url in info.urls.items():
            print(f"  {name:<15}{url}")
        print("Ctrl-C stops everything.")
        while not stopping:  # issue 12 item 2: what dies is said and restarted, the rest keeps running
            for line in system.supervise():
                print(line, file=sys.stderr, flush=True)
            time.sleep(0.5)
    finally:
        print("stopping ...")
        system.stop()
        lock.release()
    return 0


def _print_results(results) -> tuple[int, int]:
    bad = 0
    for r in results:
        print(f"  {r}")
        bad += r.status in ("invalid", "timeout")
    return len(results), bad


def cmd_load(args: argparse.Namespace) -> int:
    from infra.tooling.access import AccessCliError, TokenSource
    from infra.tooling.loader import LoadFileError, Loader, read_lines

    try:
        lines = read_lines(Path(args.file))
    except LoadFileError as exc:
        raise CliError(str(exc), status=2) from None
    info = _run_info()
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"],
                    TokenSource(home(), info.database_url), service_urls=info.urls)
    try:
        results = asyncio.run(loader.load(lines, Path(args.file)))
    except urllib.error.URLError as exc:
        raise CliError(f"CellTrail's enrollment service is not answering at {info.urls['enrollment']} "
                       f"({exc.reason}); is `celltrail up` still running?") from None
    except (OSError, KafkaError) as exc:
        raise CliError(f"CellTrail's broker at {info.kafka_bootstrap_servers} is not reachable ({exc}); "
                       f"is `celltrail up` still running?") from None
    except AccessCliError as exc:
        raise CliError(f"no credential to load with: {exc}") from None
    n, bad = _print_results(results)
    refused = sum(r.status == "refused" for r in results)
    duplicates = sum(r.status == "duplicate" for r in results)  # loaded before: nothing changed
    print(f"{n} lines: {n - bad - refused - duplicates} accepted, {refused} refused, "
          f"{duplicates} duplicates of lines loaded before, {bad} invalid or timed out")
    return 1 if bad else 0


def cmd_status(args: argparse.Namespace) -> int:
    view = _get(f"{_url('projection')}/subjects/{urllib.parse.quote(args.subject, safe='')}")
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        print_subject(view)
    return 0


def print_subject(view: dict) -> None:
    print(f"{view['subject_id']}  programme {view['programme_id']}  centre {view['centre_id']}  phase {view['phase']}")
    for t in view["timeline"]:  # as the site's clock read it (issue 11 item 5)
        print(f"    {(t.get('local') or t.get('on') or t['at'])[:16].replace('T', ' '):<17} {t['summary']}")
        for s in t.get("signatures", ()):  # 21 CFR 11.50(b): shown with the signed record
            print(f"    {'':<17}   signed: {s['printed_name']}, {s['signed_at']}, {s['meaning']}")
    if view.get("vein_to_vein_days") is not None:
        print(f"    vein-to-vein time: {view['vein_to_vein_days']} days")


def print_report(report: list) -> None:
    for p in report:
        print(f"{p['programme_id']}: enrolled {p['enrolled']}, infused {p['infused']}, "
              f"day-28 evaluable {p['day28_evaluable']}, responders {p['day28_responders']}")
        if p["day28_orr"]:
            lo, hi = p["day28_orr"]["ci95"]
            reading = f" by {p['day28_reading'].replace('_', ' ')}" if p.get("day28_reading") else ""
            print(f"    day-28 ORR{reading} {p['day28_orr']['estimate']:.0%} (95% CI {lo:.0%}-{hi:.0%}, "
                  "Clopper-Pearson)")
        _print_response(p.get("response"))
        if p["vein_to_vein_days"]:
            v = p["vein_to_vein_days"]
            print(f"    vein-to-vein median {v['median']:g} days (range {v['minimum']:g}-{v['maximum']:g}, n={v['n']})")
        for leg, v in (p.get("legs_days") or {}).items():
            if v:
                print(f"    {leg.replace('_', ' ')} median {v['median']:g} days "
                      f"(range {v['minimum']:g}-{v['maximum']:g}, n={v['n']})")
        f = p.get("feasibility")
        if f and f["first_enrolled_on"]:
            print(f"    enrolment {f['first_enrolled_on']} to {f['last_enrolled_on']} ({f['enrolment_span_days']} days): "
                  f"{f['enrolled']} enrolled, {f['treated']} treated")
        oos, tasks = p.get("out_of_specification_infusions"), p.get("open_sponsor_notifications")
        if oos and oos["infusions"]:
            print(f"    infusions of units released out of specification: {oos['infusions']} ({oos['n']} subjects)")
        if tasks and tasks["notifications"]:
            print(f"    sponsor notifications still open: {tasks['notifications']} ({tasks['n']} subjects)")
        _print_course(p)


def _print_response(r: dict | None) -> None:
    """The programme's response as its protocol defines it (issue 11 item 3)."""
    if not r:
        return
    window = f"within {r['within_days']} days" if r["within_days"] else "over the follow-up"
    line = f"    best response ({r['responder'].replace('_', ' ')}, {r['criteria']}) {window}: "
    if r["n"]:
        lo, hi = r["ci95"]
        line += f"{_of(r['responders'], r['n'])} (95% CI {lo:.0%}-{hi:.0%})"
    else:
        line += "none evaluable"
    best = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in r["best"].items() if n)
    print(line + (f"; best: {best}" if best else "")
          + (f"; {r['left_out']['n']} left out: {r['left_out']['why']}" if r["left_out"]["n"] else ""))
    if r.get("log_reduction") and r["log_reduction"]["n"]:
        print(f"    BCR::ABL1 log reduction from baseline: {_median_range(r['log_reduction'], 'log')}")


def _median_range(figure: dict | None, unit: str) -> str:
    """`median M unit (range a-b), n=N`, and who was left out and why, as a paper reads."""
    if not figure or figure.get("median") is None:
        return "not known" + (f" ({figure['left_out']['n']} left out: {figure['left_out']['why']})"
                              if figure and figure.get("left_out", {}).get("n") else "")
    text = f"median {figure['median']:.3g} {unit} (range {figure['minimum']:.3g}-{figure['maximum']:.3g}"
    text += f", n={figure['n']})" if "n" in figure else ")"
    left = figure.get("left_out") or {}
    return text + (f"; {left['n']} left out: {left['why']}" if left.get("n") else "")


def _of(k: int, n: int) -> str:
    return f"{k}/{n} ({k / n:.0%})" if n else f"{k}/0"


def _print_course(p: dict) -> None:
    """Issue 11: the dose escalation, CRS and ICANS, the course after infusion and survival."""
    for reading, r in (p.get("day28_by_reading") or {}).items():
        if r["n"]:
            lo, hi = r["ci95"]
            print(f"    day-28 response by {reading.replace('_', ' ')}: {_of(r['responders'], r['n'])} "
                  f"(95% CI {lo:.0%}-{hi:.0%})")
            b = r.get("from_baseline")
            if b and b["n"]:
                lo, hi = b["ci95"]
                print(f"      of those with disease by it at baseline: {_of(b['responders'], b['n'])} "
                      f"(95% CI {lo:.0%}-{hi:.0%})")
    for level in p.get("escalation") or []:
        print(f"    dose level {level['level']}: {level['enrolled']} enrolled, {level['dlts']} DLT in "
              f"{level['evaluable']} evaluable; by the programme's DLT definition "
              f"{level.get('dlts_by_definition', 0)}, evaluated against it {level.get('evaluated_against_definition', 0)}")
    for kind in ("crs", "icans"):
        t = p.get(kind)
        if not t or not t["n"]:
            continue
        grades = ", ".join(f"grade {g}: {n}" for g, n in t["by_max_grade"].items()) or "none"
        print(f"    {kind.upper()} {_of(t[f'with_{kind}'], t['n'])} ({grades}); onset "
              f"{_median_range(t['onset_day'], 'day')}; duration {_median_range(t['duration_days'], 'days')}")
    c = p.get("course")
    if c and c["n"]:
        for name, unit in (("neutropenia_days", "days"), ("b_cell_aplasia_months", "months"),
                           ("hospital_stay_days", "days"), ("enrolment_to_apheresis_days", "days"),
                           ("car_t_peak_per_ul", "cells/uL"), ("car_t_peak_day", "day"),
                           ("car_t_last_detectable_day", "day"), ("follow_up_months", "months")):
            label = name.rsplit("_", 1)[0].replace("_", " ") if not name.startswith("car_t") else \
                name.replace("car_t", "CAR-T").replace("_per_ul", "").replace("_", " ")
            print(f"    {label}: {_median_range(c[name], unit)}")
        print(f"    alive at the last contact {_of(c['alive_at_last_contact'], c['n'])}, in MRD-negative remission "
              f"at the last assessment {_of(c['alive_in_mrd_negative_remission_at_last_assessment'], c['n'])}, "
              f"deaths {c['deaths']}")
    lupus = p.get("lupus")
    if lupus:
        for name in ("sledai_2k_baseline", "sledai_2k_latest", "sledai_2k_change"):
            print(f"    {name.replace('_', ' ').replace('sledai 2k', 'SLEDAI-2K')}: {_median_range(lupus[name], 'points')}")
        for name in ("doris_remission", "drug_free_remission"):
            print(f"    {name.replace('_', ' ')} (DORIS) at the latest assessment: "
                  f"{_of(lupus[name]['subjects'], lupus[name]['n'])}")
    ae = p.get("adverse_events")
    if ae and ae["by_term"]:
        print(f"    adverse events (CTCAE v5): grade 3 or more in {_of(ae['grade_3_or_more'], ae['n'])}")
        for term, t in ae["by_term"].items():
            grades = ", ".join(f"grade {g}: {n}" for g, n in t["by_worst_grade"].items())
            print(f"      {term}: {_of(t['subjects'], ae['n'])} ({grades}; serious {t['serious']})")
    s = p.get("survival")
    for name, km in (s or {}).items():
        if name == "conf_type" or not km["n"]:
            continue
        lo, hi = km["ci95_months"]
        median = "not reached" if km["median_months"] is None else f"{km['median_months']:.1f} months"
        interval = f"{'NR' if lo is None else f'{lo:.1f}'}-{'NR' if hi is None else f'{hi:.1f}'}"
        print(f"    {name.replace('_', ' ')}: median {median} (95% CI {interval}, {s['conf_type']}), "
              f"{km['events']} events in {km['n']}")


def cmd_report(args: argparse.Namespace) -> int:
    url = f"{_url('projection')}/report"
    query = {k: v for k, v in (("programme", args.programme), ("ci", args.ci)) if v}
    if query:
        url += "?" + urllib.parse.urlencode(query)
    report = _get(url)
    print(json.dumps(report, indent=2)) if args.json else print_report(report)
    if args.plots:
        from infra.tooling.plots import write_plots

        for path in write_plots(Path(args.plots), report, _get(f"{_url('projection')}/subjects")):
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def wait_caught_up(projection_url: str, bearer: Callable[[], str] | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _get(f"{projection_url}/status", bearer).get("lag") == 0:
                return
        except CliError:
            pass
        time.sleep(0.1)
    raise TimeoutError("projection did not catch up")


def cmd_rebuild(args: argparse.Namespace) -> int:
    url = _url("projection")
    started = time.monotonic()
    _request(urllib.request.Request(f"{url}/admin/rebuild", method="POST"), timeout=60)
    wait_caught_up(url)
    n = len(_get(f"{url}/subjects"))
    print(f"rebuilt {n} subject views from the start of the topics in {time.monotonic() - started:.2f}s")
    return 0


def cmd_republish(args: argparse.Namespace) -> int:
    from infra.runtime.settings import SERVICES

    if args.service not in SERVICES:
        raise CliError(f"unknown service {args.service!r}; one of {', '.join(SERVICES)}", status=2)
    _request(urllib.request.Request(f"{_url(args.service)}/admin/republish", method="POST"))
    print(f"{args.service} will republish its whole history; consumers deduplicate by event id")
    return 0


def _database_url() -> str:
    return os.environ.get("DATABASE_URL") or _run_info().database_url


def cmd_verify(args: argparse.Namespace) -> int:
    import asyncpg

    from infra.tooling.verify import verify

    db = _database_url()
    broker = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if broker is None:
        try:
            broker = _run_info().kafka_bootstrap_servers
        except CliError:
            broker = None  # the report says the published heads were not checked, and why
    try:
        report = asyncio.run(verify(db, broker))
    except (OSError, asyncpg.PostgresError) as exc:
        raise CliError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?") from None
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.intact else 1


def _token_public_key() -> str:
    """The key tokens are checked with: CELLTRAIL_TOKEN_PUBLIC_KEY, else the public half of
    the home's signing key (`celltrail up` made it)."""
    from infra.runtime.access.tokens import TokenKeyError, public_key_pem

    if os.environ.get("CELLTRAIL_TOKEN_PUBLIC_KEY"):
        return os.environ["CELLTRAIL_TOKEN_PUBLIC_KEY"]
    try:
        return public_key_pem(access_commands.read_token_key(home()))
    except (access_commands.AccessCliError, TokenKeyError) as exc:
        raise CliError(f"cannot check tokens: {exc}") from None


def _coi_argument(text: str) -> str:
    """A COI as typed or scanned (contracts/isbt128.py): compact or with the label's spaces,
    refused with the reason if its check character does not match. One recorded before
    COIs were checked (free text, e.g. `COI-BG-0001`) is taken as written."""
    from contracts import isbt128

    compact = text.replace(" ", "").upper()
    if len(compact) == 14 and compact[0].isalpha() and compact[1:13].isdigit():
        try:
            return isbt128.normalise(compact)
        except isbt128.IdentifierError as exc:
            raise CliError(f"--coi {exc}") from None
    return text


def cmd_audit(args: argparse.Namespace) -> int:
    import asyncpg

    from infra.tooling.audit import AuditRefused, read

    token = args.token or os.environ.get("CELLTRAIL_TOKEN")
    coi = _coi_argument(args.coi) if args.coi is not None else None
    db = _database_url()
    try:
        result = asyncio.run(read(db, token=token, public_key_pem=_token_public_key(),
                                  subject=args.subject, coi=coi))
    except AuditRefused as exc:
        raise CliError(str(exc)) from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise CliError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?") from None
    print(json.dumps(result.to_json(), indent=2)) if args.json else print("\n".join(result.lines()))
    return 0


def _broker() -> str:
    """The broker's address: KAFKA_BOOTSTRAP_SERVERS, else the running system's. The Kafka
    client's own log lines are kept quiet: the command says in one line what went wrong."""
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _run_info().kafka_bootstrap_servers


def _broker_unreachable(broker: str, exc: BaseException) -> CliError:
    detail = str(exc) or type(exc).__name__
    return CliError(f"CellTrail's broker at {broker} is not reachable ({detail}); is `celltrail up` still running?")


def cmd_deadletters_list(args: argparse.Namespace) -> int:
    """Every dead letter with its reason, source, consumer and time, and whether it was
    replayed (infra/tooling/deadletters.py)."""
    from infra.tooling import deadletters

    try:
        since = deadletters.parse_since(args.since) if args.since else None
    except deadletters.DeadLetterError as exc:
        raise CliError(str(exc), exc.status) from None
    broker = _broker()
    try:
        letters = deadletters.select(asyncio.run(deadletters.read(broker)), source=args.source, since=since)
    except (OSError, KafkaError, asyncio.TimeoutError) as exc:
        raise _broker_unreachable(broker, exc) from None
    if args.json:
        print(json.dumps([d.to_json() for d in letters], indent=2))
    else:
        print("\n".join(deadletters.lines(letters)))
    return 0


def cmd_deadletters_replay(args: argparse.Namespace) -> int:
    """Send chosen dead letters back to their source topic after a fix; an administrator's
    action, each replay recorded (infra/tooling/deadletters.py)."""
    import asyncpg

    from infra.tooling import deadletters

    if bool(args.ids) == bool(args.all):
        raise CliError("name the dead letters to replay (ids from `celltrail deadletters list`) or --all", status=2)
    if args.source and not args.all:
        raise CliError("--source chooses with --all; ids name their dead letters already", status=2)
    try:
        for i in args.ids:
            deadletters.parse_id(i)
    except deadletters.DeadLetterError as exc:
        raise CliError(str(exc), exc.status) from None
    broker, db = _broker(), _database_url()
    given = args.token or os.environ.get("CELLTRAIL_TOKEN")
    try:
        who, outcomes = asyncio.run(deadletters.replay(
            broker, db, token=given.strip() if given else token(), public_key_pem=_token_public_key(),
            ids=args.ids, all_=args.all, source=args.source, again=args.again))
    except deadletters.DeadLetterError as exc:
        raise CliError(str(exc), exc.status) from None
    except (OSError, KafkaError, asyncio.TimeoutError) as exc:
        raise _broker_unreachable(broker, exc) from None
    except asyncpg.PostgresError as exc:
        raise CliError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?") from None
    if not outcomes:
        print("nothing to replay: every dead letter" + (f" of {args.source}" if args.source else "")
              + " has been replayed")
        return 0
    for outcome in outcomes:
        print(outcome.line())
    sent = sum(o.status == "replayed" for o in outcomes)
    print(f"{sent} replayed as {who.principal_id}; consumers apply each once (a message already applied "
          f"changes nothing)")
    return 1 if any(o.status == "refused" for o in outcomes) else 0


def cmd_identities_erase(args: argparse.Namespace) -> int:
    url = f"{_url('enrollment')}/patients/{urllib.parse.quote(args.subject, safe='')}/erasure"
    req = urllib.request.Request(url, data=json.dumps({"reason": args.reason}).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    body = _request(req)
    print(f"erased the identity of {body['subject_id']} at {body['erased_at']}; its events are kept"
          f" under the pseudonym (enrollment.IdentityErased recorded)")
    return 0


def cmd_coi_issue(args: argparse.Namespace) -> int:
    """A chain-of-identity id for the subject's apheresis bag (docs/identifiers.md), issued by
    the manufacturing service under the FIN of the subject's centre."""
    req = urllib.request.Request(f"{_url('manufacturing')}/cois", data=json.dumps({"subject_id": args.subject}).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    body = _request(req)
    if args.json:
        print(json.dumps(body, indent=2))
    else:
        print(f"COI {body['label']} ({body['coi_id']}) issued for {body['subject_id']} at {body['centre_id']}:"
              " print it on the apheresis bag's label")
    return 0


def cmd_readings_load(args: argparse.Namespace) -> int:
    """A temperature logger's file for units in a shipment or storage location
    (infra/tooling/readings.py): every excursion is recorded and quarantines its unit."""
    from infra.tooling.readings import ReadingsFileError, read

    try:
        readings = read(Path(args.file))
    except ReadingsFileError as exc:
        raise CliError(str(exc)) from None
    body = {"unit_ids": args.unit, "logger_id": args.logger, "org_id": args.org, "location": args.location,
            "readings": readings}
    req = urllib.request.Request(f"{_url('manufacturing')}/temperature-readings", data=json.dumps(body).encode(),
                                 method="POST", headers={"content-type": "application/json"})
    answer = _request(req, timeout=60)
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{answer['readings']} readings loaded for {', '.join(answer['units'])}")
    for x in answer["excursions"]:
        print(f"  EXCURSION {x['unit_id']}: {x['started_at']} to {x['ended_at']}{' (ongoing)' if x['ongoing'] else ''}"
              f", {x['minutes']:g} min, peak {x['peak_celsius']:g} C, {x['deviation']:g} C beyond the limit")
    if answer["quarantined"]:
        print(f"quarantined until quality assurance decides: {', '.join(answer['quarantined'])}")
    return 0


def cmd_programmes_publish(args: argparse.Namespace) -> int:
    """Publish programme definitions (infra/tooling/programmes.py): each file its programme's
    next version, refused with the reason when the contract or the clinical rules refuse it."""
    from pydantic import ValidationError

    from infra.tooling import programmes
    from infra.tooling.access import TokenSource
    from infra.tooling.loader import Loader

    definitions = []
    for name in args.files:
        try:
            definitions.append(programmes.read(Path(name)))
        except FileNotFoundError:
            raise CliError(f"{name}: no such file", status=2) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "the file"
            raise CliError(f"{name}: {where}: {first['msg']}", status=2) from None
    info = _run_info()
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"],
                    TokenSource(home(), info.database_url), service_urls=info.urls)
    results = asyncio.run(programmes.publish(loader, definitions))
    for d, r in zip(definitions, results):
        print(f"{d.programme_id}: {r.status}" + (f" ({r.detail})" if r.status != "accepted" else ""))
    return 0 if all(r.succeeded for r in results) else 1


def cmd_programmes_list(args: argparse.Namespace) -> int:
    """The bundled definitions (infra/tooling/programmes/), one per seed."""
    from infra.tooling import programmes

    for d in programmes.bundled():
        print(f"{d.programme_id}: {d.title} ({d.product_kind.value}; {d.source})")
    return 0


def cmd_identities_encrypt(args: argparse.Namespace) -> int:
    """One-off, for identity rows stored before migration 0005 (plaintext) or under an older key
    of the ring: seal them under the current key. Needs the key the services use."""
    import asyncpg

    from infra.tooling.supervisor import identity_key
    from services.enrollment.adapters.identities import PgIdentities
    from services.enrollment.adapters.identity_crypto import IdentityKeyError, IdentityUnreadable, Keyring

    db = _database_url()
    try:
        # Never a new key here: rows sealed under a key the services lack would be lost.
        keyring = Keyring.parse(identity_key(home(), create=False))
    except IdentityKeyError as exc:
        raise CliError(f"{exc} (or keep it in {home() / 'identity.key'}, as `celltrail up` does)") from None

    async def go():
        conn = await asyncpg.connect(db)
        try:
            async with conn.transaction():
                return await PgIdentities(conn, keyring).encrypt_all()
        finally:
            await conn.close()

    try:
        report = asyncio.run(go())
    except IdentityUnreadable as exc:
        raise CliError(f"{exc}; is CELLTRAIL_IDENTITY_KEY the services' keyring, older keys included?") from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise CliError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?") from None
    print(f"{report.encrypted} plaintext identities encrypted, {report.rewrapped} moved to key "
          f"{keyring.current.key_id}; every identity is now under it")
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    import asyncpg

    from infra.tooling import access

    try:
        access.run(args, database_url=_database_url(), home=home())
    except access.AccessCliError as exc:
        raise CliError(str(exc)) from None
    except (OSError, asyncpg.PostgresError) as exc:
        raise CliError(f"CellTrail's database is not reachable ({exc}); is `celltrail up` still running?") from None
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from infra.tooling.embedded import EmbeddedStartError
    from infra.tooling.loader import Loader
    from infra.tooling.supervisor import System

    demo_home = Path(tempfile.mkdtemp(prefix="celltrail-demo-"))
    system = System(demo_home, fixed_ports=False, ephemeral=True)
    ok = False
    try:
        print("starting CellTrail (embedded PostgreSQL and broker unless DATABASE_URL / "
              "KAFKA_BOOTSTRAP_SERVERS are set) ...")
        info = system.start()
        print(f"  PostgreSQL {info.database_url}\n  Kafka      {info.kafka_bootstrap_servers}")
        scenario = resources.files("infra.tooling").joinpath("examples/demo.jsonl").read_text().splitlines()
        print("\nloading the bundled scenario (infra/tooling/examples/demo.jsonl):")
        loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"],
                        system.tokens(), service_urls=info.urls)
        results = asyncio.run(loader.load(scenario))
        _, bad = _print_results(results)
        wait_caught_up(info.urls["projection"], system.token)
        print("\nsubject states (projection; the CLI reads as a network operator, so identifiers removed):")
        for view in _get(f"{info.urls['projection']}/subjects", system.token):
            print_subject(view)
        print("\nreport:")
        print_report(_get(f"{info.urls['projection']}/report", system.token))
        show_demo_administrator(system)
        ok = not bad
        if bad:
            print(f"\n{bad} line(s) of the scenario failed; logs kept in {system.log_dir}", file=sys.stderr)
        return 0 if ok else 1
    except (EmbeddedStartError, RuntimeError, TimeoutError, OSError, KafkaError, CliError) as exc:
        # (AccessCliError is a RuntimeError)
        raise CliError(f"the demo failed: {exc}; logs kept in {system.log_dir}") from None
    finally:
        system.stop()
        if ok:
            shutil.rmtree(demo_home, ignore_errors=True)


def show_demo_administrator(system) -> None:
    """Issue 8 item 9: the demo makes an administrator, a person, signs it in as any person
    signs in, and shows the token at work."""
    password, issued = asyncio.run(access_commands.demo_administrator(system.info.database_url, system.home))
    who = access_commands.DEMO_ADMIN
    projection = system.info.urls["projection"]
    whoami = _get(f"{projection}/whoami", lambda: issued.token)
    try:
        with urllib.request.urlopen(f"{projection}/whoami", timeout=10) as r:
            anonymous = r.status
    except urllib.error.HTTPError as exc:
        anonymous = exc.code
    roles = ", ".join(f"{m['role']}@{m['org']}" for m in whoami["memberships"])
    print(f"\ndemo administrator: {who} ({whoami['printed_name']}, a person; {roles}), password {password}")
    print("  every endpoint but /health needs a credential (docs/design.md, Access). A token, as anyone gets one:")
    print(f"    echo '{password}' | CELLTRAIL_HOME={system.home} celltrail access token {who}")
    print("  and used:")
    print(f'    curl -H "Authorization: Bearer $TOKEN" {projection}/subjects')
    print(f"  tried now: GET {projection}/whoami with a token of {who} answers "
          f"{whoami['principal_id']}; without one, {anonymous}.\n  This system stops with the demo: against "
          f"`celltrail up`, make your own principal with `celltrail access` (README, \"Who may call what\").")


def cmd_bench(args: argparse.Namespace) -> int:
    from infra.bench.run import main as bench_main

    return bench_main(args)


def cmd_soak(args: argparse.Namespace) -> int:
    from infra.soak.run import main as soak_main

    return soak_main(args)


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
    p.add_argument("--ci", choices=("log-log", "log", "plain"),
                   help="the interval survival medians are read from (log: R's default; default log-log)")
    p.add_argument("--plots", metavar="DIR", help="also write Kaplan-Meier curves and a swimmer plot as SVG into DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_report)
    sub.add_parser("rebuild", help="drop the projection's read models and replay the topics").set_defaults(
        fn=cmd_rebuild)
    p = sub.add_parser("republish", help="make a service republish its whole event history")
    p.add_argument("service")
    p.set_defaults(fn=cmd_republish)
    p = sub.add_parser("verify", help="recompute every store's hash chain; exit 1 at any broken link")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("audit", help="who did what, when, in which role and why, for a subject or a COI "
                                     "(refusals, corrections and signatures too); auditors and administrators only")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--subject", help="a pseudonymous subject id (S-...)")
    which.add_argument("--coi", help="a chain-of-identity id, as on the apheresis bag label: its collection, "
                                     "release and infusion, the signatures on them and the refusals naming them "
                                     "(product and lot numbers travel under their COI)")
    p.add_argument("--token", help="your token (`celltrail access token PRINCIPAL`); default $CELLTRAIL_TOKEN")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_audit)
    p = sub.add_parser("deadletters", help="records the consumers gave up on: list them, replay them after a fix "
                                           "(docs/operations.md)")
    dls = p.add_subparsers(dest="deadletters_cmd", required=True)
    q = dls.add_parser("list", help="every dead letter: id, time, source, consumer, type, replayed, reason")
    q.add_argument("--source", metavar="TOPIC", help="only those from this topic")
    q.add_argument("--since", metavar="ISO", help="only those dead-lettered at or after this time "
                                                  "(ISO 8601 with an offset, or YYYY-MM-DD)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_deadletters_list)
    q = dls.add_parser("replay", help="send dead letters back to their source topic (administrators only)")
    q.add_argument("ids", nargs="*", metavar="ID", help="a dead letter's id as `list` shows it (<partition>:<offset>)")
    q.add_argument("--all", action="store_true", help="every dead letter not yet replayed")
    q.add_argument("--source", metavar="TOPIC", help="with --all: only those from this topic")
    q.add_argument("--again", action="store_true", help="also send those already replayed (consumers deduplicate)")
    q.add_argument("--token", help="your token (`celltrail access token PRINCIPAL`); default $CELLTRAIL_TOKEN, "
                                   "else the CLI's principal's from the home")
    q.set_defaults(fn=cmd_deadletters_replay)
    p = sub.add_parser("identities", help="the identity table: erase a person's identifiers, encrypt old rows")
    ids = p.add_subparsers(dest="identities_cmd", required=True)
    q = ids.add_parser("erase", help="delete a subject's identifiers and key; events stay, the erasure is recorded")
    q.add_argument("subject")
    q.add_argument("--reason", required=True, help="recorded in the IdentityErased event: never name the person")
    q.set_defaults(fn=cmd_identities_erase)
    ids.add_parser("encrypt", help="encrypt plaintext identity rows and move old-key rows to the current key"
                   ).set_defaults(fn=cmd_identities_encrypt)
    p = sub.add_parser("coi", help="chain-of-identity ids (ISBT 128-shaped, docs/identifiers.md)")
    cois = p.add_subparsers(dest="coi_cmd", required=True)
    q = cois.add_parser("issue", help="issue the next COI for a subject's starting material, under its centre's FIN")
    q.add_argument("subject")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_coi_issue)
    p = sub.add_parser("programmes", help="programme definitions, the protocols as data (docs/programmes.md)")
    progs = p.add_subparsers(dest="programmes_cmd", required=True)
    q = progs.add_parser("publish", help="publish definition files, each its programme's next version")
    q.add_argument("files", nargs="+")
    q.set_defaults(fn=cmd_programmes_publish)
    progs.add_parser("list", help="the bundled definitions, one per seed programme").set_defaults(
        fn=cmd_programmes_list)
    p = sub.add_parser("readings", help="temperature loggers' readings (docs/custody.md, Condition)")
    readings = p.add_subparsers(dest="readings_cmd", required=True)
    q = readings.add_parser("load", help="load a logger's CSV file (time,celsius) for units in a shipment or store")
    q.add_argument("file")
    q.add_argument("--unit", action="append", required=True, help="a unit in the shipment or location (repeat)")
    q.add_argument("--org", required=True, help="the organisation loading it: holding the units or receiving them")
    q.add_argument("--location", required=True, help="the shipment or storage location, e.g. 'dry shipper DS-12'")
    q.add_argument("--logger", required=True, help="the logger's id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_readings_load)
    access_commands.add_parser(sub, cmd_access)
    sub.add_parser("demo", help="up, load the example scenario, print states and report").set_defaults(fn=cmd_demo)
    p = sub.add_parser("bench", help="throughput and latency against the raw broker, every target PASS or MISS")
    from infra.bench.options import add_arguments as bench_arguments

    bench_arguments(p)
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("soak", help="a mixed load while services, the broker and PostgreSQL are killed at random; "
                                    "then nothing lost, nothing twice, projection = rebuild, verify (make soak)")
    from infra.soak.run import add_arguments as soak_arguments

    soak_arguments(p)
    p.set_defaults(fn=cmd_soak)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except CliError as exc:
        print(f"celltrail {args.cmd}: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
