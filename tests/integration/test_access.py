"""Access against real PostgreSQL: the `access` schema and its audit, `celltrail access`,
and `/whoami` on a running service host (the one protected endpoint, issue 8 item 2)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access import credentials
from infra.runtime.access.principals import Principal
from infra.runtime.access.refusals import PgRefusals, Refusal
from infra.runtime.access.store import AccessChangeRefused, PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem
from infra.runtime.host import ServiceSpec, build_app
from infra.runtime.settings import Settings
from infra.tooling.access import TOKEN_KEY_FILE, ensure_token_key
from tests.conftest import signing_settings

pytestmark = pytest.mark.integration

# What a token says of its bearer; /whoami answers with the memberships the database holds.
ROSSI = Principal("dr.rossi", PrincipalKind.PERSON, "Maria Rossi")


@pytest.fixture
async def store(pool):
    async with pool.acquire() as conn:
        s = PgAccessStore(conn)
        await s.add_organisation("CTR-BG", OrgKind.CENTRE, "Bergamo", actor="test")
        await s.add_organisation("FAC-1", OrgKind.FACILITY, "GMP facility one", actor="test")
        await s.add_principal("dr.rossi", PrincipalKind.PERSON, "Maria Rossi", actor="test")
        await s.add_principal("fac1-mes", PrincipalKind.SYSTEM, "FAC-1 MES", actor="test")
        yield s


class TestStore:
    async def test_a_granted_role_is_a_membership_and_a_revoked_one_is_gone(self, store) -> None:
        await store.grant("dr.rossi", "CTR-BG", Role.PHYSICIAN, actor="test")
        rossi = await store.principal("dr.rossi")
        assert [(m.org_id, m.org_kind, m.role) for m in rossi.memberships] == [
            ("CTR-BG", OrgKind.CENTRE, Role.PHYSICIAN)]
        await store.revoke("dr.rossi", "CTR-BG", Role.PHYSICIAN, actor="test")
        assert (await store.principal("dr.rossi")).memberships == ()

    async def test_a_role_is_not_granted_at_the_wrong_kind_of_organisation(self, store) -> None:
        with pytest.raises(AccessChangeRefused, match="not held at a facility"):
            await store.grant("dr.rossi", "FAC-1", Role.PHYSICIAN, actor="test")

    async def test_only_the_hash_of_an_api_key_is_stored(self, store) -> None:
        key = credentials.new_api_key()
        await store.add_api_key("fac1-mes", key.key_id, key.hash, actor="test")
        rows = await store.conn.fetch("SELECT credential_id, secret_hash FROM access.credentials")
        _, secret = credentials.parse_api_key(key.key)
        assert [r["credential_id"] for r in rows] == [key.key_id]
        assert rows[0]["secret_hash"].startswith("$argon2id$") and secret not in rows[0]["secret_hash"]
        assert await store.api_key(key.key_id) == ("fac1-mes", key.hash)

    async def test_a_disabled_key_is_not_found(self, store) -> None:
        key = credentials.new_api_key()
        await store.add_api_key("fac1-mes", key.key_id, key.hash, actor="test")
        await store.disable_api_key(key.key_id, actor="test")
        assert await store.api_key(key.key_id) is None

    async def test_a_disabled_principal_is_not_found(self, store) -> None:
        await store.disable_principal("dr.rossi", actor="test")
        assert await store.principal("dr.rossi") is None

    async def test_people_have_passwords_and_systems_api_keys(self, store) -> None:
        with pytest.raises(AccessChangeRefused, match="systems use API keys"):
            await store.set_password("fac1-mes", credentials.hash_password("correct horse battery"), actor="test")
        key = credentials.new_api_key()
        with pytest.raises(AccessChangeRefused, match="API keys are for systems"):
            await store.add_api_key("dr.rossi", key.key_id, key.hash, actor="test")

    async def test_the_database_refuses_a_secret_that_is_not_an_argon2id_hash(self, store) -> None:
        with pytest.raises(asyncpg.CheckViolationError):
            await store.set_password("dr.rossi", "correct horse battery", actor="test")

    async def test_every_change_is_in_the_audit_log_with_who_made_it(self, store) -> None:
        await store.grant("dr.rossi", "CTR-BG", Role.NURSE, actor="cli:admin")
        await store.revoke("dr.rossi", "CTR-BG", Role.NURSE, actor="cli:admin")
        log = [(r["actor"], r["change"], r["principal_id"], r["org_id"]) for r in await store.audit()]
        assert log == [("test", "organisation_added", None, "CTR-BG"), ("test", "organisation_added", None, "FAC-1"),
                       ("test", "principal_added", "dr.rossi", None), ("test", "principal_added", "fac1-mes", None),
                       ("cli:admin", "role_granted", "dr.rossi", "CTR-BG"),
                       ("cli:admin", "role_revoked", "dr.rossi", "CTR-BG")]

    @pytest.mark.parametrize("statement", ["UPDATE access.audit_log SET actor = 'someone else'",
                                           "DELETE FROM access.audit_log", "TRUNCATE access.audit_log"])
    async def test_the_audit_log_is_append_only(self, store, statement: str) -> None:
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await store.conn.execute(statement)

    @pytest.mark.parametrize("statement", ["UPDATE access.refusals SET reason = 'nothing happened'",
                                           "DELETE FROM access.refusals", "TRUNCATE access.refusals"])
    async def test_the_record_of_refusals_is_append_only(self, store, statement: str) -> None:
        await PgRefusals(store.conn).record(Refusal("projection", "GET", "/report", "/report", 401, "UNAUTHENTICATED",
                                                    "no credential", None, "none"))
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await store.conn.execute(statement)
        assert [r["reason"] for r in await PgRefusals(store.conn).listing()] == ["no credential"]


def celltrail(*args: str, database_url: str, home: Path, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
    env.update(DATABASE_URL=database_url, CELLTRAIL_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", "access", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


class TestCli:
    @pytest.fixture
    def cli(self, database_url: str, tmp_path: Path):
        home = tmp_path / "home"
        ensure_token_key(home)

        def run(*args: str, stdin: str = "", ok: bool = True) -> subprocess.CompletedProcess:
            res = celltrail(*args, database_url=database_url, home=home, stdin=stdin)
            assert (res.returncode == 0) is ok, res.stderr
            return res

        run("org", "add", "CTR-BG", "--kind", "centre", "--name", "Bergamo")
        run("principal", "add", "dr.rossi", "--name", "Maria Rossi")
        run("principal", "add", "fac1-mes", "--name", "FAC-1 MES", "--system")
        run("grant", "dr.rossi", "CTR-BG", "physician")
        return run

    def test_the_signing_key_is_made_once_readable_by_its_owner_only(self, tmp_path: Path) -> None:
        first = ensure_token_key(tmp_path / "h")
        assert ensure_token_key(tmp_path / "h") == first
        assert stat.S_IMODE((tmp_path / "h" / TOKEN_KEY_FILE).stat().st_mode) == 0o600

    def test_a_person_gets_a_token_with_the_password_read_from_stdin(self, cli) -> None:
        cli("password", "dr.rossi", stdin="correct horse battery\n")
        token = cli("token", "dr.rossi", stdin="correct horse battery\n").stdout.strip()
        assert token.count(".") == 2

    def test_a_wrong_password_gets_no_token_and_one_line(self, cli) -> None:
        cli("password", "dr.rossi", stdin="correct horse battery\n")
        res = cli("token", "dr.rossi", stdin="incorrect horse\n", ok=False)
        assert res.stdout == "" and res.stderr.strip().count("\n") == 0 and "not signed in" in res.stderr

    def test_a_system_gets_a_token_with_its_api_key_printed_once(self, cli, database_url) -> None:
        key = cli("apikey", "fac1-mes").stdout.strip()
        assert credentials.parse_api_key(key) is not None
        assert key not in cli("list", "--json").stdout
        assert cli("token", "fac1-mes", stdin=key + "\n").stdout.count(".") == 2

    def test_an_unknown_role_is_refused_naming_the_roles(self, cli) -> None:
        res = cli("grant", "dr.rossi", "CTR-BG", "surgeon", ok=False)
        assert "unknown role 'surgeon'" in res.stderr and "physician" in res.stderr

    def test_list_shows_roles_and_the_log_shows_every_change_and_sign_in(self, cli) -> None:
        cli("password", "dr.rossi", stdin="correct horse battery\n")
        cli("token", "dr.rossi", stdin="correct horse battery\n")
        cli("token", "dr.rossi", stdin="wrong wrong wrong\n", ok=False)
        assert "physician@CTR-BG" in cli("list").stdout
        changes = [line.split()[2] for line in cli("log").stdout.splitlines()]
        assert changes == ["organisation_added", "principal_added", "principal_added", "role_granted",
                           "password_set", "token_issued", "sign_in_refused"]


class TestWhoami:
    """`GET /whoami` on a real service host: 401 without or with a bad credential, 200 with
    a valid token or API key."""

    KEY = generate_signing_key()

    @pytest.fixture
    async def api_key(self, store) -> str:
        await store.grant("dr.rossi", "CTR-BG", Role.PHYSICIAN, actor="test")
        await store.grant("fac1-mes", "FAC-1", Role.FACILITY_SYSTEM, actor="test")
        key = credentials.new_api_key()
        await store.add_api_key("fac1-mes", key.key_id, key.hash, actor="test")
        return key.key

    @pytest.fixture
    async def service(self, database_url, kafka, api_key):
        app = build_app(ServiceSpec(name="assessment"), Settings(
            DATABASE_URL=database_url, KAFKA_BOOTSTRAP_SERVERS=kafka,
            CELLTRAIL_TOKEN_PUBLIC_KEY=public_key_pem(self.KEY), **signing_settings("assessment")))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://assessment") as client:
            yield client

    def token(self, key: str | None = None, *, ttl: timedelta = timedelta(minutes=15),
              now: datetime | None = None) -> str:
        return TokenIssuer(key or self.KEY, ttl=ttl).issue(ROSSI, now=now).token

    async def test_without_a_credential_401(self, service) -> None:
        response = await service.get("/whoami")
        assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="celltrail"'

    async def test_with_a_forged_token_401(self, service) -> None:
        forged = self.token(generate_signing_key())
        response = await service.get("/whoami", headers={"authorization": f"Bearer {forged}"})
        assert response.status_code == 401 and "Signature verification failed" in response.json()["error"]

    async def test_with_an_expired_token_401(self, service) -> None:
        old = self.token(ttl=timedelta(minutes=1), now=datetime.now(timezone.utc) - timedelta(hours=1))
        response = await service.get("/whoami", headers={"authorization": f"Bearer {old}"})
        assert response.status_code == 401 and response.json()["error"] == "the token has expired"

    async def test_with_a_wrong_api_key_401(self, service, api_key) -> None:
        response = await service.get("/whoami", headers={"x-api-key": api_key[:-1] + ("A" if api_key[-1] != "A" else "B")})
        assert response.status_code == 401

    async def test_with_a_valid_token_200_and_the_memberships_from_the_database(self, service) -> None:
        response = await service.get("/whoami", headers={"authorization": f"Bearer {self.token()}"})
        assert response.status_code == 200, response.text
        assert response.json() == {"principal_id": "dr.rossi", "kind": "person", "printed_name": "Maria Rossi",
                                   "memberships": [{"org": "CTR-BG", "kind": "centre", "role": "physician"}]}

    async def test_with_a_valid_api_key_200(self, service, api_key) -> None:
        response = await service.get("/whoami", headers={"x-api-key": api_key})
        assert response.status_code == 200, response.text
        assert response.json()["principal_id"] == "fac1-mes"
        assert response.json()["memberships"] == [{"org": "FAC-1", "kind": "facility", "role": "facility_system"}]

    async def test_a_disabled_principal_401_at_once(self, service, store) -> None:
        token = self.token()
        await store.disable_principal("dr.rossi", actor="test")
        response = await service.get("/whoami", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 401 and "disabled" in response.json()["error"]

    async def test_health_needs_no_credential(self, service) -> None:
        assert (await service.get("/health")).status_code == 200
