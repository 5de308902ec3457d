"""A whole CellTrail per test: a fresh database and a fresh broker, five service processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.tooling.supervisor import System
from tests.conftest import _admin, _with_database, in_thread


@pytest.fixture
def system(postgres_server_url: str, kafka: str, tmp_path: Path) -> Iterator[System]:
    name = f"celltrail_e2e_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    sys_ = System(tmp_path / "home", fixed_ports=False, database_url=_with_database(postgres_server_url, name),
                  kafka_bootstrap_servers=kafka)
    try:
        in_thread(sys_.start)
        yield sys_
    finally:
        sys_.stop()
        for log in sorted((tmp_path / "home" / "logs").glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {log.name} ---\n{text[-4000:]}")
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
