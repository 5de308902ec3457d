"""Patient registration over enrollment's HTTP API, real PostgreSQL (issue 12 item 5): a date
of birth in the future is refused, a record number the centre already registered with
another name or date of birth is an identity conflict (never matched), the same person is
matched whatever the letter case; the body is read strictly, a date naming its form. Every
refusal is recorded (`access.refusals`) without an identifier."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import RegisterCentre
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem
from infra.runtime.eventstore import EventStore, Metadata
from infra.runtime.host import build_app
from infra.runtime.settings import Settings
from infra.runtime.streams import PgStreams
from services.enrollment import bootstrap
from services.enrollment.adapters.identity_crypto import Keyring
from services.enrollment.application import handlers
from tests.conftest import signing_settings

pytestmark = pytest.mark.integration

KEY = generate_signing_key()
CENTRE = "CTR-BG"
PATIENT = {"centre_id": CENTRE, "hospital_record_number": "MRN-5521", "family_name": "Bergamaschi",
           "given_name": "Ludovica", "date_of_birth": "1961-11-23", "registered_on": "2024-03-01"}
IDENTIFIERS = ("MRN-5521", "Bergamaschi", "Ludovica", "1961-11-23", "Brambilla", "1961-11-24")


@pytest.fixture
async def service(database_url, kafka, pool):
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        await store.add_organisation(CENTRE, OrgKind.CENTRE, "Bergamo", actor="test")
        await store.add_principal("nurse.bg", PrincipalKind.PERSON, "nurse.bg", actor="test")
        await store.grant("nurse.bg", CENTRE, Role.NURSE, actor="test")
        async with conn.transaction():
            await handlers.register_centre(RegisterCentre(centre_id=CENTRE, name="Bergamo", country="IT"), PgStreams(
                conn, EventStore("enrollment"), Metadata(correlation_id=uuid.uuid4(), causation_id=None,
                                                         actor="test")))
    app = build_app(bootstrap.spec(), Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                               CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(KEY),
                                               CELLTRAIL_IDENTITY_KEY=Keyring.generate("k1"),
                                               **signing_settings("enrollment")))
    async with pool.acquire() as conn:
        principal = await PgAccessStore(conn).principal("nurse.bg")
    headers = {"authorization": f"Bearer {TokenIssuer(KEY).issue(principal).token}"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://enrollment", headers=headers) as client:
        yield client


async def refusals(pool) -> list[dict]:
    return [dict(r) for r in await pool.fetch("SELECT code, reason, subject_id, status FROM access.refusals"
                                              " WHERE route = '/patients' ORDER BY position")]


async def identities(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM enrollment.patient_identity")


async def test_a_date_of_birth_in_the_future_is_refused_and_recorded_without_it(service, pool) -> None:
    born = (datetime.now(timezone.utc) + timedelta(days=3)).date().isoformat()
    answer = await service.post("/patients", json={**PATIENT, "date_of_birth": born})

    assert answer.status_code == 409 and answer.json()["code"] == "DATE_OF_BIRTH_IN_FUTURE", answer.text
    [refusal] = await refusals(pool)
    assert refusal["code"] == "DATE_OF_BIRTH_IN_FUTURE" and born not in refusal["reason"]
    assert await identities(pool) == 0


async def test_a_known_record_number_with_another_identity_is_a_conflict_never_a_match(service, pool) -> None:
    first = await service.post("/patients", json=PATIENT)
    assert first.status_code == 201, first.text
    subject_id = first.json()["subject_id"]

    for change in ({"family_name": "Brambilla"}, {"date_of_birth": "1961-11-24"}):
        answer = await service.post("/patients", json={**PATIENT, **change})
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == "IDENTITY_CONFLICT" and answer.json()["subject_id"] == subject_id

    recorded = await refusals(pool)
    assert [(r["code"], r["subject_id"], r["status"]) for r in recorded] == [("IDENTITY_CONFLICT", subject_id, 409)] * 2
    assert not any(i in r["reason"] for r in recorded for i in IDENTIFIERS)
    assert await identities(pool) == 1

    # the same person, the record number and names in another letter case: matched
    again = await service.post("/patients", json={**PATIENT, "hospital_record_number": "mrn-5521",
                                                  "family_name": "BERGAMASCHI"})
    assert (again.status_code, again.json()) == (200, {"subject_id": subject_id, "created": False})


async def test_a_date_not_in_its_form_is_422_naming_the_form_and_the_value(service, pool) -> None:
    answer = await service.post("/patients", json={**PATIENT, "registered_on": 20240301})

    assert answer.status_code == 422, answer.text
    assert answer.json()["details"] == [{
        "field": "registered_on", "error": "expected a date as YYYY-MM-DD (from 1900-01-01 to 2199-12-31), got 20240301"}]
    assert await identities(pool) == 0


@pytest.mark.parametrize("value", ["23/11/1961", "1961-11-23T00:00:00", 19611123])
async def test_a_date_of_birth_not_in_its_form_names_the_form_but_never_the_value(service, pool, value) -> None:
    """A date of birth is an identifier: the refusal is recorded and logged, so it says what
    kind of value came, not the value."""
    answer = await service.post("/patients", json={**PATIENT, "date_of_birth": value})

    assert answer.status_code == 422, answer.text
    [detail] = answer.json()["details"]
    assert detail["field"] == "date_of_birth" and "YYYY-MM-DD" in detail["error"]
    assert "not repeated here: an identifier" in detail["error"] and "1961" not in detail["error"]
    [refusal] = await refusals(pool)
    assert refusal["code"] == "INVALID_REQUEST" and "1961" not in refusal["reason"]


async def test_a_registration_as_json_natives_is_still_taken(service) -> None:
    answer = await service.post("/patients", json={**PATIENT, "registered_on": date(2024, 3, 1).isoformat()})
    assert answer.status_code == 201, answer.text
