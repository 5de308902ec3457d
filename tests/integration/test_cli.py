"""The `celltrail` command around a running system: found from any directory through the
per-user home's run file, and one line (never a traceback) when there is none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.tooling.access import ensure_token_key
from infra.tooling.supervisor import AlreadyRunningError, HomeLock, RunInfo, default_home

SUBJECT = {"subject_id": "S-0123456789ab", "programme_id": "CARCIK-CD19", "centre_id": "CTR-BG",
           "phase": "enrolled", "timeline": [{"at": "2025-01-02T00:00:00", "summary": "enrolled"}],
           "vein_to_vein_days": None}


def celltrail(*args: str, cwd: Path, state: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
    # the stand-in projection below checks no credential: any token will do
    environ.update(XDG_STATE_HOME=str(state), CELLTRAIL_TOKEN="unchecked-by-the-stand-in", **env)
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=60)


def _one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    return res.stderr.strip()


@pytest.fixture
def projection() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == f"/subjects/{SUBJECT['subject_id']}"
            body = json.dumps(SUBJECT if found else {"error": f"no subject {self.path.rsplit('/', 1)[-1]}"})
            self.send_response(200 if found else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def _write_run_file(state: Path, projection_url: str, pid: int) -> None:
    ensure_token_key(state / "celltrail")  # as `up` makes it: every command calls with a token from it
    RunInfo(database_url="postgresql://postgres@127.0.0.1:1/x", kafka_bootstrap_servers="127.0.0.1:1",
            urls={"projection": projection_url, "enrollment": "http://127.0.0.1:1"}, pid=pid).save(state / "celltrail")


class TestFindingTheRunningSystem:
    def test_status_finds_the_system_from_another_directory(self, tmp_path: Path, projection: str) -> None:
        _write_run_file(tmp_path / "state", projection, pid=os.getpid())
        elsewhere = tmp_path / "somewhere" / "else"
        elsewhere.mkdir(parents=True)
        res = celltrail("status", SUBJECT["subject_id"], cwd=elsewhere, state=tmp_path / "state")
        assert res.returncode == 0, res.stderr
        assert "S-0123456789ab  programme CARCIK-CD19" in res.stdout

    def test_the_home_is_per_user_not_per_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("CELLTRAIL_HOME", raising=False)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
        monkeypatch.chdir(tmp_path)
        assert default_home() == tmp_path / "celltrail"
        monkeypatch.setenv("CELLTRAIL_HOME", str(tmp_path / "other"))
        assert default_home() == tmp_path / "other"

    def test_an_unknown_subject_is_one_line(self, tmp_path: Path, projection: str) -> None:
        _write_run_file(tmp_path / "state", projection, pid=os.getpid())
        res = celltrail("status", "S-ffffffffffff", cwd=tmp_path, state=tmp_path / "state")
        assert _one_line_error(res) == "celltrail status: no subject S-ffffffffffff"


class TestNoSystemRunning:
    @pytest.mark.parametrize("args", [("status", "S-0123456789ab"), ("report",), ("rebuild",),
                                      ("republish", "enrollment")])
    def test_without_a_run_file_it_says_none_is_running_and_how_to_start_one(self, tmp_path: Path,
                                                                              args: tuple[str, ...]) -> None:
        line = _one_line_error(celltrail(*args, cwd=tmp_path, state=tmp_path / "state"))
        assert "no CellTrail system is running" in line and "celltrail up" in line

    def test_load_without_a_system_is_one_line(self, tmp_path: Path) -> None:
        f = tmp_path / "x.jsonl"
        f.write_text('{"command": "RegisterCentre"}\n')
        line = _one_line_error(celltrail("load", str(f), cwd=tmp_path, state=tmp_path / "state"))
        assert "no CellTrail system is running" in line

    def test_a_run_file_left_by_a_dead_system_is_not_a_running_system(self, tmp_path: Path) -> None:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        _write_run_file(tmp_path / "state", "http://127.0.0.1:1", pid=dead.pid)
        line = _one_line_error(celltrail("report", cwd=tmp_path, state=tmp_path / "state"))
        assert f"(pid {dead.pid}) is not running" in line and "celltrail up" in line

    def test_a_system_that_does_not_answer_is_one_line(self, tmp_path: Path) -> None:
        _write_run_file(tmp_path / "state", "http://127.0.0.1:1", pid=os.getpid())
        line = _one_line_error(celltrail("report", cwd=tmp_path, state=tmp_path / "state"))
        assert "CellTrail is not answering at http://127.0.0.1:1/report" in line


class TestLoadFileErrors:
    def test_load_of_a_directory_is_one_line(self, tmp_path: Path) -> None:
        res = celltrail("load", str(tmp_path), cwd=tmp_path, state=tmp_path / "state")
        assert "is a directory, not a file" in _one_line_error(res)
        assert res.returncode == 2

    def test_load_of_a_file_that_is_not_utf8_is_one_line(self, tmp_path: Path) -> None:
        f = tmp_path / "x.jsonl"
        f.write_bytes(b"\xff\xfe{}")
        assert "is not UTF-8 text" in _one_line_error(celltrail("load", str(f), cwd=tmp_path, state=tmp_path / "s"))


class TestOneSystemPerHome:
    def test_a_second_up_on_the_same_home_is_refused_naming_the_first(self, tmp_path: Path) -> None:
        first = HomeLock(tmp_path / "home")
        first.acquire()
        try:
            _write_run_file(tmp_path, "http://127.0.0.1:8105", pid=os.getpid())
            (tmp_path / "celltrail" / "run.json").replace(tmp_path / "home" / "run.json")
            with pytest.raises(AlreadyRunningError) as info:
                HomeLock(tmp_path / "home").acquire()
            assert f"pid {os.getpid()}" in str(info.value) and "http://127.0.0.1:8105" in str(info.value)
        finally:
            first.release()
        again = HomeLock(tmp_path / "home")
        again.acquire()  # released: a new `up` may start
        again.release()

    def test_celltrail_up_refuses_at_once_while_one_runs(self, tmp_path: Path) -> None:
        lock = HomeLock(tmp_path / "state" / "celltrail")
        lock.acquire()
        try:
            line = _one_line_error(celltrail("up", cwd=tmp_path, state=tmp_path / "state"))
            assert "CellTrail is already running" in line
        finally:
            lock.release()
