"""Custody of units through the running manufacturing service (issue 9, item 2), on a real
broker and real PostgreSQL, every command carrying its principal's real token: a courier
ships the starting material, the facility receives it, starts manufacturing, labels two
bags and tests them, the release follows, one bag goes to the treating centre; the steps
that must not be taken are refused and recorded, each with its reason code, and change no
unit."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest

from contracts import topics
from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import RecordCustodyStep, RecordProductRelease, RegisterProductUnits
from contracts.custody import CustodyStep
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, public_key_pem
from infra.runtime.host import build_app
from infra.runtime.messaging import ensure_topics
from infra.runtime.settings import Settings
from infra.tooling.access import CLI_PRINCIPAL, ensure_cli_principal
from services.manufacturing import bootstrap as manufacturing
from tests.conftest import signing_settings
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
          "operator.p": ("GMP-P", Role.OPERATOR), "analyst.p": ("GMP-P", Role.QC_ANALYST),
          "operator.r": ("GMP-R", Role.OPERATOR)}


@pytest.fixture
async def tokens(pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        for org, kind in (("CTR-A", OrgKind.CENTRE), ("GMP-P", OrgKind.FACILITY), ("GMP-R", OrgKind.FACILITY)):
            await store.add_organisation(org, kind, org, actor="test")
        for who, (org, role) in PEOPLE.items():
            await store.add_principal(who, PrincipalKind.PERSON, who, actor="test")
            await store.grant(who, org, role, actor="test")
        await ensure_cli_principal(store)
        issuer = TokenIssuer(TOKEN_KEY)
        return {p: issuer.issue(await store.principal(p)).token for p in (*PEOPLE, CLI_PRINCIPAL)}


@pytest.fixture
async def service(database_url, kafka, tokens):
    await ensure_topics(kafka, 3)
    spec = manufacturing.spec()
    app = build_app(spec, Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                   CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(TOKEN_KEY),
                                   CELLTRAIL_RELAY_POLL_SECONDS=0.05, **signing_settings(spec.name)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://manufacturing",
                                     headers={"Authorization": f"Bearer {tokens[CLI_PRINCIPAL]}"}) as client:
            for _ in range(600):  # until the consumer holds its partitions
                if (await client.get("/status")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            yield client


N = 401
COI = coi(N)
MATERIAL, A0, B0 = COI + "00", COI + "A0", COI + "B0"


def step(unit: str, what: CustodyStep, org: str, hours: int, *, scanned: str | None = None,
         to: str | None = None) -> RecordCustodyStep:
    return RecordCustodyStep(unit_id=unit, scanned_id=scanned or unit, step=what, org_id=org,
                             location=f"{org} bay 2", at=NOW + timedelta(days=1, hours=hours), destination_org_id=to)


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
                                                location="GMP-P suite 1", registered_at=NOW + timedelta(days=10))),
            ("analyst.p", step(A0, S.QC_RESULTS_RECORDED, "GMP-P", 24 * 12)),
            ("operator.p", step(B0, S.QC_RESULTS_RECORDED, "GMP-P", 24 * 12)),  # refused: an operator's is not QC
            (CLI_PRINCIPAL, RecordProductRelease(coi_id=COI, subject_id=subject(N), lot_number="LOT-401",
                                                 released_at=NOW + timedelta(days=13), released_by="QP",
                                                 viable_cells_per_ml=2e6, volume_ml=50)),  # refused: B0 untested
            ("analyst.p", step(B0, S.QC_RESULTS_RECORDED, "GMP-P", 24 * 12 + 1)),
            (CLI_PRINCIPAL, RecordProductRelease(coi_id=COI, subject_id=subject(N), lot_number="LOT-401",
                                                 released_at=NOW + timedelta(days=14), released_by="QP",
                                                 viable_cells_per_ml=2e6, volume_ml=50)),
            ("operator.p", step(A0, S.SHIPPED, "GMP-P", 24 * 14, scanned=B0, to="CTR-A")),  # refused: wrong bag
            ("operator.p", step(A0, S.SHIPPED, "GMP-P", 24 * 14, to="CTR-A")),
            ("nurse.a", step(A0, S.RECEIVED, "CTR-A", 24 * 15)),
            ("nurse.a", step(A0, S.STORED, "CTR-A", 24 * 15 + 1)),
        ]
        records = [command_record(cmd, actor=who, token=tokens[who]) for who, cmd in sent]
        assert len({r["key"] for _, r in records}) == 1  # one COI: one partition, in order
        await produce(kafka, [r for _, r in records])

        await eventually(pool, "SELECT count(*) FROM manufacturing.events WHERE stream_id = $1",
                         f"coi-{COI}", expect=11, timeout=60)
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
            ("analyst.p", A0, "qc_results_recorded", "GMP-P", "qc_analyst"),
            ("analyst.p", B0, "qc_results_recorded", "GMP-P", "qc_analyst"),
            ("operator.p", A0, "shipped", "GMP-P", "operator"),
            ("nurse.a", A0, "received", "CTR-A", "nurse"),
            ("nurse.a", A0, "stored", "CTR-A", "nurse"),
        ]
        released = [json.loads(r["payload"]) for r in rows if r["event_type"] == "manufacturing.ProductReleased"]
        assert [p["facility_id"] for p in released] == ["GMP-P"]
        ids = {str(env.command_id): n for n, (env, _) in enumerate(records)}
        codes = {ids[p["command_id"]]: p["reason_code"] for p in map(lambda r: json.loads(r["payload"]), rejected)
                 if p["command_id"] in ids}
        assert codes == {2: "NOT_HOLDER", 3: "FORBIDDEN", 8: "ROLE_NOT_PERMITTED", 9: "RELEASE_BEFORE_QC",
                         12: "WRONG_IDENTIFIER"}
