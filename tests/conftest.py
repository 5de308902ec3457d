"""Real components for integration and e2e tests.

PostgreSQL: CELLTRAIL_TEST_DATABASE_URL (a server URL; each test database is created on it
and dropped afterwards), else an embedded PostgreSQL started for the session. Kafka: a fresh
embedded Tansu broker per fixture use (it starts in milliseconds and its log is memory
only), so tests never see each other's topics.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

from contracts.topology import SERVICES
from infra.runtime.access.signing import format_public_keys, generate_service_key, public_key_of
from infra.runtime.db import migrate
from infra.tooling.embedded import EmbeddedBroker, EmbeddedPostgres
from infra.tooling.supervisor import EMBEDDED_SESSION_TIMEOUT_MS

# Every service and consumer the tests start (in this process or as a child) joins its group
# on the embedded broker in about half its session (infra/runtime/settings.py).
os.environ.setdefault("CELLTRAIL_KAFKA_SESSION_TIMEOUT_MS", str(EMBEDDED_SESSION_TIMEOUT_MS))


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a server (database `postgres`) on which test databases are created."""
    external = os.environ.get("CELLTRAIL_TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's basetemp: pytest prunes old basetemps when runs overlap, which would
    # pull the data directory from under a running server.
    data_dir = Path(tempfile.mkdtemp(prefix="celltrail-test-pg-"))
    pg = EmbeddedPostgres(data_dir, database="postgres", ephemeral=True)
    try:
        pg.start()
        yield pg.url
    finally:
        pg.stop()


def _with_database(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


def in_thread(fn, *args):
    """Run blocking set-up (which may call asyncio.run, as alembic's env does) off the
    thread that owns pytest-asyncio's event loop."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(fn, *args).result()


def _admin(server_url: str, sql: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    in_thread(asyncio.run, go())


@pytest.fixture(scope="session")
def migrated_template(postgres_server_url: str) -> Iterator[str]:
    """A database migrated once for the session, which each test's database copies
    (`CREATE DATABASE ... TEMPLATE`: a file copy, a third of the time migrating takes)."""
    name = f"celltrail_template_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    try:
        in_thread(migrate, _with_database(postgres_server_url, name))
        yield name
    finally:
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(postgres_server_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"celltrail_test_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    url = _with_database(postgres_server_url, name)
    try:
        yield url
    finally:
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[str]:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
async def pool(database_url: str):
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    try:
        yield p
    finally:
        await p.close()


# One Ed25519 key per service for the tests' services (infra/runtime/access/signing.py).
TEST_SERVICE_KEYS = {service: generate_service_key() for service in SERVICES}


def signing_settings(service: str) -> dict[str, str]:
    """The settings a service needs to sign what it publishes and check what it applies."""
    return {"CELLTRAIL_SERVICE_KEY": TEST_SERVICE_KEYS[service],
            "CELLTRAIL_SERVICE_PUBLIC_KEYS": format_public_keys(
                {s: public_key_of(k) for s, k in TEST_SERVICE_KEYS.items()})}
