"""Fuzzing (issue 12 item 6): generated inputs against one running CellTrail, the five
services as their own processes on the test database and a broker of their own.

Size: `FUZZ_EXAMPLES` is the number of generated inputs per strategy (one HTTP operation of
one service, one topic, ...); each module says what it multiplies it by. Unset, a sample
(`make test`); `make fuzz` sets it for the full run (>= 10,000 inputs in all). What was sent
and how it was answered is counted per entry point (`Tally`), printed at the end of the run
and written as JSON to `FUZZ_REPORT` when that is set (docs/fuzzing.md).

The system is seeded with what lets generated inputs reach past "no such thing": a centre
(`CENTRE`), a patient registered and enrolled there, and two nurses of that centre (the
bedside check needs two); every other input is sent as the CLI's principal (data loader,
administrator, network operator), so it reaches validation rather than the policy.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from contracts.access import OrgKind, Role
from contracts.topology import SERVICES
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer
from infra.tooling.access import read_token_key
from infra.tooling.embedded import EmbeddedBroker
from infra.tooling.loader import Loader
from infra.tooling.supervisor import System
from tests.access import principal, provisioned
from tests.conftest import _admin, _with_database, in_thread

SAMPLE_EXAMPLES = 3


def examples() -> int:
    """Generated inputs per strategy: FUZZ_EXAMPLES, else the sample's."""
    return int(os.environ.get("FUZZ_EXAMPLES") or SAMPLE_EXAMPLES)


def fuzz_settings(n: int | None = None) -> settings:
    """Hypothesis as the fuzzing runs it: `n` examples, no deadline (a request may wait on a
    consumer), no example database (every run generates afresh; a failure prints its input)."""
    return settings(max_examples=n or examples(), deadline=None, database=None, derandomize=False,
                    suppress_health_check=list(HealthCheck), print_blob=True)


CENTRE, PROGRAMME = "FZ-01", "CART-BALL-RR"
NURSE, WITNESS = "fuzz.nurse", "fuzz.witness"


@dataclass
class Tally:
    """Per entry point: how many inputs were sent, and how they were answered."""

    sent: Counter = field(default_factory=Counter)
    outcomes: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    notes: dict[str, str] = field(default_factory=dict)

    def count(self, entry: str, outcome: str) -> None:
        self.sent[entry] += 1
        self.outcomes[entry][outcome] += 1

    def as_json(self) -> dict:
        return {"total": sum(self.sent.values()),
                "entry_points": {e: {"sent": n, "outcomes": dict(sorted(self.outcomes[e].items()))}
                                 for e, n in sorted(self.sent.items())},
                "notes": self.notes}


TALLY = Tally()


