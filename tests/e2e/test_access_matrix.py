"""Issue 8 item 3, generated: every route of every service (from the declarations the
services serve, `endpoints_of`, so a new route is covered without touching this file) x
every role x (its own organisation's data, another organisation's data), plus no
credential and a bad one, against the five services running as their own processes on
real PostgreSQL and the real broker, over HTTP on TCP. The expected answer is derived from
the policy (`decide`, `decide_anywhere`): 2xx when it allows, 403 when it refuses, 401
without a valid credential; and every refusal must leave its row in `access.refusals`.

One system for the whole module; the other tests here read what it holds as different
callers (scope of reads, identifiers removed, the actor recorded, refusals recorded)."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest

from contracts import isbt128
from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access import credentials
from infra.runtime.access.policy import NETWORK_RESOURCE, POLICY, Resource, decide, decide_anywhere
from infra.runtime.access.principals import Principal
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key
from infra.runtime.edge import is_refusal
from infra.runtime.endpoints import Endpoint, Guard, the_network
from infra.runtime.host import endpoints_of
from infra.tooling.access import CLI_PRINCIPAL, read_token_key
from infra.tooling.embedded import EmbeddedBroker
from infra.tooling.loader import Loader
from infra.tooling.specs import service_specs
from infra.tooling.supervisor import System
from tests.access import principal, provisioned
from tests.e2e.driver import cell_dose_line, lymphodepletion_lines, qc_line, sign_latest, specification_line
from tests.conftest import _admin, _with_database, in_thread

pytestmark = pytest.mark.e2e

OWN_CENTRE, OTHER_CENTRE, OWN_FACILITY, NETWORK = "CTR-OWN", "CTR-OTHER", "FAC-OWN", "NETWORK"
ORG_OF_KIND = {OrgKind.CENTRE: OWN_CENTRE, OrgKind.FACILITY: OWN_FACILITY, OrgKind.NETWORK: NETWORK}
SIDES = {"own": OWN_CENTRE, "other": OTHER_CENTRE}
SYSTEM_ROLES = {Role.FACILITY_SYSTEM, Role.OUTCOME_CONSUMER, Role.DATA_LOADER}
WITNESS = "witness.own"
WITNESSES = {"own": ("nurse.m", WITNESS), "other": ("centre-b", "witness.other")}  # two people at each side's centre
QP, QP_PASSWORD = "qualified-person.m", "a long qualified person's password"  # signs each release


def role_holders() -> list[Principal]:
    """One principal per role, held at the first kind of organisation its rule allows (a
    system role by a system, which signs in with an API key), and one with no role."""
    out = []
    for role in Role:
        kind = sorted(POLICY[role].held_at)[0]
        who = PrincipalKind.SYSTEM if role in SYSTEM_ROLES else PrincipalKind.PERSON
        out.append(principal(f"{role.value.replace('_', '-')}.m", (ORG_OF_KIND[kind], kind, role), kind=who))
    return out + [principal("no-role.m")]


@dataclass
class Stack:
    system: System
    database_url: str
    credentials: dict[str, dict[str, str]]  # principal id -> the headers it sends
    subjects: dict[str, str]  # side -> a subject registered (and enrolled) at that side's centre
    records: dict[str, str]  # side -> the event id of its subject's apheresis (manufacturing)
    urls: dict[str, str]
    infused: dict[str, str] = field(default_factory=dict)  # side -> a unit infused into its subject

    def cli(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.system.token()}"}


def call(method: str, url: str, headers: dict[str, str], body: object = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json",
                                                                          **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


async def _set_up_principals(database_url: str, holders: list[Principal], home: Path) -> dict[str, dict[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        for centre, fin in ((OWN_CENTRE, "M0001"), (OTHER_CENTRE, "M0002")):  # COIs are issued under a FIN
            await PgAccessStore(conn).add_organisation(centre, OrgKind.CENTRE, centre, actor="test", fin=fin)
        # a bedside check's second people, and the other centre's nurse
        extra = [principal(WITNESS, (OWN_CENTRE, OrgKind.CENTRE, Role.NURSE)),
                 principal("witness.other", (OTHER_CENTRE, OrgKind.CENTRE, Role.NURSE)),
                 principal("centre-b", (OTHER_CENTRE, OrgKind.CENTRE, Role.NURSE))]
        await provisioned(conn, *holders, *extra)
        issuer, sent = TokenIssuer(read_token_key(home)), {}
        for p in extra:
            sent[p.principal_id] = {"Authorization": f"Bearer {issuer.issue(p).token}"}
        for p in holders:
            if p.kind is PrincipalKind.SYSTEM:
                key = credentials.new_api_key()
                await PgAccessStore(conn).add_api_key(p.principal_id, key.key_id, key.hash, actor="test")
                sent[p.principal_id] = {"X-API-Key": key.key}
            else:
                sent[p.principal_id] = {"Authorization": f"Bearer {issuer.issue(p).token}"}
        await PgAccessStore(conn).set_password(QP, credentials.hash_password(QP_PASSWORD), actor="test")
        return sent
    finally:
        await conn.close()


def coi_of(side: str) -> str:
    """The COI of the apheresis collected for `side`'s subject."""
    return str(isbt128.issue("E0002", 2025, 1 + sorted(SIDES).index(side)))


