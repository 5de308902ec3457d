"""Custody of units through the running manufacturing service (issue 9, item 2), on a real
broker and real PostgreSQL, every command carrying its principal's real token: a courier
ships the starting material, the facility receives it, starts manufacturing, labels two
bags and tests them against the programme's specification, the release record follows and
the qualified person's signature puts it into effect (issue 9 item 4), one bag goes to the
treating centre; the steps that must not be taken are refused and recorded, each with its
reason code, and change no unit. An out-of-specification bag goes the exceptional-release
path of EU GMP Part IV 11.5 to the bedside, flagged."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from contracts import topics
from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import (
    RecordCustodyStep,
    RecordInfusion,
    RecordOosRiskAssessment,
    RecordProductRelease,
    RecordQaDisposition,
    RecordQcResults,
    RegisterProductUnits,
    RequestExceptionalRelease,
    SetProductSpecification,
)
from contracts.custody import CustodyStep
from infra.runtime.access import credentials
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, public_key_pem
from infra.runtime.host import build_app
from infra.runtime.messaging import ensure_topics
from infra.runtime.settings import Settings
from infra.tooling.access import CLI_PRINCIPAL, ensure_cli_principal
from services.infusion import bootstrap as infusion
from services.manufacturing import bootstrap as manufacturing
from tests.conftest import signing_settings
from tests.release import CRITERIA, FAILING, PASSING
from tests.integration.test_broker_authenticity import (
    NOW,
    TOKEN_KEY,
    coi,
    collection,
    command_record,
    enrolled,
    event_record,
    eventually,
    produce,
    subject,
)

pytestmark = pytest.mark.integration

PEOPLE = {"courier.a": ("CTR-A", Role.COURIER), "nurse.a": ("CTR-A", Role.NURSE),
          "physician.a": ("CTR-A", Role.PHYSICIAN), "data-manager.a": ("CTR-A", Role.DATA_MANAGER),
          "operator.p": ("GMP-P", Role.OPERATOR), "analyst.p": ("GMP-P", Role.QC_ANALYST),
          "qp.p": ("GMP-P", Role.QUALIFIED_PERSON),
          "operator.r": ("GMP-R", Role.OPERATOR)}


@pytest.fixture
async def tokens(pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        for org, kind in (("CTR-A", OrgKind.CENTRE), ("GMP-P", OrgKind.FACILITY), ("GMP-R", OrgKind.FACILITY)):
            await store.add_organisation(org, kind, org, actor="test")
        hashed = credentials.hash_password(PASSWORD)
        for who, (org, role) in PEOPLE.items():
            await store.add_principal(who, PrincipalKind.PERSON, who, actor="test")
            await store.grant(who, org, role, actor="test")
            await store.set_password(who, hashed, actor="test")  # people sign with it (21 CFR 11.200(a))
        await ensure_cli_principal(store)
        issuer = TokenIssuer(TOKEN_KEY)
        return {p: issuer.issue(await store.principal(p)).token for p in (*PEOPLE, CLI_PRINCIPAL)}


@asynccontextmanager
async def running(bootstrap, database_url: str, kafka: str, token: str, operator: str):
    """The service, and a client calling it with `token`; `operator`'s token reads /status."""
    spec = bootstrap.spec()
    app = build_app(spec, Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                   CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(TOKEN_KEY),
                                   CELLTRAIL_RELAY_POLL_SECONDS=0.05, **signing_settings(spec.name)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{spec.name}",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            for _ in range(600):  # until the consumer holds its partitions
                if (await client.get("/status", headers={"Authorization": f"Bearer {operator}"})).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            yield client


@pytest.fixture
async def service(database_url, kafka, tokens):
    await ensure_topics(kafka, 3)
    async with running(manufacturing, database_url, kafka, tokens[CLI_PRINCIPAL], tokens[CLI_PRINCIPAL]) as client:
        yield client


@pytest.fixture
async def ward(database_url, kafka, tokens):
    """Manufacturing and infusion, as the treating centre's nurse calls infusion."""
    await ensure_topics(kafka, 3)
    cli = tokens[CLI_PRINCIPAL]
    async with running(manufacturing, database_url, kafka, tokens["nurse.a"], cli) as maker, \
            running(infusion, database_url, kafka, tokens["nurse.a"], cli) as client:
        client.manufacturing = maker  # the same nurse, calling manufacturing
        yield client


N = 401
COI = coi(N)
MATERIAL, A0, B0 = COI + "00", COI + "A0", COI + "B0"


def step(unit: str, what: CustodyStep, org: str, hours: int, *, scanned: str | None = None,
         to: str | None = None) -> RecordCustodyStep:
    return RecordCustodyStep(unit_id=unit, scanned_id=scanned or unit, step=what, org_id=org,
                             location=f"{org} bay 2", at=NOW + timedelta(days=1, hours=hours), destination_org_id=to)


PASSWORD = "correct horse battery staple"
# GMP-P's specification for the programme the test subjects are enrolled in (enrolled(n))
SPEC = SetProductSpecification(programme_id="CART-BALL-RR", org_id="GMP-P", criteria=CRITERIA, set_at=NOW)


def qc(unit: str, hours: int, *, passing: bool = True) -> RecordQcResults:
    return RecordQcResults(unit_id=unit, scanned_id=unit, org_id="GMP-P", location="GMP-P QC lab",
                           tested_at=NOW + timedelta(days=1, hours=hours), results=PASSING if passing else FAILING)


async def sign(client: httpx.AsyncClient, pool, tokens, coi_id: str, event_type: str, who: str) -> httpx.Response:
    """`who` signs the COI's latest `event_type` record with the meaning approval, as a person
    does: shown the record and its hash (GET /records/{id}), then the password again."""
    event_id = None
    for _ in range(300):  # until manufacturing has recorded it
        event_id = await pool.fetchval("SELECT event_id::text FROM manufacturing.events WHERE stream_id = $1"
                                       " AND event_type = $2 ORDER BY position DESC LIMIT 1", f"coi-{coi_id}", event_type)
        if event_id:
            break
        await asyncio.sleep(0.1)
    assert event_id, f"no {event_type} of COI {coi_id}"
    headers = {"Authorization": f"Bearer {tokens[who]}"}
    shown = await client.get(f"/records/{event_id}", headers=headers)
    assert shown.status_code == 200, shown.text
    return await client.post("/signatures", headers=headers, json={
        "record_event_id": event_id, "record_hash": shown.json()["content_hash"], "meaning": "approval",
        "password": PASSWORD})


async def specified(kafka, pool, tokens) -> None:
    """GMP-P's qualified person sets the specification (once per test database)."""
    await produce(kafka, [command_record(SPEC, actor="qp.p", token=tokens["qp.p"])[1]])
    await eventually(pool, "SELECT count(*) FROM manufacturing.events WHERE stream_id = 'spec-CART-BALL-RR-GMP-P'",
                     expect=1)


async def certified(client: httpx.AsyncClient, pool, tokens, coi_id: str) -> None:
    """The qualified person signs the release record: the release takes effect."""
    answer = await sign(client, pool, tokens, coi_id, "manufacturing.ProductReleased", "qp.p")
    assert answer.status_code == 201, answer.text


class TestCustodyThroughTheService:
    async def test_a_unit_goes_from_the_centre_to_the_facility_and_back_refusals_recorded(
            self, service, kafka, pool, tokens) -> None:
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(N), signer="enrollment")])
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects WHERE subject_id = $1",
                         subject(N), expect=1)
        S = CustodyStep
        sent = [
            (CLI_PRINCIPAL, collection(N)),
            ("courier.a", step(MATERIAL, S.SHIPPED, "CTR-A", 1, to="GMP-P")),
            ("operator.r", step(MATERIAL, S.RECEIVED, "GMP-R", 5)),  # refused: shipped to GMP-P
            ("operator.r", step(MATERIAL, S.RECEIVED, "GMP-P", 5)),  # refused: no role at GMP-P
            ("operator.p", step(MATERIAL, S.RECEIVED, "GMP-P", 6)),
            ("operator.p", step(MATERIAL, S.MANUFACTURING_STARTED, "GMP-P", 7)),
            ("operator.p", RegisterProductUnits(coi_id=COI, org_id="GMP-P", lot_number="LOT-401", divisions=["A0", "B0"],
                                                location="GMP-P suite 1", storage="cryopreserved", registered_at=NOW + timedelta(days=10))),
            ("analyst.p", qc(A0, 24 * 12)),
            ("operator.p", qc(B0, 24 * 12)),  # refused: an operator's is not QC
            (CLI_PRINCIPAL, RecordProductRelease(coi_id=COI, subject_id=subject(N), lot_number="LOT-401",
                                                 released_at=NOW + timedelta(days=13), released_by="QP",
                                                 viable_cells_per_ml=2e6, volume_ml=50)),  # refused: B0 untested
            ("analyst.p", qc(B0, 24 * 12 + 1)),
            (CLI_PRINCIPAL, RecordProductRelease(coi_id=COI, subject_id=subject(N), lot_number="LOT-401",
                                                 released_at=NOW + timedelta(days=14), released_by="QP",
                                                 viable_cells_per_ml=2e6, volume_ml=50)),
            ("operator.p", step(A0, S.SHIPPED, "GMP-P", 24 * 14, to="CTR-A")),  # refused: not signed yet
        ]
        after = [
            ("operator.p", step(A0, S.SHIPPED, "GMP-P", 24 * 14, scanned=B0, to="CTR-A")),  # refused: wrong bag
            ("operator.p", step(A0, S.SHIPPED, "GMP-P", 24 * 14, to="CTR-A")),
            ("nurse.a", step(A0, S.RECEIVED, "CTR-A", 24 * 15)),
            ("nurse.a", step(A0, S.STORED, "CTR-A", 24 * 15 + 1)),
        ]
        await specified(kafka, pool, tokens)
        records = [command_record(cmd, actor=who, token=tokens[who]) for who, cmd in sent]
        await produce(kafka, [r for _, r in records])
        await eventually(pool, "SELECT count(*) FROM manufacturing.events WHERE stream_id = $1",
                         f"coi-{COI}", expect=8, timeout=60)
        # only a person signs, only with the password, only the right person puts it into effect
        assert (await sign(service, pool, tokens, COI, "manufacturing.ProductReleased", "analyst.p")).status_code == 403
        await certified(service, pool, tokens, COI)
        later = [command_record(cmd, actor=who, token=tokens[who]) for who, cmd in after]
        records += later
        assert len({r["key"] for _, r in records}) == 1  # one COI: one partition, in order
        await produce(kafka, [r for _, r in later])

        await eventually(pool, "SELECT count(*) FROM manufacturing.events WHERE stream_id = $1",
                         f"coi-{COI}", expect=12, timeout=60)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT event_type, actor, payload FROM manufacturing.events"
                                    " WHERE stream_id = $1 ORDER BY stream_version", f"coi-{COI}")
            rejected = await conn.fetch("SELECT payload FROM manufacturing.events"
                                        " WHERE event_type = 'common.CommandRejected'")
        steps = [(r["actor"], json.loads(r["payload"])) for r in rows if r["event_type"].endswith("CustodyStepRecorded")]
        assert [(actor, p["unit_id"], p["step"], p["org_id"], p["role"]) for actor, p in steps] == [
            ("courier.a", MATERIAL, "shipped", "CTR-A", "courier"),
            ("operator.p", MATERIAL, "received", "GMP-P", "operator"),
            ("operator.p", MATERIAL, "manufacturing_started", "GMP-P", "operator"),
            ("operator.p", A0, "shipped", "GMP-P", "operator"),
            ("nurse.a", A0, "received", "CTR-A", "nurse"),
            ("nurse.a", A0, "stored", "CTR-A", "nurse"),
        ]
        tested = [(r["actor"], json.loads(r["payload"])) for r in rows
                  if r["event_type"] == "manufacturing.QcResultsRecorded"]
        assert [(actor, p["unit_id"], p["within_specification"], p["specification_version"])
                for actor, p in tested] == [("analyst.p", A0, True, 1), ("analyst.p", B0, True, 1)]
        released = [json.loads(r["payload"]) for r in rows if r["event_type"] == "manufacturing.ProductReleased"]
        assert [(p["facility_id"], p["awaiting_signature"]) for p in released] == [("GMP-P", True)]
        [certificate] = [(r["actor"], json.loads(r["payload"])) for r in rows
                         if r["event_type"] == "manufacturing.ReleaseCertified"]
        assert (certificate[0], certificate[1]["signer"], [u["unit_id"] for u in certificate[1]["units"]]) == (
            "qp.p", "qp.p", [A0, B0])
        ids = {str(env.command_id): n for n, (env, _) in enumerate(records)}
        codes = {ids[p["command_id"]]: p["reason_code"] for p in map(lambda r: json.loads(r["payload"]), rejected)
                 if p["command_id"] in ids}
        assert codes == {2: "NOT_HOLDER", 3: "FORBIDDEN", 8: "ROLE_NOT_PERMITTED", 9: "RELEASE_BEFORE_QC",
                         12: "CUSTODY_OUT_OF_SEQUENCE", 13: "WRONG_IDENTIFIER"}


