"""`celltrail audit` against real PostgreSQL: a subject's trail holds its records, a refusal,
a correction with its reason and what it supersedes, and a signature shown with the record it
signs; only an auditor or an administrator may read it (issue 8 item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.commands import CorrectResponseAssessment, RecordResponseAssessment, SignRecord
from contracts.envelope import CommandEnvelope
from infra.runtime.access.principals import Principal
from infra.runtime.access.refusals import PgRefusals, Refusal
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem
from infra.runtime.eventstore import EventStore
from infra.runtime.signing import SignatureRefused, Signatures, load_record
from services.assessment import bootstrap as assessment
from services.assessment.adapters.infusions import PgInfusions
from services.manufacturing.adapters.records import record_resource
from tests.integration.test_signatures import PASSWORD, SUBJECT, released, seed_access

pytestmark = pytest.mark.integration

KEY = generate_signing_key()


async def command(conn, payload, actor: str) -> None:
    """Apply a command as the assessment service's consumer does: its wired handler, in a transaction."""
    env = CommandEnvelope.wrap(payload, actor=actor)
    async with conn.transaction():
        await assessment.spec().command_handlers[payload.command_type](conn, env, payload)


def assessment_on(blasts: float) -> dict:
    return dict(subject_id=SUBJECT, assessed_on=date(2025, 4, 1), marrow_blasts_percent=blasts,
                circulating_blasts=False, extramedullary_disease=False, anc_per_ul=2500, platelets_per_ul=150_000)


@pytest.fixture
async def history(pool) -> dict[str, str]:
    """A release signed by its QP after one wrong password, an assessment and its correction."""
    async with pool.acquire() as conn:
        await seed_access(conn)
        access = PgAccessStore(conn)
        await access.add_organisation("NETWORK", OrgKind.NETWORK, "the network", actor="test")
        await access.add_principal("aud.rossi", PrincipalKind.PERSON, "Carla Rossi", actor="test")
        await access.grant("aud.rossi", "NETWORK", Role.AUDITOR, actor="test")
        release = await released(conn, SUBJECT, "W0001250000011", "LOT-1")
        qp = await access.principal("qp.bianchi")
        record = await load_record(conn, EventStore("manufacturing"), uuid.UUID(release))
        await PgInfusions(conn).add(SUBJECT, 1, datetime(2025, 3, 4, 10, tzinfo=timezone.utc))
        await command(conn, RecordResponseAssessment(**assessment_on(1.0)), actor="dr.rossi")
        await command(conn, CorrectResponseAssessment(**assessment_on(12.0), reason="blasts transcribed as 1.0"),
                      actor="dr.rossi")
    signer = Signatures("manufacturing", pool, EventStore("manufacturing"), record_resource)
    cmd = SignRecord(record_event_id=release, record_hash=record.content_hash, meaning="approval")
    with pytest.raises(SignatureRefused):
        await signer.sign(qp, cmd, "not my password")
    await signer.sign(qp, cmd, PASSWORD)
    async with pool.acquire() as conn:
        # what the HTTP edge writes when it refuses a request about the subject (infra.runtime.edge)
        await PgRefusals(conn).record(Refusal(
            "projection", "GET", "/subjects/{subject_id}", f"/subjects/{SUBJECT}", 403, "FORBIDDEN",
            "nurse.x may read_subject only as nurse at C-OTHER", "nurse.x", "bearer", subject_id=SUBJECT))
    return {"release": release}


def token(principal_id: str, key: str = KEY) -> str:
    return TokenIssuer(key).issue(Principal(principal_id, PrincipalKind.PERSON, principal_id)).token


def audit(*args: str, database_url: str, home: Path, token_: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
    env.update(DATABASE_URL=database_url, CELLTRAIL_HOME=str(home), CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(KEY))
    if token_:
        env["CELLTRAIL_TOKEN"] = token_
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", "audit", *args], env=env, capture_output=True,
                          text=True, timeout=60)