def _register_and_enrol(system: System) -> dict[str, str]:
    lines = [json.dumps({"command": "RegisterCentre", "centre_id": c, "name": c, "country": "IT"})
             for c in SIDES.values()]
    for side, centre in SIDES.items():
        lines += [json.dumps({"command": "RegisterPatient", "ref": side, "centre_id": centre,
                              "hospital_record_number": f"MRN-{side}", "family_name": "Rossi", "given_name": side,
                              "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}),
                  json.dumps({"command": "EnrollSubject", "subject_ref": side, "programme_id": "CART-BALL-RR",
                              "centre_id": centre, "enrolled_on": "2025-01-03"}),
                  json.dumps({"command": "RecordApheresisCollection", "subject_ref": side, "coi_id": coi_of(side),
                              "centre_id": centre, "collected_at": "2025-01-10T09:00:00Z"})]
    info = system.info
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"], system.tokens())
    results = asyncio.run(loader.load(lines))
    assert all(r.status == "accepted" for r in results), results
    return dict(loader.refs)


@pytest.fixture(scope="module")
def stack(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("access-matrix")
    name = f"celltrail_matrix_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    broker = EmbeddedBroker(log_path=tmp / "broker.log").start()
    system = System(tmp / "home", fixed_ports=False, database_url=_with_database(postgres_server_url, name),
                    kafka_bootstrap_servers=broker.bootstrap_servers)
    try:
        in_thread(system.start)
        sent = in_thread(asyncio.run, _set_up_principals(system.info.database_url, role_holders(), system.home))
        subjects = in_thread(_register_and_enrol, system)
        records = in_thread(asyncio.run, _collections(system.info.database_url))
        stack = Stack(system, system.info.database_url, sent, subjects, records, system.info.urls)
        wait_for_subjects(stack)
        stack.infused = {side: in_thread(_infuse, stack, side) for side in SIDES}
        yield stack
    finally:
        system.stop()
        broker.stop()
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _collections(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {side: str(await conn.fetchval(
            "SELECT event_id FROM manufacturing.events WHERE event_type = 'manufacturing.ApheresisCollected'"
            " AND payload->>'centre_id' = $1", centre)) for side, centre in SIDES.items()}
    finally:
        await conn.close()


def _infuse(stack: Stack, side: str) -> str:
    """Take the side's subject's product from collection to infusion, as the CLI (the data
    loader, for the organisations it names) and two of its centre's nurses at the bedside."""
    import time

    centre, coi, subject = SIDES[side], coi_of(side), stack.subjects[side]

    def at(hour: int) -> str:
        return f"2025-01-{11 + hour // 24:02d}T{hour % 24:02d}:00:00Z"

    def step(unit: str, what: str, org: str, hour: int, **more: str) -> str:
        return json.dumps({"command": "RecordCustodyStep", "unit_id": unit, "scanned_id": unit, "step": what,
                           "org_id": org, "location": "bay 1", "at": at(hour), **more})

    material, bag = coi + "00", coi + "A0"
    lines = [step(material, "shipped", centre, 1, destination_org_id=OWN_FACILITY),
             step(material, "received", OWN_FACILITY, 2), step(material, "manufacturing_started", OWN_FACILITY, 3),
             json.dumps({"command": "RegisterProductUnits", "coi_id": coi, "org_id": OWN_FACILITY, "lot_number": "L1",
                         "divisions": ["A0"], "location": "suite", "storage": "cryopreserved",
                         "registered_at": at(4)}),
             specification_line("CART-BALL-RR", OWN_FACILITY), qc_line(bag, OWN_FACILITY, at(5)),
             json.dumps({"command": "RecordProductRelease", "subject_id": subject, "coi_id": coi, "lot_number": "L1",
                         "released_at": at(6), "released_by": "QP", "viable_cells_per_ml": 2e6, "volume_ml": 50})]
    info = stack.system.info
    loader = Loader(info.kafka_bootstrap_servers, info.urls["enrollment"], info.urls["projection"],
                    stack.system.tokens())
    results = asyncio.run(loader.load(lines))
    assert all(r.status == "accepted" for r in results), results
    # the release takes effect with the facility's qualified person's signature (issue 9 item 4)
    asyncio.run(sign_latest(stack.database_url, stack.urls["manufacturing"], stack.credentials[QP], coi,
                            "manufacturing.ProductReleased", QP_PASSWORD))
    # prepared at the centre; the lymphodepletion of CART-BALL-RR given in the days before today and the
    # bag's cell dose prescribed (issue 10 item 4)
    lines = [step(bag, "shipped", OWN_FACILITY, 7, destination_org_id=centre), step(bag, "received", centre, 8),
             step(bag, "prepared", centre, 9), cell_dose_line(subject, bag),
             *lymphodepletion_lines("CART-BALL-RR", subject, datetime.now(timezone.utc).date())]
    results = asyncio.run(loader.load(lines))
    assert all(r.status == "accepted" for r in results), results
    first, second = WITNESSES[side]
    token = stack.credentials[second]["Authorization"].removeprefix("Bearer ")
    for _ in range(300):  # until infusion's view of the units has the bag prepared
        status, check = call("POST", f"{stack.urls['infusion']}/bedside-checks", stack.credentials[first],
                             {"unit_id": bag, "subject_id": subject, "second_verifier_token": token})
        assert status == 201, check
        if check["go"]:
            break
        time.sleep(0.2)
    infusion = json.dumps({"command": "RecordInfusion", "subject_id": subject, "coi_id": coi, "unit_id": bag,
                           "bedside_check_id": check["check_id"], "infused_at": check["checked_at"]})
    [result] = asyncio.run(loader.load([infusion]))
    assert result.status == "accepted", result
    return bag


def wait_for_subjects(stack: Stack, timeout: float = 60) -> None:
    """Until the projection shows every subject collected, or further (also after a rebuild)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        views = [call("GET", f"{stack.urls['projection']}/subjects/{s}", stack.cli()) for s in stack.subjects.values()]
        if all(status == 200 and view["phase"] in ("collected", "released", "infused") for status, view in views):
            return
        time.sleep(0.2)
    raise AssertionError(f"the projection did not show {stack.subjects} within {timeout}s")


# -- examples: how to fill a route's path and body for one side's data --------------------------

_mrn = itertools.count()


def _patient_body(centre: str) -> dict:
    return {"centre_id": centre, "hospital_record_number": f"MRN-M{next(_mrn)}", "family_name": "Bianchi",
            "given_name": "Luca", "date_of_birth": "1980-05-06", "registered_on": "2025-02-03"}


def example(stack: Stack, ep: Endpoint, side: str) -> tuple[str, object, Resource]:
    """(path, body, the resource it names) of a request of `ep` about `side`'s data. A
    route this does not know fails the test, naming it: a new route needs its example."""
    centre = SIDES[side]
    if ep.access.locate in (None, the_network) and not ep.path_params and ep.body is None:
        return ep.path, None, NETWORK_RESOURCE
    if ep.key == "POST /patients":
        return ep.path, _patient_body(centre), Resource(centre_id=centre)
    if ep.key == "GET /subjects/{subject_id}":
        return f"/subjects/{stack.subjects[side]}", None, Resource(centre_id=centre)
    if ep.key == "POST /screenings":
        # the side's subject screened for its programme (an ineligible result is answered 201 too)
        return ep.path, {"subject_id": stack.subjects[side], "programme_id": "CART-BALL-RR", "centre_id": centre,
                         "screened_on": "2025-01-05", "facts": {"diagnosis": "B-cell precursor ALL",
                                                                "cd19_positive": True, "disease_status": "relapsed"}
                         }, Resource(centre_id=centre)
    if ep.key == "POST /patients/{subject_id}/erasure":
        # a fresh subject each time: an identity is erased once
        status, body = call("POST", f"{stack.urls['enrollment']}/patients", stack.cli(), _patient_body(centre))
        assert status == 201, body
        return f"/patients/{body['subject_id']}/erasure", {"reason": "consent withdrawn"}, Resource(centre_id=centre)
    if ep.key == "POST /cois":
        return ep.path, {"subject_id": stack.subjects[side]}, Resource(centre_id=centre)
    if ep.key == "GET /records/{event_id}":
        # the apheresis of a product FAC-OWN made (`_infuse`): its centre's and the facility's
        return f"/records/{stack.records[side]}", None, Resource(centre_id=centre, facility_id=OWN_FACILITY)
    if ep.key == "POST /signatures":
        # the signing table decides in the handler, after the password (21 CFR 11.200(a))
        return ep.path, {"record_event_id": stack.records[side], "record_hash": "0" * 64, "meaning": "verification",
                         "password": "not anyone's password"}, Resource(centre_id=centre)
    if ep.key == "POST /bedside-checks":
        # a bag no one labelled: a no-go, answered 201 like a go; the second person a nurse of the own centre
        token = stack.credentials[WITNESS]["Authorization"].removeprefix("Bearer ")
        return ep.path, {"unit_id": str(isbt128.issue("E0002", 2025, 99)) + "A0", "subject_id": stack.subjects[side],
                         "second_verifier_token": token}, Resource(centre_id=centre)
    if ep.key == "GET /units/{unit_id}/fhir":
        # the starting material of a product FAC-OWN made (`_infuse`): its centre's and the facility's
        return f"/units/{coi_of(side)}00/fhir", None, Resource(centre_id=centre, facility_id=OWN_FACILITY)
    if ep.key == "GET /infusions/{unit_id}/fhir":
        return f"/infusions/{stack.infused[side]}/fhir", None, Resource(centre_id=centre)
    if ep.key == "POST /custody-steps":
        # storing the side's bag, infused already: the custody table refuses it past the edge
        bag = stack.infused[side]
        return ep.path, {"unit_id": bag, "scanned_id": bag, "step": "stored", "org_id": centre, "location": "fridge",
                         "at": "2025-01-13T09:00:00Z"}, Resource(centre_id=centre, facility_id=centre)
    if ep.key == "POST /temperature-readings":
        # the bag prepared at that side's centre (`_infuse`), which holds it: a reading in range
        return ep.path, {"unit_ids": [stack.infused[side]], "logger_id": "L-1", "org_id": centre,
                         "location": "ward fridge", "readings": [{"at": "2025-01-12T09:30:00Z", "celsius": -190.0}]}, \
            Resource(centre_id=centre, facility_id=centre)
    raise AssertionError(f"no example for {ep.key}: add one to tests/e2e/test_access_matrix.py")


# Routes whose domain answers past the edge with its own refusals (409, and recorded): the
# matrix checks the edge; their tests check the domain (custody: tests/unit/services/test_custody.py).
DOMAIN_DECIDES = {"POST /custody-steps"}


def expected(ep: Endpoint, who: Principal, resource: Resource) -> str:
    """'ok' or '403', from the policy; 'handler' where the handler applies the policy
    itself (signing: its own tests cover who may sign what)."""
    if ep.access.guard in (Guard.PUBLIC, Guard.SIGNED_IN):
        return "ok"
    if ep.access.guard is Guard.SIGNING:
        return "handler"
    if not decide_anywhere(who, ep.access.action).allowed:
        return "403"
    if ep.access.guard is Guard.LISTING:
        return "ok"
    if not decide(who, ep.access.action, resource).allowed:
        return "403"
    return "handler" if ep.key in DOMAIN_DECIDES else "ok"


def answered(ep: Endpoint, status: int, answer: object) -> str:
    if 200 <= status < 300 and status in ep.answers:
        return "ok"
    code = answer.get("code") if isinstance(answer, dict) else None
    if ep.access.guard is Guard.SIGNING and code not in ("UNAUTHENTICATED", "FORBIDDEN"):
        return "handler"  # past the edge: the signing handler's own answer
    if ep.key in DOMAIN_DECIDES and (200 <= status < 300 or status == 409):
        return "handler"  # past the edge: the domain's answer
    return str(status)


ALL = [(name, ep) for name, spec in service_specs().items() for ep in endpoints_of(spec)]
# What changes the whole system runs last, so the reads before it see a settled projection.
ALL.sort(key=lambda item: item[1].path.startswith("/admin/"))
FORGED = {"Authorization": f"Bearer {TokenIssuer(generate_signing_key()).issue(principal(CLI_PRINCIPAL)).token}"}
BAD_KEY = {"X-API-Key": "ctk_0123456789abcdef_not-a-key"}


async def refusal_count(database_url: str, service: str, route: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM access.refusals WHERE service = $1 AND route = $2",
                                   service, route)
    finally:
        await conn.close()


@pytest.mark.parametrize(("service", "ep"), ALL, ids=[f"{s}:{ep.key}" for s, ep in ALL])
def test_every_route_answers_every_role_as_the_policy_says(stack: Stack, service: str, ep: Endpoint) -> None:
    base = stack.urls[service]
    before = in_thread(asyncio.run, refusal_count(stack.database_url, service, ep.path))
    # A route about no organisation's data (the network's) is asked once per role.
    sides = list(SIDES) if ep.path_params or ep.body is not None else ["own"]

    def one(case: tuple[Principal, str]) -> tuple[bool, str | None]:
        who, side = case
        path, body, resource = example(stack, ep, side)
        want = expected(ep, who, resource)
        status, answer = call(ep.method, base + path, stack.credentials[who.principal_id], body)
        wrong = f"{who.principal_id} ({side} data): {status} {answer}, expected {want}"
        return is_refusal(status), None if answered(ep, status, answer) == want else wrong

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, itertools.product(role_holders(), sides)))
    refused = sum(r for r, _ in outcomes)
    wrong = [w for _, w in outcomes if w]
    for headers in ({}, FORGED, BAD_KEY):
        path, body, _ = example(stack, ep, "own")
        status, answer = call(ep.method, base + path, headers, body)
        refused += status == 401
        want = "ok" if not ep.access.authenticated else "401"
        if answered(ep, status, answer) != want:
            wrong.append(f"credential {list(headers) or 'none'}: {status} {answer}, expected {want}")
    assert wrong == [], f"{service} {ep.key}:\n" + "\n".join(wrong)
    after = in_thread(asyncio.run, refusal_count(stack.database_url, service, ep.path))
    assert after - before == refused, "every refusal has its row in access.refusals"
    if ep.key == "POST /admin/rebuild":
        wait_for_subjects(stack)


class TestScopeOfReads:
    def physician(self, stack: Stack) -> dict[str, str]:
        return stack.credentials["physician.m"]

    def test_centre_staff_list_only_their_own_centres_subjects_identified(self, stack: Stack) -> None:
        status, views = call("GET", f"{stack.urls['projection']}/subjects", self.physician(stack))
        assert status == 200 and stack.subjects["own"] in [v["subject_id"] for v in views]
        assert {(v["centre_id"], v["identifiers_removed"]) for v in views} == {(OWN_CENTRE, False)}

    def test_centre_staff_are_refused_another_centres_subject(self, stack: Stack) -> None:
        status, body = call("GET", f"{stack.urls['projection']}/subjects/{stack.subjects['other']}",
                            self.physician(stack))
        assert status == 403 and f"centre {OTHER_CENTRE}" in body["error"]

    def test_the_network_operator_reads_every_centre_with_identifiers_removed(self, stack: Stack) -> None:
        status, views = call("GET", f"{stack.urls['projection']}/subjects", stack.credentials["network-operator.m"])
        assert status == 200 and set(stack.subjects.values()) <= {v["subject_id"] for v in views}
        assert {v["centre_id"] for v in views} == {OWN_CENTRE, OTHER_CENTRE}
        assert all(v["identifiers_removed"] and len(v["timeline"][0]["at"]) == 4 for v in views)

    def test_the_report_counts_only_the_centres_the_caller_may_report_on(self, stack: Stack) -> None:
        def enrolled(headers: dict[str, str]) -> int:
            status, report = call("GET", f"{stack.urls['projection']}/report", headers)
            assert status == 200
            return sum(p["enrolled"] for p in report)

        assert enrolled(self.physician(stack)) == 1
        assert enrolled(stack.credentials["network-operator.m"]) == 2
        assert call("GET", f"{stack.urls['projection']}/report", stack.credentials["auditor.m"])[0] == 403


class TestWhereUnitsAre:
    """Issue 9 items 7 and 8: `GET /units` lists each unit only to who may read it as a product."""

    def units(self, stack: Stack, who: str, query: str = "") -> set[tuple[str, str, str]]:
        status, found = call("GET", f"{stack.urls['projection']}/units{query}", stack.credentials[who])
        assert status == 200, found
        return {(u["unit_id"], u["state"], u["holder"]) for u in found}

    def test_a_centre_sees_its_own_subjects_units_a_facility_those_it_made(self, stack: Stack) -> None:
        own, other = (coi_of(side) for side in ("own", "other"))
        assert self.units(stack, "physician.m") == {(own + "00", "in_manufacturing", OWN_FACILITY),
                                                    (own + "A0", "infused", "patient")}
        made = self.units(stack, "qualified-person.m")
        assert {u for u, _, _ in made} == {own + "00", own + "A0", other + "00", other + "A0"}

    def test_filters_and_refusal(self, stack: Stack) -> None:
        assert {u for u, _, _ in self.units(stack, "network-operator.m", "?state=infused")} == {
            coi_of(side) + "A0" for side in SIDES}
        assert self.units(stack, "network-operator.m", "?quarantined=true") == set()
        assert call("GET", f"{stack.urls['projection']}/units", stack.credentials["auditor.m"])[0] == 403


class TestTheRecord:
    def test_the_actor_is_the_authenticated_principal_whatever_a_header_says(self, stack: Stack) -> None:
        headers = {**stack.credentials["data-manager.m"], "x-celltrail-actor": "someone-else"}
        status, body = call("POST", f"{stack.urls['enrollment']}/patients", headers, _patient_body(OWN_CENTRE))
        assert status == 201

        async def actor() -> str:
            conn = await asyncpg.connect(stack.database_url)
            try:
                return await conn.fetchval("SELECT actor FROM enrollment.events WHERE stream_id = $1",
                                           f"subject-{body['subject_id']}")
            finally:
                await conn.close()

        assert in_thread(asyncio.run, actor()) == "data-manager.m"

    def test_refusals_record_who_what_and_about_whom(self, stack: Stack) -> None:
        url = f"{stack.urls['enrollment']}/patients"
        assert call("POST", url, stack.cli(), _patient_body("CTR-UNKNOWN"))[0] == 409  # the domain refuses
        assert call("POST", url, stack.credentials["nurse.m"], _patient_body(OTHER_CENTRE))[0] == 403
        assert call("GET", f"{stack.urls['projection']}/subjects/{stack.subjects['own']}", BAD_KEY)[0] == 401

        async def last(n: int) -> list[dict]:
            conn = await asyncpg.connect(stack.database_url)
            try:
                rows = await conn.fetch("SELECT * FROM access.refusals ORDER BY position DESC LIMIT $1", n)
                return [dict(r) for r in reversed(rows)]
            finally:
                await conn.close()

        domain, forbidden, anonymous = in_thread(asyncio.run, last(3))
        assert (domain["principal_id"], domain["status"], domain["code"], domain["centre_id"]) == (
            CLI_PRINCIPAL, 409, "UNKNOWN_CENTRE", "CTR-UNKNOWN")
        assert (forbidden["principal_id"], forbidden["status"], forbidden["centre_id"], forbidden["route"]) == (
            "nurse.m", 403, OTHER_CENTRE, "/patients")
        assert (anonymous["principal_id"], anonymous["credential"], anonymous["status"], anonymous["subject_id"]) == (
            None, "api_key", 401, stack.subjects["own"])
        assert all(r["reason"] and r["recorded_at"] for r in (domain, forbidden, anonymous))