def pytest_terminal_summary(terminalreporter) -> None:
    if not TALLY.sent:
        return
    report = TALLY.as_json()
    tr = terminalreporter
    tr.section(f"fuzzing: {report['total']} generated inputs")
    groups: Counter = Counter()
    for entry, n in TALLY.sent.items():
        groups[entry.split(" ", 1)[0]] += n
    for group, n in sorted(groups.items()):
        tr.write_line(f"{group:<12} {n:>7}")
    for key, text in sorted(TALLY.notes.items()):
        tr.write_line(f"{key}: {text}")
    path = os.environ.get("FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
        tr.write_line(f"per entry point: {path}")


@dataclass
class Fuzzed:
    """The running system and what it was seeded with."""

    system: System
    database_url: str
    kafka: str
    urls: dict[str, str]
    headers: dict[str, dict[str, str]]  # "cli", NURSE, WITNESS -> the headers each sends
    tokens: dict[str, str]
    subject_id: str

    def cli(self) -> dict[str, str]:
        return self.headers["cli"]


def http(method: str, url: str, headers: dict[str, str], body: bytes | None = None,
         timeout: float = 60) -> tuple[int, bytes, dict[str, str]]:
    """One request; the status, body and headers of the answer, whatever it is."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def json_of(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:
        return None


async def event_counts(database_url: str) -> Counter:
    """Every store's events, counted by (store, event type)."""
    conn = await asyncpg.connect(database_url)
    try:
        counts: Counter = Counter()
        for schema in SERVICES:
            for r in await conn.fetch(f"SELECT event_type, count(*) AS n FROM {schema}.events GROUP BY event_type"):
                counts[(schema, r["event_type"])] = r["n"]
        return counts
    finally:
        await conn.close()


def counts(fz: Fuzzed) -> Counter:
    return in_thread(asyncio.run, event_counts(fz.database_url))


# Bookkeeping no input causes: each store records its hash chain's head on a timer
# (infra/runtime/chain.py, `HeadRecorder`, every CELLTRAIL_CHAIN_HEAD_SECONDS once new links exist).
TIMED = frozenset({"common.ChainHeadRecorded"})


def changed(before: Counter, after: Counter) -> dict[tuple[str, str], int]:
    """What changed, by (store, event type): after minus before, where not zero; the timed
    bookkeeping (`TIMED`) left out."""
    return {k: after[k] - before[k] for k in set(before) | set(after)
            if after[k] != before[k] and k[1] not in TIMED}


def wait_caught_up(fz: Fuzzed, timeout: float = 180) -> None:
    """Until every service's consumer has applied everything on its topics, twice in a row
    (an event one service publishes in reaction is then on the next one's topic)."""
    deadline, quiet, last = time.monotonic() + timeout, 0, {}
    while time.monotonic() < deadline:
        lags = []
        for url in fz.urls.values():
            status, body, _ = http("GET", f"{url}/status", fz.cli())
            lags.append((json_of(body) or {}).get("lag") if status == 200 else None)
            last[url] = (status, json_of(body))
        quiet = quiet + 1 if all(lag == 0 for lag in lags) else 0
        if quiet >= 3:
            return
        time.sleep(0.5)
    raise AssertionError(f"the consumers did not catch up within {timeout}s: {last}")


def assert_alive(fz: Fuzzed) -> None:
    """No process died, and each service's /health answers 200."""
    dead = {name: proc.returncode for name, proc in fz.system.procs.items() if proc.poll() is not None}
    assert not dead, f"service processes died: {dead}"
    for name, url in fz.urls.items():
        status, body, _ = http("GET", f"{url}/health", {})
        assert status == 200, f"{name} /health answered {status}: {body[:300]!r}"


def _seed(system: System) -> str:
    lines = [json.dumps({"command": "RegisterCentre", "centre_id": CENTRE, "name": "Fuzz centre", "country": "IT"}),
             json.dumps({"command": "RegisterPatient", "ref": "p", "centre_id": CENTRE, "hospital_record_number": "FZ-1",
                         "family_name": "Rossi", "given_name": "Anna", "date_of_birth": "1970-01-01",
                         "registered_on": "2025-01-02"}),
             json.dumps({"command": "EnrollSubject", "subject_ref": "p", "programme_id": PROGRAMME,
                         "centre_id": CENTRE, "enrolled_on": "2025-01-03"})]
    info = system.info
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"], system.tokens(),
                    service_urls=info.urls)
    results = asyncio.run(loader.load(lines))
    assert all(r.status == "accepted" for r in results), results
    return loader.refs["p"]


async def _nurses(database_url: str, home: Path) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM access.organisations WHERE org_id = $1", CENTRE):
            await PgAccessStore(conn).add_organisation(CENTRE, OrgKind.CENTRE, CENTRE, actor="test")
        people = [principal(who, (CENTRE, OrgKind.CENTRE, Role.NURSE)) for who in (NURSE, WITNESS)]
        await provisioned(conn, *people)
        issuer = TokenIssuer(read_token_key(home))
        return {p.principal_id: issuer.issue(p).token for p in people}
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def fuzzed(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    tmp = tmp_path_factory.mktemp("fuzz")
    name = f"celltrail_fuzz_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    broker = EmbeddedBroker(log_path=tmp / "broker.log").start()
    system = System(tmp / "home", fixed_ports=False, database_url=_with_database(postgres_server_url, name),
                    kafka_bootstrap_servers=broker.bootstrap_servers)
    try:
        in_thread(system.start)
        subject = in_thread(_seed, system)
        tokens = in_thread(asyncio.run, _nurses(system.info.database_url, system.home))
        tokens["cli"] = system.token()
        headers = {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}
        yield Fuzzed(system, system.info.database_url, broker.bootstrap_servers, dict(system.info.urls), headers,
                     tokens, subject)
    finally:
        system.stop()
        broker.stop()
        for log in sorted((tmp / "home" / "logs").glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {log.name} ---\n{text[-6000:]}")
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
