"""Resubmission is harmless (issue 12 item 4), with the five services as their own processes
over the real broker and PostgreSQL: `celltrail load` of the bundled demo file twice. The
second load reports every line as a duplicate with its original outcome, exits 0, and no
store gains an event (before, 21 `RecordResponseAssessment` events became 26)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

from contracts.topology import SERVICES

pytestmark = pytest.mark.e2e


async def event_counts(database_url: str) -> dict[str, int]:
    """Each store's events, but the chain heads its relay records on a timer."""
    conn = await asyncpg.connect(database_url)
    try:
        return {s: await conn.fetchval(f"SELECT count(*) FROM {s}.events WHERE event_type <> 'common.ChainHeadRecorded'")
                for s in SERVICES}
    finally:
        await conn.close()


def load(path: Path, home: Path) -> subprocess.CompletedProcess:
    # this checkout's code, whichever directory the command runs in
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "CELLTRAIL_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", "load", str(path)], cwd=path.parent, env=env,
                          capture_output=True, text=True, timeout=600)


class TestLoadingTwice:
    async def test_the_second_load_reports_duplicates_exits_0_and_changes_no_store(self, system, tmp_path: Path):
        demo = tmp_path / "demo.jsonl"
        demo.write_text(resources.files("infra.tooling").joinpath("examples/demo.jsonl").read_text())
        lines = [ln for ln in demo.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]

        first = load(demo, system.home)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "DUPLICATE" not in first.stdout
        counts = await event_counts(system.info.database_url)
        assert counts["assessment"] >= 4 and counts["enrollment"] > 0

        second = load(demo, system.home)
        assert second.returncode == 0, second.stdout + second.stderr
        reported = [ln.strip() for ln in second.stdout.splitlines() if ln.strip().startswith("line ")]
        assert len(reported) == len(lines), second.stdout
        assert all(": DUPLICATE: original outcome " in ln for ln in reported), second.stdout
        assert sum("DUPLICATE: original outcome refused: CHAIN_OF_IDENTITY_MISMATCH" in ln for ln in reported) == 1
        assert any("RecordResponseAssessment: DUPLICATE: original outcome accepted: assessment.ResponseAssessed"
                   in ln for ln in reported), second.stdout
        assert f"{len(lines)} duplicates of lines loaded before" in second.stdout
        assert await event_counts(system.info.database_url) == counts