class TestSubjectTrail:
    @pytest.fixture
    def trail(self, history, database_url, tmp_path) -> dict:
        res = audit("--subject", SUBJECT, "--json", database_url=database_url, home=tmp_path,
                    token_=token("aud.rossi"))
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    def test_it_holds_records_a_refusal_a_correction_and_a_signature_in_time_order(self, trail):
        kinds = [e["kind"] for e in trail["entries"]]
        assert {"record", "refusal", "correction", "signature"} <= set(kinds)
        times = [e["recorded_at"] for e in trail["entries"]]
        assert times == sorted(times)

    def test_a_request_refused_at_the_http_edge_is_in_the_trail(self, trail):
        edge = [e for e in trail["entries"] if e["event_type"] == "http.RequestRefused"]
        assert len(edge) == 1
        assert edge[0]["kind"] == "refusal" and edge[0]["actor"] == "nurse.x" and edge[0]["service"] == "projection"
        assert edge[0]["what"] == f"GET /subjects/{SUBJECT} refused (403)"
        assert edge[0]["why"].startswith("FORBIDDEN: nurse.x may read_subject")
        assert [e["recorded_at"] for e in trail["entries"]] == sorted(e["recorded_at"] for e in trail["entries"])

    def test_the_refusal_says_who_was_refused_what_and_why(self, trail):
        [refusal] = [e for e in trail["entries"] if e["event_type"] == "common.CommandRejected"]
        assert (refusal["actor"], refusal["printed_name"], refusal["what"]) == (
            "qp.bianchi", "Giulia Bianchi", "SignRecord refused")
        assert refusal["why"].startswith("SIGNATURE_PASSWORD_WRONG: ")
        assert refusal["actor_roles_now"] == ["qualified_person@FAC-1"]

    def test_the_correction_gives_its_reason_and_the_record_it_supersedes_which_stays(self, trail):
        [original] = [e for e in trail["entries"] if e["event_type"] == "assessment.ResponseAssessed"]
        [correction] = [e for e in trail["entries"] if e["kind"] == "correction"]
        assert correction["why"] == "blasts transcribed as 1.0"
        assert correction["supersedes"] == [original["event_id"]]
        assert (original["payload"]["marrow_blasts_percent"], correction["payload"]["marrow_blasts_percent"]) == (
            1.0, 12.0)

    def test_the_signed_record_shows_its_signature_and_the_signature_its_role(self, trail, history):
        [release] = [e for e in trail["entries"] if e["event_id"] == history["release"]]
        [shown] = release["signatures"]
        assert (shown["printed_name"], shown["meaning"], shown["role"]) == (
            "Giulia Bianchi", "approval", "qualified_person")
        [signature] = [e for e in trail["entries"] if e["kind"] == "signature"]
        assert (signature["role"], signature["printed_name"]) == ("qualified_person@FAC-1", "Giulia Bianchi")

    def test_the_text_form_shows_the_manifestation_with_the_record(self, history, database_url, tmp_path):
        res = audit("--subject", SUBJECT, database_url=database_url, home=tmp_path, token_=token("aud.rossi"))
        assert res.returncode == 0, res.stderr
        text = res.stdout
        assert "signed: Giulia Bianchi, " in text and ", approval (qp.bianchi, qualified_person at FAC-1)" in text
        assert "why: blasts transcribed as 1.0" in text and "why: SIGNATURE_PASSWORD_WRONG" in text

    async def test_reading_the_trail_is_itself_logged(self, trail, pool):
        rows = await pool.fetch("SELECT actor, detail FROM access.audit_log WHERE change = 'audit_trail_read'")
        assert [(r["actor"], json.loads(r["detail"])) for r in rows] == [("aud.rossi", {"subject": SUBJECT})]


class TestCoiTrail:
    def test_the_cois_records_their_signature_and_the_refusal_naming_them(self, history, database_url, tmp_path):
        res = audit("--coi", "W0001250000011", "--json", database_url=database_url, home=tmp_path,
                    token_=token("aud.rossi"))
        assert res.returncode == 0, res.stderr
        entries = json.loads(res.stdout)["entries"]
        assert [e["event_type"] for e in entries] == ["manufacturing.ApheresisCollected",
                                                      "manufacturing.ProductReleased", "common.CommandRejected",
                                                      "common.RecordSigned"]


    def test_the_coi_may_be_typed_as_on_the_label(self, history, database_url, tmp_path):
        res = audit("--coi", "W0001 25 000001 1", "--json", database_url=database_url, home=tmp_path,
                    token_=token("aud.rossi"))
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["query"] == {"coi": "W0001250000011"}

    def test_a_mistyped_coi_is_refused_in_one_line_saying_so(self, history, database_url, tmp_path):
        res = audit("--coi", "W0001250000012", database_url=database_url, home=tmp_path, token_=token("aud.rossi"))
        assert res.returncode == 1 and res.stderr.count("\n") == 1
        assert "check character '2' does not match W000125000001 (expected '1')" in res.stderr


class TestWhoMayRead:
    @pytest.mark.parametrize("who", ["qp.bianchi", "qc.neri"])
    def test_anyone_but_an_auditor_or_administrator_is_refused_in_one_line(self, history, database_url, tmp_path,
                                                                           who):
        res = audit("--subject", SUBJECT, database_url=database_url, home=tmp_path, token_=token(who))
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr.count("\n") == 1 and f"{who} may not read the audit trail" in res.stderr

    def test_without_a_token_one_line_says_how_to_get_one(self, history, database_url, tmp_path):
        res = audit("--subject", SUBJECT, database_url=database_url, home=tmp_path, token_=None)
        assert res.returncode == 1 and "celltrail access token" in res.stderr and res.stderr.count("\n") == 1

    def test_a_forged_token_is_refused(self, history, database_url, tmp_path):
        res = audit("--subject", SUBJECT, database_url=database_url, home=tmp_path,
                    token_=token("aud.rossi", generate_signing_key()))
        assert res.returncode == 1 and "the token is refused" in res.stderr