M = 402
COI_M = coi(M)
A0_M = COI_M + "A0"


class TestTheBedsideGate:
    async def test_two_people_check_the_bag_and_the_wristband_and_only_a_go_lets_it_be_infused(
            self, ward, kafka, pool, tokens) -> None:
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(M), signer="enrollment"),
                              event_record(topics.ENROLLMENT_EVENTS, enrolled(M + 1), signer="enrollment")])
        await eventually(pool, "SELECT count(*) FROM infusion.subject_centres WHERE subject_id = ANY($1)",
                         [subject(M), subject(M + 1)], expect=2)
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects WHERE subject_id = $1",
                         subject(M), expect=1)
        S = CustodyStep
        await released_for(ward.manufacturing, kafka, pool, tokens, M)
        path = [("operator.p", step(A0_M, S.SHIPPED, "GMP-P", 24 * 14, to="CTR-A")),
                ("nurse.a", step(A0_M, S.RECEIVED, "CTR-A", 24 * 15))]
        await produce(kafka, [command_record(cmd, actor=who, token=tokens[who])[1] for who, cmd in path])
        await eventually(pool, "SELECT state FROM infusion.units WHERE unit_id = $1", A0_M, expect="received")

        def scan(subject_id: str, second: str) -> dict:
            return {"unit_id": f"{COI_M[:5]} {COI_M[5:7]} {COI_M[7:13]} {COI_M[13]} A0", "subject_id": subject_id,
                    "second_verifier_token": tokens[second]}

        # received but not thawed: a no-go, recorded, with its reason
        first = (await ward.post("/bedside-checks", json=scan(subject(M), "physician.a"))).json()
        assert (first["go"], [r["code"] for r in first["reasons"]]) == (False, ["NOT_PREPARED"])
        # one person twice, or a second person without the right to verify, is not a check
        same = await ward.post("/bedside-checks", json=scan(subject(M), "nurse.a"))
        assert (same.status_code, same.json()["code"]) == (422, "SAME_VERIFIER")
        unqualified = await ward.post("/bedside-checks", json=scan(subject(M), "data-manager.a"))
        assert (unqualified.status_code, unqualified.json()["code"]) == (422, "SECOND_VERIFIER_FORBIDDEN")

        await produce(kafka, [command_record(step(A0_M, S.PREPARED, "CTR-A", 24 * 15 + 1), actor="nurse.a",
                                             token=tokens["nurse.a"])[1]])
        await eventually(pool, "SELECT state FROM infusion.units WHERE unit_id = $1", A0_M, expect="prepared")
        wrong = (await ward.post("/bedside-checks", json=scan(subject(M + 1), "physician.a"))).json()
        assert (wrong["go"], [r["code"] for r in wrong["reasons"]]) == (False, ["WRONG_PATIENT"])
        go = (await ward.post("/bedside-checks", json=scan(subject(M), "physician.a"))).json()
        assert go["go"] is True and go["verified_by"] == ["nurse.a", "physician.a"]

        infused_at = datetime.now(timezone.utc)  # after the checks, which the service dates itself
        unchecked, checked = (command_record(RecordInfusion(subject_id=subject(M), coi_id=COI_M, infused_at=infused_at,
                                                            unit_id=A0_M, bedside_check_id=check_id),
                                             actor="nurse.a", token=tokens["nurse.a"]) for check_id in
                              (first["check_id"], go["check_id"]))
        await produce(kafka, [unchecked[1], checked[1]])
        await eventually(pool, "SELECT count(*) FROM infusion.events WHERE event_type = 'infusion.ProductInfused'"
                               " AND subject_id = $1", subject(M), expect=1)
        async with pool.acquire() as conn:
            infused = json.loads(await conn.fetchval(
                "SELECT payload FROM infusion.events WHERE event_type = 'infusion.ProductInfused' AND subject_id = $1",
                subject(M)))
            refusal = json.loads(await conn.fetchval(
                "SELECT payload FROM infusion.events WHERE event_type = 'common.CommandRejected'"
                " AND payload->>'command_id' = $1", str(unchecked[0].command_id)))
            checks = await conn.fetch("SELECT actor, payload FROM infusion.events"
                                      " WHERE event_type = 'infusion.BedsideCheckRecorded' ORDER BY position")
        assert (infused["unit_id"], infused["bedside_check_id"]) == (A0_M, go["check_id"])
        assert refusal["reason_code"] == "BEDSIDE_NO_GO"  # superseded, and a no-go besides
        assert [(c["actor"], json.loads(c["payload"])["go"]) for c in checks] == [
            ("nurse.a", False), ("nurse.a", False), ("nurse.a", True)]
        # item 9: the bag and its infusion in HL7 FHIR R5, for the centre's nurse
        product = (await ward.manufacturing.get(f"/units/{A0_M}/fhir")).json()
        given = (await ward.get(f"/infusions/{A0_M}/fhir")).json()
        assert (product["resourceType"], product["biologicalSourceEvent"]["value"]) == ("BiologicallyDerivedProduct", COI_M)
        assert given["resourceType"] == "BiologicallyDerivedProductDispense"
        assert given["product"]["identifier"] == product["identifier"][0]
        assert "verified by nurse.a and physician.a" in given["note"][1]["text"]


