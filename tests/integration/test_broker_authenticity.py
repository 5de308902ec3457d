"""Nothing unauthenticated reaches the record through the broker (issue 8, item 4), on real
services (manufacturing and infusion, each a real service host), a real broker and real
PostgreSQL: records produced straight onto the event topics and the command topics, as the
issue's author did, are refused or dead-lettered and change no store; the genuine path works.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest

from contracts import isbt128, topics
from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import RecordApheresisCollection, RecordInfusion, RecordProductRelease
from contracts.envelope import CommandEnvelope
from contracts.events import ProductReleased, SubjectEnrolled
from infra.runtime.access.signing import RecordSigner
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem
from infra.runtime.host import build_app
from infra.runtime.messaging import ensure_topics, new_producer
from infra.runtime.relay import encode_event, kafka_headers
from infra.runtime.settings import Settings
from infra.tooling.access import CLI_PRINCIPAL, ensure_cli_principal
from services.infusion import bootstrap as infusion
from services.manufacturing import bootstrap as manufacturing
from tests.conftest import TEST_SERVICE_KEYS, signing_settings
from tests.integration.test_consumer import dead_letters
from tests.unit.services.fakes import envelope

pytestmark = pytest.mark.integration

TOKEN_KEY = generate_signing_key()
NOW = datetime(2025, 3, 3, 9, tzinfo=timezone.utc)


def subject(n: int) -> str:
    return f"S-{n:012X}"


def coi(n: int) -> str:
    return str(isbt128.issue("W0002", 2025, n))


def forged_coi(n: int) -> str:
    return str(isbt128.issue("W0001", 2025, n))


def event_record(topic: str, payload, *, signer: str | None, tamper: bool = False) -> dict:
    """An event as a relay publishes it, signed by `signer` (None: unsigned); `tamper`
    changes the value after signing."""
    env = envelope(payload, subject_id=payload.subject_id, occurred_at=NOW)
    value = encode_event(env)
    headers = kafka_headers(env)
    if signer is not None:
        headers += RecordSigner(signer, TEST_SERVICE_KEYS[signer]).headers(topic, env.key, value)
    if tamper:
        value = value.replace(b'"volume_ml":50.0', b'"volume_ml":500.0')
        assert b"500.0" in value
    return {"topic": topic, "value": value, "key": env.key, "headers": headers}


def command_record(command, *, actor: str, token: str | None) -> tuple[CommandEnvelope, dict]:
    env = CommandEnvelope.wrap(command, actor=actor, credential=token)
    return env, {"topic": command.topic, "value": env.model_dump_json().encode(), "key": env.key}


@pytest.fixture
async def principals(pool) -> dict[str, str]:
    """A nurse of centre CTR-A, and the CLI (the data loader); their tokens."""
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        for org in ("CTR-A", "CTR-B"):
            await store.add_organisation(org, OrgKind.CENTRE, f"Centre {org}", actor="test")
        await store.add_principal("nurse.a", PrincipalKind.PERSON, "Anna Nurse", actor="test")
        await store.grant("nurse.a", "CTR-A", Role.NURSE, actor="test")
        await ensure_cli_principal(store)
        issuer = TokenIssuer(TOKEN_KEY)
        return {p: issuer.issue(await store.principal(p)).token for p in ("nurse.a", CLI_PRINCIPAL)}


@pytest.fixture
async def services(database_url, kafka, pool):
    """Manufacturing and infusion, each a real service host with its own signing key; the
    clients call as the CLI (its roles include reading a service's /status)."""
    await ensure_topics(kafka, 3)
    async with pool.acquire() as conn:
        store = PgAccessStore(conn)
        await ensure_cli_principal(store)
        cli = {"Authorization": f"Bearer {TokenIssuer(TOKEN_KEY).issue(await store.principal(CLI_PRINCIPAL)).token}"}
    clients = {}
    apps = []
    for bootstrap in (manufacturing, infusion):
        spec = bootstrap.spec()
        app = build_app(spec, Settings(DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
                                       CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(TOKEN_KEY),
                                       CELLTRAIL_RELAY_POLL_SECONDS=0.05, **signing_settings(spec.name)))
        apps.append(app)
    async with apps[0].router.lifespan_context(apps[0]), apps[1].router.lifespan_context(apps[1]):
        for name, app in zip(("manufacturing", "infusion"), apps):
            clients[name] = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}",
                                              headers=cli)
        for _ in range(600):  # until both consumers hold their partitions
            if all([(await c.get("/status")).status_code == 200 for c in clients.values()]):
                break
            await asyncio.sleep(0.1)
        yield clients
        for c in clients.values():
            await c.aclose()


async def produce(kafka: str, records: list[dict]) -> None:
    producer = new_producer(kafka)
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(r["topic"], value=r["value"], key=r["key"], headers=r.get("headers"))
    finally:
        await producer.stop()


async def eventually(pool, sql: str, *args, expect, timeout: float = 30):
    value = None
    for _ in range(int(timeout / 0.1)):
        async with pool.acquire() as conn:
            value = await conn.fetchval(sql, *args)
        if value == expect:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"{sql} {args}: {value!r}, expected {expect!r}")


