"""Identifying data at rest (issue 8, item 8), on a real migrated database: the identity table
holds no identifier in plaintext, erasure leaves every event row byte-identical and the
subject's projected view unchanged while making the identity unrecoverable, old plaintext
rows and old keys are moved by `celltrail identities encrypt`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import date

import pytest

from contracts.commands import EnrollSubject, EraseIdentity, PublishProgramme, RegisterCentre, RegisterPatient
from infra.tooling.programmes import bundled
from tests.unit.services.fakes import IMPORTER
from contracts.registry import parse_event
from infra.runtime.eventstore import EventStore, Metadata
from infra.runtime.streams import PgStreams
from services.enrollment.adapters.identities import PgIdentities
from services.enrollment.adapters.identity_crypto import IdentityUnreadable, Keyring
from services.enrollment.application import handlers
from services.enrollment.application.ports import Identity
from services.projection.adapters.read_models import PgReadModels
from services.projection.application.handlers import project_batch
from tests.unit.services.fakes import FakeOutcomes

pytestmark = pytest.mark.integration

SCHEMAS = ("enrollment", "manufacturing", "infusion", "assessment", "projection")
CENTRE = "OSR-MILANO"
PATIENT = RegisterPatient(centre_id=CENTRE, hospital_record_number="MRN-7731", family_name="Bergamaschi",
                          given_name="Ludovica", date_of_birth=date(1961, 11, 23), registered_on=date(2024, 3, 1))
IDENTIFIERS = ("MRN-7731", "Bergamaschi", "Ludovica", "1961-11-23")
KEYRING_TEXT = Keyring.generate("k1")
KEYRING = Keyring.parse(KEYRING_TEXT)


def streams(conn) -> PgStreams:
    return PgStreams(conn, EventStore("enrollment"), Metadata(correlation_id=uuid.uuid4(), causation_id=None,
                                                              actor="test"))


@pytest.fixture
async def conn(pool):
    async with pool.acquire() as connection:
        yield connection


@pytest.fixture
async def subject(conn) -> str:
    """A registered, enrolled subject (each step committed, as over HTTP and Kafka)."""
    async with conn.transaction():
        await handlers.register_centre(RegisterCentre(centre_id=CENTRE, name="Ospedale San Raffaele", country="IT"),
                                       streams(conn))
    async with conn.transaction():  # the programme's definition, published (issue 10)
        await handlers.publish_programme(PublishProgramme(
            definition=next(d for d in bundled() if d.programme_id == "CARCIK-CD19-P2")), streams(conn))
    async with conn.transaction():
        subject_id, _ = await handlers.register_patient(PATIENT, streams(conn), PgIdentities(conn, KEYRING))
    async with conn.transaction():
        await handlers.enroll_subject(EnrollSubject(subject_id=subject_id, programme_id="CARCIK-CD19-P2",
                                                    centre_id=CENTRE, enrolled_on=date(2024, 3, 4)), streams(conn),
                                      IMPORTER,  # as the data loader: no screening needed
                                      PgIdentities(conn, KEYRING))  # the age on the day, from the date of birth
    return subject_id


async def erase(conn, subject_id: str) -> None:
    async with conn.transaction():
        await handlers.erase_identity(EraseIdentity(subject_id=subject_id, reason="consent withdrawn"),
                                      streams(conn), PgIdentities(conn, KEYRING))


async def every_value(conn) -> list[tuple[str, object]]:
    """(schema.table.column, value) for every column of every row of every CellTrail table."""
    tables = await conn.fetch("SELECT table_schema, table_name FROM information_schema.tables"
                              " WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'", list(SCHEMAS))
    values = []
    for t in tables:
        for row in await conn.fetch(f'SELECT * FROM "{t["table_schema"]}"."{t["table_name"]}"'):
            values += [(f"{t['table_schema']}.{t['table_name']}.{column}", v) for column, v in row.items()]
    return values


async def event_rows(conn) -> dict[str, list[str]]:
    """Every event row of every store, as PostgreSQL renders it (every column, byte for byte)."""
    return {s: [r["row"] for r in await conn.fetch(f"SELECT e::text AS row FROM {s}.events e ORDER BY position")]
            for s in SCHEMAS}


async def project_everything(conn) -> None:
    envelopes = await EventStore("enrollment").read_range(conn, 0, 2**62, 10_000)
    await project_batch(PgReadModels(conn), FakeOutcomes(), [(e, parse_event(e)) for e in envelopes])


class TestNoIdentifierInPlaintext:
    async def test_no_column_of_any_table_holds_a_registered_identifier(self, conn, subject):
        assert await PgIdentities(conn, KEYRING).get(subject) == Identity(
            CENTRE, "MRN-7731", "Bergamaschi", "Ludovica", date(1961, 11, 23))  # so the scan below means something

        found = [(where, identifier) for where, value in await every_value(conn) for identifier in IDENTIFIERS
                 if (identifier.encode() in value if isinstance(value, bytes) else identifier in str(value))
                 or value == PATIENT.date_of_birth]

        assert found == []

    async def test_the_identity_row_holds_ciphertexts_and_a_blind_index(self, conn, subject):
        row = await conn.fetchrow("SELECT * FROM enrollment.patient_identity WHERE subject_id = $1", subject)

        assert [row[c] for c in ("hospital_record_number", "family_name", "given_name", "date_of_birth")] == [None] * 4
        assert len(row["record_index"]) == 32 and len(row["family_name_sealed"]) > len("Bergamaschi")


class TestErasure:
    async def test_erasure_leaves_every_event_row_byte_identical_and_adds_only_the_erasure(self, conn, subject):
        before = await event_rows(conn)

        await erase(conn, subject)

        after = await event_rows(conn)
        assert {s: rows[:len(before[s])] for s, rows in after.items()} == before
        [added] = [row for s in SCHEMAS for row in after[s][len(before[s]):]]
        assert "enrollment.IdentityErased" in added and not any(i in added for i in IDENTIFIERS)

    async def test_erasure_removes_the_identity_and_its_key(self, conn, subject):
        await erase(conn, subject)

        assert await PgIdentities(conn, KEYRING).get(subject) is None
        assert await PgIdentities(conn, KEYRING).find(CENTRE, "MRN-7731") is None
        for table in ("patient_identity", "identity_keys"):
            assert await conn.fetchval(f"SELECT count(*) FROM enrollment.{table} WHERE subject_id = $1", subject) == 0

    async def test_a_copy_of_the_identity_row_kept_elsewhere_cannot_be_read_after_erasure(self, conn, subject):
        backup = await conn.fetchrow("SELECT * FROM enrollment.patient_identity WHERE subject_id = $1", subject)

        await erase(conn, subject)
        await conn.execute(f"INSERT INTO enrollment.patient_identity ({', '.join(backup.keys())}) VALUES "
                           f"({', '.join(f'${i + 1}' for i in range(len(backup)))})", *backup.values())

        with pytest.raises(IdentityUnreadable):
            await PgIdentities(conn, KEYRING).get(subject)

    async def test_the_subjects_projected_view_is_unchanged_by_erasure(self, conn, subject):
        await project_everything(conn)
        view = await conn.fetchval("SELECT view::text FROM projection.subject_state WHERE subject_id = $1", subject)

        await erase(conn, subject)
        await project_everything(conn)

        assert view is not None and "CARCIK-CD19-P2" in view
        assert await conn.fetchval("SELECT view::text FROM projection.subject_state WHERE subject_id = $1",
                                   subject) == view

    async def test_the_same_person_registered_after_erasure_gets_a_new_subject_id(self, conn, subject):
        await erase(conn, subject)

        async with conn.transaction():
            again, created = await handlers.register_patient(PATIENT, streams(conn), PgIdentities(conn, KEYRING))

        assert created is True and again != subject


class TestCiphertextsAreBound:
    async def test_a_ciphertext_copied_to_another_subjects_row_is_refused(self, conn, subject):
        other = "S-BA9876543210"
        await PgIdentities(conn, KEYRING).add(other, CENTRE, "MRN-0001", "Verdi", "Carla", date(1990, 1, 2))
        await conn.execute("UPDATE enrollment.patient_identity SET family_name_sealed ="
                           " (SELECT family_name_sealed FROM enrollment.patient_identity WHERE subject_id = $1)"
                           " WHERE subject_id = $2", subject, other)

        with pytest.raises(IdentityUnreadable):
            await PgIdentities(conn, KEYRING).get(other)

    async def test_another_keyring_neither_reads_nor_finds_the_identity(self, conn, subject):
        stranger = PgIdentities(conn, Keyring.parse(Keyring.generate("k1")))

        with pytest.raises(IdentityUnreadable):
            await stranger.get(subject)
        assert await stranger.find(CENTRE, "MRN-7731") is None


LEGACY = ("S-00000000A11C", CENTRE, "MRN-0007", "Esposito", "Gennaro", date(1950, 7, 1))


async def legacy_row(conn) -> None:
    """A row as stored before migration 0005: plaintext, no key."""
    await conn.execute("INSERT INTO enrollment.patient_identity (subject_id, centre_id, hospital_record_number,"
                       " family_name, given_name, date_of_birth) VALUES ($1, $2, $3, $4, $5, $6)", *LEGACY)


class TestEncryptingOldRows:
    async def test_a_plaintext_row_is_found_and_read_until_it_is_encrypted(self, conn):
        await legacy_row(conn)

        identities = PgIdentities(conn, KEYRING)

        assert await identities.find(CENTRE, "MRN-0007") == LEGACY[0]
        assert await identities.get(LEGACY[0]) == Identity(*LEGACY[1:])

    async def test_encrypting_seals_a_plaintext_row_and_nulls_its_plaintext(self, conn):
        await legacy_row(conn)
        identities = PgIdentities(conn, KEYRING)

        report = await identities.encrypt_all()

        row = await conn.fetchrow("SELECT * FROM enrollment.patient_identity WHERE subject_id = $1", LEGACY[0])
        assert (report.encrypted, report.rewrapped) == (1, 0)
        assert [row[c] for c in ("hospital_record_number", "family_name", "given_name", "date_of_birth")] == [None] * 4
        assert await identities.get(LEGACY[0]) == Identity(*LEGACY[1:])
        assert await identities.find(CENTRE, " mrn-0007") == LEGACY[0]

    async def test_rows_under_an_older_key_are_read_then_moved_to_the_current_key(self, conn, subject):
        rotated = Keyring.parse(f"{Keyring.generate('k2')},{KEYRING_TEXT}")
        assert await PgIdentities(conn, rotated).get(subject) is not None

        report = await PgIdentities(conn, rotated).encrypt_all()

        only_new = Keyring(rotated.keys[:1])
        assert report.rewrapped == 1
        assert await PgIdentities(conn, only_new).get(subject) == Identity(
            CENTRE, "MRN-7731", "Bergamaschi", "Ludovica", date(1961, 11, 23))
        assert await PgIdentities(conn, only_new).find(CENTRE, "MRN-7731") == subject


class TestTheEncryptCommand:
    def celltrail(self, database_url: str, key: str | None, tmp_path) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
        env.update(DATABASE_URL=database_url, CELLTRAIL_HOME=str(tmp_path / "home"))
        if key is not None:
            env["CELLTRAIL_IDENTITY_KEY"] = key
        return subprocess.run([sys.executable, "-m", "infra.tooling.cli", "identities", "encrypt"], env=env,
                              capture_output=True, text=True, timeout=60)

    async def test_the_command_encrypts_the_remaining_plaintext_rows(self, conn, database_url, tmp_path):
        await legacy_row(conn)
        key = Keyring.generate("k1")

        res = self.celltrail(database_url, key, tmp_path)

        assert res.returncode == 0, res.stderr
        assert "1 plaintext identities encrypted" in res.stdout
        assert await PgIdentities(conn, Keyring.parse(key)).get(LEGACY[0]) == Identity(*LEGACY[1:])

    async def test_without_a_key_the_command_says_so_in_one_line_and_changes_nothing(self, conn, database_url,
                                                                                    tmp_path):
        await legacy_row(conn)

        res = self.celltrail(database_url, None, tmp_path)

        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "CELLTRAIL_IDENTITY_KEY" in res.stderr
        assert await conn.fetchval("SELECT family_name FROM enrollment.patient_identity") == "Esposito"
        assert not (tmp_path / "home" / "identity.key").exists()


class TestReadAheadForAFetch:
    """A fetch of enrolments reads its subjects' identity rows with one query (the first `get`
    reads every subject given as `ahead`); what `get` returns is the same as reading alone."""

    async def test_one_query_for_the_fetch_and_the_same_identities(self, conn, subject):
        other = "S-" + uuid.uuid4().hex[:12].upper()
        await PgIdentities(conn, KEYRING).add(other, CENTRE, "MRN-0002", "Verdi", "Carla", date(1990, 1, 2))
        unknown = "S-" + uuid.uuid4().hex[:12].upper()
        alone = {s: await PgIdentities(conn, KEYRING).get(s) for s in (subject, other, unknown)}
        queries: list[str] = []

        class Counting:  # the connection, each query it is given written down
            def __getattr__(self, name: str):  # noqa: ANN204
                method = getattr(conn, name)

                async def counted(query: str, *args):  # noqa: ANN202
                    queries.append(query)
                    return await method(query, *args)
                return counted

        table = PgIdentities(Counting(), KEYRING, ahead=[subject, other, unknown])
        ahead = {s: await table.get(s) for s in (subject, other, unknown)}
        assert ahead == alone and alone[unknown] is None and alone[other].family_name == "Verdi"
        assert len(queries) == 1 and "ANY" in queries[0]

    async def test_what_it_adds_or_erases_is_read_again(self, conn, subject):
        table = PgIdentities(conn, KEYRING, ahead=[subject])
        assert (await table.get(subject)).date_of_birth == date(1961, 11, 23)
        assert await table.erase(subject)
        assert await table.get(subject) is None
        fresh = "S-" + uuid.uuid4().hex[:12].upper()
        assert await table.get(fresh) is None
        await table.add(fresh, CENTRE, "MRN-0003", "Rossi", "Anna", date(1980, 5, 6))
        assert (await table.get(fresh)).given_name == "Anna"
