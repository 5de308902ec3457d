"""Electronic signatures on a running manufacturing service (real PostgreSQL and broker):
bound to the content hash of the record they sign (21 CFR 11.70), only after the signer's
password (11.200(a)), only by a role the meaning needs (11.10(g); EU GMP Annex 16 §1), every
refusal recorded."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.events import ApheresisCollected, ProductReleased
from infra.runtime.access import credentials
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem
from infra.runtime.chain import CANONICAL_COLUMNS, canonical_event
from infra.runtime.eventstore import EventStore, Metadata, NewEvent
from infra.runtime.host import build_app
from infra.runtime.settings import Settings
from tests.conftest import signing_settings
from services.manufacturing import bootstrap

pytestmark = pytest.mark.integration

KEY = generate_signing_key()
PASSWORD = "correct horse battery staple"
SUBJECT, OTHER_SUBJECT = "S-0000000000A1", "S-0000000000B2"
STORE = EventStore("manufacturing")


async def seed_access(conn) -> None:
    s = PgAccessStore(conn)
    await s.add_organisation("CTR-BG", OrgKind.CENTRE, "Bergamo", actor="test")
    for fac in ("FAC-1", "FAC-2"):
        await s.add_organisation(fac, OrgKind.FACILITY, fac, actor="test")
    hashed = credentials.hash_password(PASSWORD)
    for pid, name, org, role in (("qp.bianchi", "Giulia Bianchi", "FAC-1", Role.QUALIFIED_PERSON),
                                 ("qp.verdi", "Paolo Verdi", "FAC-2", Role.QUALIFIED_PERSON),
                                 ("qc.neri", "Anna Neri", "FAC-1", Role.QC_ANALYST)):
        await s.add_principal(pid, PrincipalKind.PERSON, name, actor="test")
        await s.grant(pid, org, role, actor="test")
        await s.set_password(pid, hashed, actor="test")


async def released(conn, subject: str, coi: str, lot: str) -> str:
    """A collection and a release by FAC-1 in the manufacturing store; the release's event id."""
    at = datetime(2025, 3, 1, 9, tzinfo=timezone.utc)
    meta = Metadata(correlation_id=uuid.uuid4(), causation_id=None, actor="fac1-mes")
    async with conn.transaction():
        envs = await STORE.append(conn, f"coi-{coi}", 0, [
            NewEvent(ApheresisCollected(coi_id=coi, subject_id=subject, centre_id="CTR-BG", collected_at=at),
                     occurred_at=at, subject_id=subject, centre_id="CTR-BG"),
            NewEvent(ProductReleased(coi_id=coi, subject_id=subject, lot_number=lot, released_at=at,
                                     released_by="qp.bianchi", viable_cells_per_ml=2e6, volume_ml=50,
                                     facility_id="FAC-1"), occurred_at=at, subject_id=subject)], meta)
    return str(envs[1].event_id)


@pytest.fixture
async def records(pool) -> dict[str, str]:
    async with pool.acquire() as conn:
        await seed_access(conn)
        return {"release": await released(conn, SUBJECT, "W0001250000011", "LOT-1"),
                "other": await released(conn, OTHER_SUBJECT, "W000125000002*", "LOT-2")}


@pytest.fixture
async def service(database_url, kafka, records):
    app = build_app(bootstrap.spec(), Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                               CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(KEY),
                                               **signing_settings("manufacturing")))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://manufacturing") as client:
        yield client


async def bearer(pool, principal_id: str) -> dict[str, str]:
    async with pool.acquire() as conn:
        principal = await PgAccessStore(conn).principal(principal_id)
    return {"authorization": f"Bearer {TokenIssuer(KEY).issue(principal).token}"}


async def shown(service, pool, event_id: str, who: str = "qp.bianchi") -> dict:
    response = await service.get(f"/records/{event_id}", headers=await bearer(pool, who))
    assert response.status_code == 200, response.text
    return response.json()


async def sign(service, pool, event_id: str, record_hash: str, *, who: str = "qp.bianchi",
               meaning: str = "approval", password: str | None = PASSWORD) -> httpx.Response:
    body = {"record_event_id": event_id, "record_hash": record_hash, "meaning": meaning}
    if password is not None:
        body["password"] = password
    return await service.post("/signatures", json=body, headers=await bearer(pool, who))


async def rejections(pool) -> list[dict]:
    rows = await pool.fetch("SELECT subject_id, actor, payload FROM manufacturing.events"
                            " WHERE event_type = 'common.CommandRejected' ORDER BY position")
    return [{"subject_id": r["subject_id"], "actor": r["actor"], **json.loads(r["payload"])} for r in rows]


async def signatures(pool) -> list[dict]:
    rows = await pool.fetch("SELECT payload FROM manufacturing.events WHERE event_type = 'common.RecordSigned'")
    return [json.loads(r["payload"]) for r in rows]