Q = 404
COI_Q = coi(Q)
A0_Q = COI_Q + "A0"


async def released_for(client: httpx.AsyncClient, kafka, pool, tokens, n: int, *, failing: tuple[str, ...] = (),
                       exceptional: bool = False) -> None:
    """Subject n's product made by GMP-P as bag A0 (and B0 if `failing` names it), tested against
    the specification, its release recorded and signed by the qualified person; `failing` bags
    fail QC and, if `exceptional`, go the exceptional-release path first (EU GMP Part IV 11.5:
    the physician's request, the QP's risk assessment, the physician's signed acceptance)."""
    S, coi_id = CustodyStep, coi(n)
    bags = ["A0", *failing]
    await specified(kafka, pool, tokens)
    path = [
        (CLI_PRINCIPAL, collection(n)),
        ("courier.a", step(coi_id + "00", S.SHIPPED, "CTR-A", 1, to="GMP-P")),
        ("operator.p", step(coi_id + "00", S.RECEIVED, "GMP-P", 6)),
        ("operator.p", step(coi_id + "00", S.MANUFACTURING_STARTED, "GMP-P", 7)),
        ("operator.p", RegisterProductUnits(coi_id=coi_id, org_id="GMP-P", lot_number=f"LOT-{n}", divisions=bags,
                                            location="GMP-P suite 1", storage="cryopreserved",
                                            registered_at=NOW + timedelta(days=10))),
        *[("analyst.p", qc(coi_id + bag, 24 * 12, passing=bag not in failing)) for bag in bags],
    ]
    if exceptional:
        path += [("physician.a", RequestExceptionalRelease(
                    coi_id=coi_id, unit_ids=[coi_id + b for b in failing], org_id="CTR-A",
                    justification="refractory disease, no other product can be made in time",
                    requested_at=NOW + timedelta(days=13))),
                 ("qp.p", RecordOosRiskAssessment(
                    coi_id=coi_id, org_id="GMP-P", deviation="viability 61 % against >= 70 %",
                    risk_assessment="fewer viable cells; sterility and endotoxin within limits",
                    assessed_at=NOW + timedelta(days=13, hours=2)))]
    await produce(kafka, [command_record(cmd, actor=who, token=tokens[who])[1] for who, cmd in path])
    if exceptional:
        accepted = await sign(client, pool, tokens, coi_id, "manufacturing.OosRiskAssessed", "physician.a")
        assert accepted.status_code == 201, accepted.text
    release = RecordProductRelease(coi_id=coi_id, subject_id=subject(n), lot_number=f"LOT-{n}",
                                   released_at=NOW + timedelta(days=14), released_by="QP", viable_cells_per_ml=2e6,
                                   volume_ml=50)
    await produce(kafka, [command_record(release, actor=CLI_PRINCIPAL, token=tokens[CLI_PRINCIPAL])[1]])
    await certified(client, pool, tokens, coi_id)