def released(n: int) -> ProductReleased:
    return ProductReleased(coi_id=forged_coi(n), subject_id=subject(n), lot_number=f"LOT-{n}", released_at=NOW,
                           released_by="QP", viable_cells_per_ml=2e6, volume_ml=50)


def enrolled(n: int, centre: str = "CTR-A") -> SubjectEnrolled:
    return SubjectEnrolled(subject_id=subject(n), programme_id="CART-BALL-RR", centre_id=centre,
                           enrolled_on=date(2025, 3, 3))


def collection(n: int, centre: str = "CTR-A") -> RecordApheresisCollection:
    return RecordApheresisCollection(coi_id=coi(n), subject_id=subject(n), centre_id=centre,
                                     collected_at=NOW + timedelta(days=1))


class TestForgedEvents:
    async def test_only_events_signed_by_their_topics_owner_are_applied_the_rest_dead_lettered(
            self, services, kafka, pool) -> None:
        m = topics.MANUFACTURING_EVENTS
        await produce(kafka, [
            event_record(m, released(1), signer=None),  # unsigned
            event_record(m, released(2), signer="enrollment"),  # signed by a service that does not own the topic
            event_record(m, released(3), signer="manufacturing", tamper=True),  # altered after signing
            event_record(m, released(4), signer="manufacturing"),  # genuine
            event_record(topics.ENROLLMENT_EVENTS, enrolled(5), signer=None),  # a forged enrolment
            event_record(topics.ENROLLMENT_EVENTS, enrolled(6), signer="enrollment"),  # genuine
        ])
        await eventually(pool, "SELECT count(*) FROM infusion.released_products", expect=1)
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects", expect=1)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT coi_id FROM infusion.released_products") == forged_coi(4)
            assert await conn.fetchval("SELECT subject_id FROM manufacturing.enrolled_subjects") == subject(6)
        # the forged enrolment is refused by both its consumers, manufacturing and infusion
        dead = await dead_letters(kafka, 5, timeout=30)
        reasons = sorted(dict(r.headers)[topics.HEADER_DLQ_REASON].decode() for r in dead)
        assert reasons == [
            "unauthentic event: not signed (topic celltrail.enrollment.v1 takes only events signed by enrollment)",
            "unauthentic event: not signed (topic celltrail.enrollment.v1 takes only events signed by enrollment)",
            "unauthentic event: not signed (topic celltrail.manufacturing.v1 takes only events signed by "
            "manufacturing)",
            "unauthentic event: signed as 'enrollment', but topic celltrail.manufacturing.v1 is manufacturing's",
            "unauthentic event: the signature of manufacturing does not verify (forged or altered)",
        ]
        status = (await services["infusion"].get("/status")).json()
        assert status["consumer"]["refused_unauthentic"] == 4