class TestBinding:
    async def test_the_hash_shown_is_sha256_of_the_records_canonical_encoding(self, service, pool, records):
        row = await pool.fetchrow(f"SELECT {CANONICAL_COLUMNS} FROM manufacturing.events WHERE event_id = $1",
                                  uuid.UUID(records["release"]))
        assert (await shown(service, pool, records["release"]))["content_hash"] == \
            hashlib.sha256(canonical_event(row)).hexdigest()

    async def test_a_qualified_person_approves_the_release_with_the_hash_and_the_password(self, service, pool,
                                                                                        records):
        record_hash = (await shown(service, pool, records["release"]))["content_hash"]

        response = await sign(service, pool, records["release"], record_hash)

        assert response.status_code == 201, response.text
        [signature] = await signatures(pool)
        assert (signature["signer"], signature["printed_name"], signature["meaning"], signature["role"],
                signature["org_id"], signature["record_event_id"], signature["record_hash"]) == (
            "qp.bianchi", "Giulia Bianchi", "approval", "qualified_person", "FAC-1", records["release"], record_hash)
        manifest = (await shown(service, pool, records["release"]))["signatures"]
        assert [(m["printed_name"], m["meaning"]) for m in manifest] == [("Giulia Bianchi", "approval")]
        assert manifest[0]["signed_at"].endswith("+00:00")

    async def test_a_signature_copied_to_another_record_is_refused_and_recorded(self, service, pool, records):
        record_hash = (await shown(service, pool, records["release"]))["content_hash"]
        assert (await sign(service, pool, records["release"], record_hash)).status_code == 201

        response = await sign(service, pool, records["other"], record_hash)

        assert response.status_code == 409 and response.json()["code"] == "RECORD_HASH_MISMATCH"
        assert len(await signatures(pool)) == 1
        [rejected] = await rejections(pool)
        assert (rejected["reason_code"], rejected["command_type"], rejected["subject_id"], rejected["actor"]) == (
            "RECORD_HASH_MISMATCH", "SignRecord", OTHER_SUBJECT, "qp.bianchi")

    async def test_a_record_changed_after_it_was_shown_is_not_signed(self, service, pool, records):
        record_hash = (await shown(service, pool, records["release"]))["content_hash"]
        async with pool.acquire() as conn:  # a superuser's edit past the triggers
            await conn.execute("SET session_replication_role = replica")
            await conn.execute("UPDATE manufacturing.events SET payload = jsonb_set(payload, '{volume_ml}', '60')"
                               " WHERE event_id = $1", uuid.UUID(records["release"]))

        response = await sign(service, pool, records["release"], record_hash)

        assert response.status_code == 409 and response.json()["code"] == "RECORD_HASH_MISMATCH"


class TestReauthentication:
    async def test_a_token_alone_does_not_sign(self, service, pool, records):
        record_hash = (await shown(service, pool, records["release"]))["content_hash"]

        response = await sign(service, pool, records["release"], record_hash, password=None)

        assert response.status_code == 401 and response.json()["code"] == "SIGNATURE_PASSWORD_REQUIRED"
        assert "insufficient_user_authentication" in response.headers["www-authenticate"]
        assert await signatures(pool) == []
        assert [r["reason_code"] for r in await rejections(pool)] == ["SIGNATURE_PASSWORD_REQUIRED"]

    async def test_a_wrong_password_is_refused_and_recorded_in_the_store_and_the_access_log(self, service, pool,
                                                                                          records):
        record_hash = (await shown(service, pool, records["release"]))["content_hash"]

        response = await sign(service, pool, records["release"], record_hash, password="wrong horse battery")

        assert response.status_code == 401 and response.json()["code"] == "SIGNATURE_PASSWORD_WRONG"
        assert await signatures(pool) == []
        [rejected] = await rejections(pool)
        assert (rejected["reason_code"], rejected["subject_id"]) == ("SIGNATURE_PASSWORD_WRONG", SUBJECT)
        assert "wrong horse" not in json.dumps(rejected)
        log = await pool.fetch("SELECT change, detail FROM access.audit_log WHERE change LIKE 'signing%'")
        assert [(r["change"], json.loads(r["detail"])["record_event_id"]) for r in log] == [
            ("signing_password_refused", records["release"])]


class TestAuthority:
    async def test_a_qualified_person_of_another_facility_cannot_approve(self, service, pool, records):
        record_hash = (await shown(service, pool, records["release"], who="qp.bianchi"))["content_hash"]

        response = await sign(service, pool, records["release"], record_hash, who="qp.verdi")

        assert response.status_code == 403 and response.json()["code"] == "SIGNER_NOT_AUTHORISED"
        assert [r["reason_code"] for r in await rejections(pool)] == ["SIGNER_NOT_AUTHORISED"]

    async def test_a_qc_analyst_reviews_but_does_not_approve(self, service, pool, records):
        record_hash = (await shown(service, pool, records["release"], who="qc.neri"))["content_hash"]

        assert (await sign(service, pool, records["release"], record_hash, who="qc.neri")).status_code == 403
        assert (await sign(service, pool, records["release"], record_hash, who="qc.neri",
                           meaning="review")).status_code == 201

    async def test_the_same_signer_and_meaning_twice_is_refused(self, service, pool, records):
        record_hash = (await shown(service, pool, records["release"]))["content_hash"]
        assert (await sign(service, pool, records["release"], record_hash)).status_code == 201

        response = await sign(service, pool, records["release"], record_hash)

        assert response.status_code == 409 and response.json()["code"] == "ALREADY_SIGNED"


class TestManifestationInTheProjection:
    async def test_the_projected_release_shows_its_signature(self, service, pool, records):
        from contracts.registry import parse_event
        from services.projection.adapters.outcomes import StoredOutcomes
        from services.projection.adapters.read_models import PgReadModels
        from services.projection.application.handlers import project_batch

        record_hash = (await shown(service, pool, records["release"]))["content_hash"]
        assert (await sign(service, pool, records["release"], record_hash)).status_code == 201
        async with pool.acquire() as conn, conn.transaction():
            envelopes = await STORE.read_range(conn, 0, 10 ** 9, 1000)
            await project_batch(PgReadModels(conn), StoredOutcomes(conn, EventStore("projection")),
                                [(e, parse_event(e)) for e in envelopes])
            view = (await PgReadModels(conn).get(SUBJECT)).to_json()

        [entry] = [t for t in view["timeline"] if t["event_type"] == "manufacturing.ProductReleased"]
        [signature] = entry["signatures"]
        assert (signature["printed_name"], signature["meaning"]) == ("Giulia Bianchi", "approval")
        assert signature["signed_at"].endswith("+00:00")