class TestTemperature:
    async def test_an_excursion_in_transit_quarantines_the_bag_until_the_qp_accepts_it(
            self, ward, kafka, pool, tokens) -> None:
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(Q), signer="enrollment")])
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects WHERE subject_id = $1",
                         subject(Q), expect=1)
        await eventually(pool, "SELECT count(*) FROM infusion.subject_centres WHERE subject_id = $1",
                         subject(Q), expect=1)
        await released_for(ward.manufacturing, kafka, pool, tokens, Q)
        await produce(kafka, [command_record(step(A0_Q, CustodyStep.SHIPPED, "GMP-P", 24 * 14, to="CTR-A"),
                                             actor="operator.p", token=tokens["operator.p"])[1]])
        await eventually(pool, "SELECT state FROM infusion.units WHERE unit_id = $1", A0_Q, expect="in_transit")

        shipped = NOW + timedelta(days=14, hours=1)
        logger = {"unit_ids": [A0_Q], "logger_id": "DS-12", "org_id": "CTR-A", "location": "dry shipper DS-12",
                  "readings": [{"at": (shipped + timedelta(minutes=15 * i)).isoformat(), "celsius": c}
                               for i, c in enumerate((-190, -185, -135, -120, -160, -190))]}
        answer = await ward.manufacturing.post("/temperature-readings", json=logger)
        assert answer.status_code == 201, answer.text
        [excursion] = answer.json()["excursions"]
        assert (excursion["minutes"], excursion["peak_celsius"], excursion["deviation"]) == (30, -120, 30)
        assert answer.json()["quarantined"] == [A0_Q]
        await eventually(pool, "SELECT quarantined FROM infusion.units WHERE unit_id = $1", A0_Q, expect=True)
        # the readings of another organisation's shipment are not the nurse's to load
        elsewhere = await ward.manufacturing.post("/temperature-readings", json={**logger, "org_id": "GMP-P"})
        assert elsewhere.status_code == 403

        S = CustodyStep
        received, prepared = (command_record(step(A0_Q, s, "CTR-A", 24 * 15 + h), actor="nurse.a",
                                             token=tokens["nurse.a"]) for s, h in ((S.RECEIVED, 0), (S.PREPARED, 1)))
        await produce(kafka, [received[1], prepared[1]])
        await eventually(pool, "SELECT payload->>'reason_code' FROM manufacturing.events"
                               " WHERE event_type = 'common.CommandRejected' AND payload->>'command_id' = $1",
                         str(prepared[0].command_id), expect="QUARANTINED")

        accept = RecordQaDisposition(unit_id=A0_Q, org_id="GMP-P", decision="accept", decided_at=NOW + timedelta(days=16),
                                     justification="30 min above -150 C, peak -120 C: within the stability data")
        await produce(kafka, [command_record(accept, actor="qp.p", token=tokens["qp.p"])[1]])
        await eventually(pool, "SELECT quarantined FROM infusion.units WHERE unit_id = $1", A0_Q, expect=False)
        async with pool.acquire() as conn:
            decided = await conn.fetchrow("SELECT actor, payload FROM manufacturing.events"
                                          " WHERE event_type = 'manufacturing.QaDispositionRecorded'")
        assert (decided["actor"], json.loads(decided["payload"])["role"]) == ("qp.p", "qualified_person")
        # item 7: a step reported over HTTP, applied at once, or refused with the table's code
        thawed = step(A0_Q, S.PREPARED, "CTR-A", 24 * 16).model_dump(mode="json")
        for _ in range(100):  # until manufacturing has applied the QP's acceptance
            answer = await ward.manufacturing.post("/custody-steps", json=thawed)
            if answer.status_code != 409 or answer.json()["code"] != "QUARANTINED":
                break
            await asyncio.sleep(0.1)
        assert answer.status_code == 201, answer.text
        assert (answer.json()["recorded"]["to_state"], answer.json()["recorded"]["role"]) == ("prepared", "nurse")
        again = await ward.manufacturing.post("/custody-steps", json=thawed)
        assert (again.status_code, again.json()["code"]) == (409, "CUSTODY_OUT_OF_SEQUENCE")