class TestForgedCommands:
    async def refusals(self, pool, n: int) -> dict[str, tuple[str, str, str]]:
        await eventually(pool, "SELECT count(*) FROM manufacturing.events WHERE event_type = 'common.CommandRejected'",
                         expect=n)
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT payload, actor FROM manufacturing.events"
                                    " WHERE event_type = 'common.CommandRejected'")
        out = {}
        for r in rows:
            p = json.loads(r["payload"])
            out[p["command_id"]] = (p["reason_code"], p["reason"], r["actor"])
        return out

    async def test_commands_without_a_valid_credential_or_outside_the_callers_scope_are_refused_and_recorded(
            self, services, kafka, pool, principals) -> None:
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(n), signer="enrollment")
                              for n in range(10, 17)])
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects", expect=7)
        expired = TokenIssuer(TOKEN_KEY, ttl=timedelta(minutes=1)).issue(
            _nurse(), now=datetime.now(timezone.utc) - timedelta(hours=1)).token
        forged = TokenIssuer(generate_signing_key()).issue(_nurse()).token
        nurse = principals["nurse.a"]
        sent = [
            command_record(collection(10), actor="nurse.a", token=None),
            command_record(collection(11), actor="nurse.a", token=forged),
            command_record(collection(12), actor="nurse.a", token=expired),
            command_record(collection(13), actor=CLI_PRINCIPAL, token=nurse),  # someone else's token
            command_record(collection(14, centre="CTR-B"), actor="nurse.a", token=nurse),  # another centre
            command_record(RecordProductRelease(coi_id=coi(16), subject_id=subject(16), lot_number="L",
                                                released_at=NOW, released_by="QP", viable_cells_per_ml=1e6,
                                                volume_ml=50), actor="nurse.a", token=nurse),  # not a QP
            command_record(collection(15), actor="nurse.a", token=nurse),  # genuine
        ]
        await produce(kafka, [record for _, record in sent])
        refusals = await self.refusals(pool, 6)
        ids = [str(env.command_id) for env, _ in sent]
        assert refusals[ids[0]][:2] == ("UNAUTHENTICATED", "the command carries no credential (a token of actor as "
                                                          "`credential`)")
        assert refusals[ids[1]][0] == "UNAUTHENTICATED" and "Signature verification failed" in refusals[ids[1]][1]
        assert refusals[ids[2]][:2] == ("UNAUTHENTICATED", "the token has expired")
        assert refusals[ids[3]][:2] == ("UNAUTHENTICATED",
                                        "the command names actor celltrail-cli, but its token is nurse.a's")
        assert refusals[ids[4]][:2] == ("FORBIDDEN", "nurse.a may write_subject only as nurse at CTR-A (own_centre), "
                                                     "not for a resource of centre CTR-B")
        assert refusals[ids[5]][:2] == ("FORBIDDEN", "no role of nurse.a grants release_product")
        # an unauthenticated claim is recorded as the service's, a verified one as the principal's
        assert [refusals[i][2] for i in ids[:6]] == ["manufacturing"] * 4 + ["nurse.a"] * 2
        await eventually(pool, "SELECT count(*) FROM manufacturing.events WHERE event_type ="
                               " 'manufacturing.ApheresisCollected'", expect=1)
        async with pool.acquire() as conn:
            row = await conn.fetchrow("SELECT subject_id, actor FROM manufacturing.events"
                                      " WHERE event_type = 'manufacturing.ApheresisCollected'")
        assert (row["subject_id"], row["actor"]) == (subject(15), "nurse.a")

    async def test_the_cli_as_data_loader_may_record_a_release(self, services, kafka, pool, principals) -> None:
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(20), signer="enrollment")])
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects", expect=1)
        cli = principals[CLI_PRINCIPAL]
        await produce(kafka, [command_record(collection(20), actor=CLI_PRINCIPAL, token=cli)[1],
                              command_record(RecordProductRelease(
                                  coi_id=coi(20), subject_id=subject(20), lot_number="L", released_at=NOW
                                  + timedelta(days=20), released_by="QP", viable_cells_per_ml=1e6, volume_ml=50),
                                  actor=CLI_PRINCIPAL, token=cli)[1]])
        # released by manufacturing, published signed by its relay, applied by infusion
        await eventually(pool, "SELECT count(*) FROM infusion.released_products", expect=1)


    async def test_a_nurse_records_the_infusion_of_her_own_centres_subject_only(
            self, services, kafka, pool, principals) -> None:
        """Infusion knows each subject's centre from enrollment's events (issue 8 item 3): the
        guard admits the nurse's infusion of her own centre's subject, which infusion then
        judges (a product without labelled units is not infused by a person: no bag was
        checked at the bedside, issue 9), and refuses the other centre's at the door."""
        await produce(kafka, [event_record(topics.ENROLLMENT_EVENTS, enrolled(30), signer="enrollment"),
                              event_record(topics.ENROLLMENT_EVENTS, enrolled(31, "CTR-B"), signer="enrollment")])
        await eventually(pool, "SELECT count(*) FROM infusion.subject_centres", expect=2)
        await eventually(pool, "SELECT count(*) FROM manufacturing.enrolled_subjects", expect=2)
        cli, nurse = principals[CLI_PRINCIPAL], principals["nurse.a"]
        await produce(kafka, [command_record(c, actor=CLI_PRINCIPAL, token=cli)[1] for n, centre in
                              ((30, "CTR-A"), (31, "CTR-B")) for c in (collection(n, centre), release(n))])
        await eventually(pool, "SELECT count(*) FROM infusion.released_products", expect=2)
        own, other = (command_record(RecordInfusion(subject_id=subject(n), coi_id=coi(n),
                                                    infused_at=NOW + timedelta(days=30)),
                                     actor="nurse.a", token=nurse) for n in (30, 31))
        await produce(kafka, [own[1], other[1]])
        await eventually(pool, "SELECT count(*) FROM infusion.events WHERE event_type = 'common.CommandRejected'",
                         expect=2)
        async with pool.acquire() as conn:
            refused = {p["command_id"]: p for p in (json.loads(r["payload"]) for r in await conn.fetch(
                "SELECT payload FROM infusion.events WHERE event_type = 'common.CommandRejected'"))}
            infused = await conn.fetchval("SELECT count(*) FROM infusion.events"
                                          " WHERE event_type = 'infusion.ProductInfused'")
        assert infused == 0
        assert refused[str(own[0].command_id)]["reason_code"] == "BEDSIDE_CHECK_REQUIRED"  # admitted, then judged
        assert (refused[str(other[0].command_id)]["reason_code"], refused[str(other[0].command_id)]["reason"]) == (
            "FORBIDDEN",
            "nurse.a may write_subject only as nurse at CTR-A (own_centre), not for a resource of centre CTR-B")


def release(n: int) -> RecordProductRelease:
    return RecordProductRelease(coi_id=coi(n), subject_id=subject(n), lot_number=f"L{n}",
                                released_at=NOW + timedelta(days=20), released_by="QP", viable_cells_per_ml=1e6,
                                volume_ml=50)


def _nurse():
    from infra.runtime.access.principals import Membership, Principal

    return Principal("nurse.a", PrincipalKind.PERSON, "Anna Nurse", (Membership("CTR-A", OrgKind.CENTRE, Role.NURSE),))
