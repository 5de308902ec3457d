"""CellTrail issues chain-of-identity ids (issue 9 item 1, docs/identifiers.md) on a running
manufacturing service, real PostgreSQL and broker: under the FIN of the subject's centre,
in sequence, each with its check character; only the subject it was issued for may be
collected under it; only the subject's own centre's staff may have one issued."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timezone

import httpx
import pytest

from contracts import isbt128
from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access.store import AccessChangeRefused, PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem
from infra.runtime.host import build_app
from infra.runtime.settings import Settings
from services.manufacturing import bootstrap
from tests.conftest import signing_settings

pytestmark = pytest.mark.integration

KEY = generate_signing_key()
SUBJECT, OTHER, UNFINNED = "S-0000000000A1", "S-0000000000B2", "S-0000000000C3"
YEAR = datetime.now(timezone.utc).year % 100


@pytest.fixture
async def service(database_url, kafka, pool):
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        await store.add_organisation("CTR-BG", OrgKind.CENTRE, "Bergamo", actor="test", fin="G1234")
        await store.add_organisation("CTR-RM", OrgKind.CENTRE, "Roma", actor="test")  # no FIN
        for pid, org in (("nurse.bg", "CTR-BG"), ("nurse.rm", "CTR-RM")):
            await store.add_principal(pid, PrincipalKind.PERSON, pid, actor="test")
            await store.grant(pid, org, Role.NURSE, actor="test")
        await conn.execute(
            "INSERT INTO manufacturing.enrolled_subjects (subject_id, programme_id, centre_id, enrolled_on)"
            " VALUES ($1, 'CART-BALL-RR', 'CTR-BG', $4), ($2, 'CART-BALL-RR', 'CTR-BG', $4),"
            " ($3, 'CART-BALL-RR', 'CTR-RM', $4)", SUBJECT, OTHER, UNFINNED, date(2025, 3, 3))
    app = build_app(bootstrap.spec(), Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                               CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(KEY),
                                               **signing_settings("manufacturing")))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://manufacturing") as client:
        yield client


async def as_(pool, principal_id: str) -> dict[str, str]:
    async with pool.acquire() as conn:
        principal = await PgAccessStore(conn).principal(principal_id)
    return {"authorization": f"Bearer {TokenIssuer(KEY).issue(principal).token}"}


async def test_cois_are_issued_in_sequence_under_the_centres_fin_with_their_check_character(service, pool) -> None:
    nurse = await as_(pool, "nurse.bg")
    answers = [await service.post("/cois", json={"subject_id": s}, headers=nurse) for s in (SUBJECT, OTHER, SUBJECT)]
    assert [a.status_code for a in answers] == [201, 201, 201], answers[0].text
    issued = [a.json() for a in answers]
    assert [isbt128.parse(i["coi_id"]) for i in issued] == [isbt128.issue("G1234", YEAR, n) for n in (1, 2, 3)]
    assert issued[0]["label"] == isbt128.parse(issued[0]["coi_id"]).eye_readable
    rows = await pool.fetch("SELECT stream_id, stream_version, subject_id, centre_id, actor FROM manufacturing.events"
                            " WHERE event_type = 'manufacturing.CoiIssued' ORDER BY position")
    assert [(r["stream_id"], r["stream_version"], r["subject_id"], r["centre_id"], r["actor"]) for r in rows] == [
        (f"coi-{i['coi_id']}", 1, s, "CTR-BG", "nurse.bg") for i, s in zip(issued, (SUBJECT, OTHER, SUBJECT))]


async def test_concurrent_issuers_never_draw_one_sequence_twice(service, pool) -> None:
    nurse = await as_(pool, "nurse.bg")
    for round_ in range(4):  # the race (one committing between another's draw and load) needs a few tries
        answers = await asyncio.gather(*(service.post("/cois", json={"subject_id": SUBJECT}, headers=nurse)
                                         for _ in range(8)))
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert sorted(isbt128.parse(a.json()["coi_id"]).sequence for a in answers) == list(
            range(8 * round_ + 1, 8 * round_ + 9))


async def test_a_centre_without_a_fin_is_told_how_to_get_one(service, pool) -> None:
    answer = await service.post("/cois", json={"subject_id": UNFINNED}, headers=await as_(pool, "nurse.rm"))
    assert answer.status_code == 409 and answer.json()["code"] == "NO_FIN"
    assert "--fin" in answer.json()["error"]


async def test_another_centres_staff_and_unknown_subjects_are_refused(service, pool) -> None:
    answer = await service.post("/cois", json={"subject_id": SUBJECT}, headers=await as_(pool, "nurse.rm"))
    assert answer.status_code == 403
    answer = await service.post("/cois", json={"subject_id": "S-00000000FFFF"}, headers=await as_(pool, "nurse.bg"))
    assert answer.status_code == 404 and answer.json()["code"] == "SUBJECT_NOT_ENROLLED"
    answer = await service.post("/cois", json={"subject_id": "S-1"}, headers=await as_(pool, "nurse.bg"))
    assert answer.status_code == 422


async def test_a_fin_is_one_letter_and_four_digits_and_belongs_to_one_organisation(pool) -> None:
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        await store.add_organisation("CTR-A", OrgKind.CENTRE, "A", actor="test", fin="A0001")
        with pytest.raises(AccessChangeRefused, match="must be one letter and four digits"):
            await store.add_organisation("CTR-B", OrgKind.CENTRE, "B", actor="test", fin="CTR-B")
        with pytest.raises(AccessChangeRefused, match="A0001 belongs to another organisation"):
            await store.add_organisation("CTR-C", OrgKind.CENTRE, "C", actor="test", fin="A0001")
        assert await store.fin_of("CTR-A") == "A0001" and await store.fin_of("CTR-NONE") is None