X = 406
COI_X = coi(X)


class TestExceptionalRelease:
    async def test_an_out_of_specification_bag_reaches_the_patient_only_by_the_path_of_part_iv_11_5_and_flagged(
            self, ward, kafka, pool, tokens) -> None:
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(X), signer="enrollment")])
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects WHERE subject_id = $1",
                         subject(X), expect=1)
        await eventually(pool, "SELECT count(*) FROM infusion.subject_centres WHERE subject_id = $1",
                         subject(X), expect=1)
        # the nurse may not accept the manufacturer's risk assessment: only the treating physician
        await released_for(ward.manufacturing, kafka, pool, tokens, X, failing=("B0",), exceptional=True)
        refused_by_nurse = await sign(ward.manufacturing, pool, tokens, COI_X, "manufacturing.OosRiskAssessed",
                                      "nurse.a")
        assert refused_by_nurse.status_code == 403, refused_by_nurse.text
        bag = COI_X + "B0"
        S = CustodyStep
        path = [("operator.p", step(bag, S.SHIPPED, "GMP-P", 24 * 14, to="CTR-A")),
                ("nurse.a", step(bag, S.RECEIVED, "CTR-A", 24 * 15)),
                ("nurse.a", step(bag, S.PREPARED, "CTR-A", 24 * 15 + 1))]
        await produce(kafka, [command_record(cmd, actor=who, token=tokens[who])[1] for who, cmd in path])
        await eventually(pool, "SELECT state FROM infusion.units WHERE unit_id = $1", bag, expect="prepared")

        go = (await ward.post("/bedside-checks", json={"unit_id": bag, "subject_id": subject(X),
                                                       "second_verifier_token": tokens["physician.a"]})).json()
        assert (go["go"], go["out_of_specification"]) == (True, True), go
        infusion = RecordInfusion(subject_id=subject(X), coi_id=COI_X, infused_at=datetime.now(timezone.utc),
                                  unit_id=bag, bedside_check_id=go["check_id"])
        await produce(kafka, [command_record(infusion, actor="nurse.a", token=tokens["nurse.a"])[1]])
        await eventually(pool, "SELECT payload->>'out_of_specification' FROM infusion.events"
                               " WHERE event_type = 'infusion.ProductInfused' AND subject_id = $1", subject(X),
                         expect="true")
        async with pool.acquire() as conn:
            chain = [(r["event_type"], r["actor"]) for r in await conn.fetch(
                "SELECT event_type, actor FROM manufacturing.events WHERE stream_id = $1 AND event_type = ANY($2)"
                " ORDER BY stream_version", f"coi-{COI_X}",
                ["manufacturing.ExceptionalReleaseRequested", "manufacturing.OosRiskAssessed",
                 "manufacturing.ExceptionalReleaseAccepted", "manufacturing.SponsorNotificationRaised",
                 "manufacturing.ProductReleased", "manufacturing.ReleaseCertified"])]
            certificate = json.loads(await conn.fetchval(
                "SELECT payload FROM manufacturing.events WHERE event_type = 'manufacturing.ReleaseCertified'"))
        assert chain == [("manufacturing.ExceptionalReleaseRequested", "physician.a"),
                         ("manufacturing.OosRiskAssessed", "qp.p"),
                         ("manufacturing.ExceptionalReleaseAccepted", "physician.a"),
                         ("manufacturing.SponsorNotificationRaised", "physician.a"),
                         ("manufacturing.ProductReleased", CLI_PRINCIPAL),
                         ("manufacturing.ReleaseCertified", "qp.p")]
        assert [(u["unit_id"][-2:], u["out_of_specification"]) for u in certificate["units"]] == [
            ("A0", False), ("B0", True)]
