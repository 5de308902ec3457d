"""`celltrail up` as a user runs it: found from any directory, refusing a second `up` on the
same home, loading a file from elsewhere, and `celltrail demo` cleaning up after itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import isbt128
from tests.conftest import _admin, _with_database

pytestmark = pytest.mark.e2e


def _env(state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELLTRAIL_")}
    # this checkout's code, whichever one the virtualenv's editable install points at
    env.update(XDG_STATE_HOME=str(state), PYTHONPATH=str(Path(__file__).resolve().parents[2]), **extra)
    return env


def run(*args: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.tooling.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@contextlib.contextmanager
def _up(postgres_server_url: str, state: Path, cwd: Path, **extra: str) -> Iterator[tuple[subprocess.Popen, dict]]:
    """`celltrail up` on a database of its own (and the broker `extra` names, else its
    embedded one), stopped with Ctrl-C at the end; what it says is on its stdout."""
    name = f"celltrail_cli_{uuid.uuid4().hex[:12]}"
    _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    env = _env(state, DATABASE_URL=_with_database(postgres_server_url, name), **extra)
    up = subprocess.Popen([sys.executable, "-m", "infra.tooling.cli", "up"], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield up, env
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(90)
        _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def running_up(tmp_path: Path, postgres_server_url: str, kafka: str) -> Iterator[tuple[subprocess.Popen, dict]]:
    started_in = tmp_path / "started-here"
    started_in.mkdir()
    with _up(postgres_server_url, tmp_path / "state", started_in, KAFKA_BOOTSTRAP_SERVERS=kafka) as (up, env):
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            lines.append(line)
            if line.startswith("Ctrl-C stops everything") or up.poll() is not None:
                break
        assert any(ln.startswith("CellTrail is up") for ln in lines), "".join(lines)
        yield up, env


class TestCelltrailUp:
    def test_a_second_up_refuses_at_once_and_the_first_keeps_running(self, running_up, tmp_path: Path) -> None:
        up, env = running_up
        started = time.monotonic()
        res = run("up", cwd=tmp_path, env=env)
        assert res.returncode == 1 and time.monotonic() - started < 30
        assert "CellTrail is already running" in res.stderr and "Traceback" not in res.stderr
        assert up.poll() is None
        assert run("report", cwd=tmp_path, env=env).returncode == 0

    def test_load_and_status_work_from_any_directory(self, running_up, tmp_path: Path) -> None:
        _, env = running_up
        elsewhere = tmp_path / "a" / "b"
        elsewhere.mkdir(parents=True)
        (elsewhere / "c.jsonl").write_text(
            '{"command": "RegisterCentre", "centre_id": "IT-BG-01", "name": "Bergamo", "country": "IT"}\n'
            '{"command": "RegisterPatient", "ref": "p1", "centre_id": "IT-BG-01", "hospital_record_number": "H1",'
            ' "family_name": "Rossi", "given_name": "Anna", "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}\n'
            '{"command": "RegisterPatient", "ref": "p1", "centre_id": "IT-BG-01", "hospital_record_number": "H2",'
            ' "family_name": "Bianchi", "given_name": "Luca", "date_of_birth": "1971-01-01", "registered_on": "2025-01-02"}\n')
        res = run("load", "c.jsonl", cwd=elsewhere, env=env)
        assert res.returncode == 1, res.stdout + res.stderr  # line 3 is invalid
        assert "line 3 RegisterPatient: INVALID: ref 'p1' is already used by line 2" in res.stdout
        subject = next(w for w in res.stdout.split() if w.startswith("S-"))
        assert run("status", "S-ffffffffffff", cwd=elsewhere, env=env).stderr.strip() \
            == "celltrail status: no subject S-ffffffffffff"
        deadline = time.monotonic() + 30  # registration is over HTTP: the projection follows shortly
        while (res := run("status", subject, cwd=Path("/"), env=env)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"{subject}  programme")


    def test_an_identity_is_erased_from_the_command_line_and_the_subject_stays(self, running_up, tmp_path: Path):
        _, env = running_up
        (tmp_path / "p.jsonl").write_text(
            '{"command": "RegisterCentre", "centre_id": "IT-BG-01", "name": "Bergamo", "country": "IT"}\n'
            '{"command": "RegisterPatient", "centre_id": "IT-BG-01", "hospital_record_number": "H1",'
            ' "family_name": "Rossi", "given_name": "Anna", "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}\n')
        res = run("load", "p.jsonl", cwd=tmp_path, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        subject = next(w for w in res.stdout.split() if w.startswith("S-"))
        key_file = tmp_path / "state" / "celltrail" / "identity.key"  # generated by the first `up`
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        res = run("identities", "erase", subject, "--reason", "consent withdrawn", cwd=tmp_path, env=env)

        assert res.returncode == 0 and f"erased the identity of {subject}" in res.stdout, res.stderr
        again = run("identities", "erase", subject, "--reason", "consent withdrawn", cwd=tmp_path, env=env)
        assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
        assert "already erased" in again.stderr
        deadline = time.monotonic() + 30
        while (res := run("status", subject, cwd=tmp_path, env=env)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert res.returncode == 0 and "registered at IT-BG-01" in res.stdout, res.stderr


    def test_a_coi_is_issued_from_the_command_line_under_the_centres_fin(self, running_up, tmp_path: Path):
        _, env = running_up
        (tmp_path / "e.jsonl").write_text(
            '{"command": "RegisterCentre", "centre_id": "IT-MI-09", "name": "Milano", "country": "IT"}\n'
            '{"command": "RegisterPatient", "ref": "p1", "centre_id": "IT-MI-09", "hospital_record_number": "H9",'
            ' "family_name": "Verdi", "given_name": "Ada", "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}\n'
            '{"command": "EnrollSubject", "subject_ref": "p1", "programme_id": "CART-BALL-RR", "centre_id": "IT-MI-09",'
            ' "enrolled_on": "2025-01-03"}\n')
        res = run("load", "e.jsonl", cwd=tmp_path, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        subject = next(w for w in res.stdout.split() if w.startswith("S-"))
        deadline = time.monotonic() + 30  # until manufacturing has applied the enrolment
        while "no ISBT 128 facility identification number" not in (
                res := run("coi", "issue", subject, cwd=tmp_path, env=env)).stderr and time.monotonic() < deadline:
            time.sleep(0.5)
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr

        added = run("access", "org", "add", "IT-MI-09", "--kind", "centre", "--name", "Milano", "--fin", "I0009",
                    cwd=tmp_path, env=env)
        assert added.returncode == 0, added.stderr
        res = run("coi", "issue", subject, "--json", cwd=tmp_path, env=env)

        assert res.returncode == 0, res.stderr
        issued = json.loads(res.stdout)
        assert issued["coi_id"].startswith("I0009") and issued["subject_id"] == subject
        assert issued["coi_id"] == str(isbt128.parse(issued["label"]))


class TestCelltrailDemo:
    def test_a_token_from_celltrail_access_is_accepted_by_every_service(self, running_up, tmp_path: Path) -> None:
        """`up` made a signing key in its home and gave the services its public half."""
        _, env = running_up
        home = tmp_path / "state" / "celltrail"
        assert stat.S_IMODE((home / "token-key.pem").stat().st_mode) == 0o600
        for args in (("org", "add", "CTR-BG", "--kind", "centre", "--name", "Bergamo"),
                     ("principal", "add", "dr.rossi", "--name", "Maria Rossi"),
                     ("grant", "dr.rossi", "CTR-BG", "physician")):
            assert run("access", *args, cwd=tmp_path, env=env).returncode == 0
        secret = "correct horse battery\n"
        assert subprocess.run([sys.executable, "-m", "infra.tooling.cli", "access", "password", "dr.rossi"],
                              input=secret, env=env, capture_output=True, text=True, timeout=60).returncode == 0
        token = subprocess.run([sys.executable, "-m", "infra.tooling.cli", "access", "token", "dr.rossi"],
                               input=secret, env=env, capture_output=True, text=True, timeout=60).stdout.strip()
        urls = json.loads((home / "run.json").read_text())["urls"]
        for name, url in urls.items():
            request = urllib.request.Request(f"{url}/whoami", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read())["principal_id"] == "dr.rossi", name
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}/whoami", timeout=10)
            assert refused.value.code == 401, name
        # a physician may not rebuild: 403, and both refusals are on the record
        rebuild = urllib.request.Request(f"{urls['projection']}/admin/rebuild", method="POST", data=b"",
                                         headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(rebuild, timeout=10)
        assert refused.value.code == 403
        listed = json.loads(run("access", "refusals", "--json", cwd=tmp_path, env=env).stdout)
        assert [(r["status"], r["principal_id"]) for r in listed] == [(401, None)] * len(urls) + [(403, "dr.rossi")]

    def test_the_cli_calls_as_its_own_principal(self, running_up, tmp_path: Path) -> None:
        _, env = running_up
        res = run("republish", "enrollment", cwd=tmp_path, env=env)
        assert res.returncode == 0 and "will republish" in res.stdout, res.stderr
        assert run("report", cwd=tmp_path, env=env).returncode == 0
        forged = {**env, "CELLTRAIL_TOKEN": "not.a.token"}
        res = run("report", cwd=tmp_path, env=forged)
        assert res.returncode == 1 and "the token is not valid" in res.stderr

    def test_the_demo_leaves_nothing_behind(self, tmp_path: Path) -> None:
        tmp = tmp_path / "tmp"
        tmp.mkdir()
        # as root, PostgreSQL's runtime copy goes to a root of the project's choosing: a fresh one here
        runtime_root = Path("/var/lib") / f"celltrail-demo-test-{uuid.uuid4().hex[:8]}"
        env = _env(tmp_path / "state", TMPDIR=str(tmp), CELLTRAIL_PG_RUNTIME_DIR=str(runtime_root))
        try:
            res = run("demo", cwd=tmp_path, env=env, timeout=300)
            assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
            assert "day-28 ORR" in res.stdout
            assert "demo administrator: demo.admin" in res.stdout
            assert 'curl -H "Authorization: Bearer $TOKEN"' in res.stdout
            assert "answers demo.admin; without one, 401" in res.stdout
            assert list(tmp.iterdir()) == []
            if os.geteuid() == 0:
                assert list(runtime_root.iterdir()) == []
        finally:
            if runtime_root.exists():
                shutil.rmtree(runtime_root)


class Lines:
    """What `celltrail up` says, read as it comes."""

    def __init__(self, up: subprocess.Popen) -> None:
        import threading

        self.lines: list[str] = []
        threading.Thread(target=lambda: [self.lines.append(line) for line in up.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [ln for ln in self.lines if text in ln]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"`celltrail up` did not say {text!r}: {''.join(self.lines)}")


@pytest.fixture
def up_on_an_embedded_broker(tmp_path: Path, postgres_server_url: str) -> Iterator[tuple[subprocess.Popen, dict]]:
    with _up(postgres_server_url, tmp_path / "state", tmp_path) as running:
        yield running


def _pids(env: dict) -> dict[str, int]:
    return json.loads((Path(env["XDG_STATE_HOME"]) / "celltrail" / "run.json").read_text())["pids"]


class TestUpWatchesWhatItStarted:
    """Issue 12 item 2: one process dying never takes the others down; `up` says so and
    restarts it, and an empty broker has the stores republished, with nothing lost."""

    def test_a_killed_service_and_a_killed_broker_are_restarted_and_nothing_is_lost(
            self, up_on_an_embedded_broker, tmp_path: Path) -> None:
        up, env = up_on_an_embedded_broker
        said = Lines(up)
        said.wait_for("Ctrl-C stops everything")
        (tmp_path / "one.jsonl").write_text(
            '{"command": "RegisterCentre", "centre_id": "IT-BG-01", "name": "Bergamo", "country": "IT"}\n'
            '{"command": "RegisterPatient", "ref": "p1", "centre_id": "IT-BG-01", "hospital_record_number": "H1",'
            ' "family_name": "Rossi", "given_name": "Anna", "date_of_birth": "1970-01-01", "registered_on": "2025-01-02"}\n'
            '{"command": "EnrollSubject", "subject_ref": "p1", "programme_id": "CART-BALL-RR", "centre_id": "IT-BG-01",'
            ' "enrolled_on": "2025-01-03"}\n')
        res = run("load", "one.jsonl", cwd=tmp_path, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        subject = next(w for w in res.stdout.split() if w.startswith("S-"))

        os.kill(_pids(env)["manufacturing"], signal.SIGKILL)
        said.wait_for("service manufacturing died")
        said.wait_for("service manufacturing restarted")
        assert up.poll() is None

        broker = _pids(env)["broker"]
        os.kill(broker, signal.SIGKILL)
        said.wait_for("the broker died")
        said.wait_for("the broker restarted empty")
        assert up.poll() is None and _pids(env)["broker"] != broker
        # the stores republished to the new broker: the projection still shows the subject, and the
        # system takes new commands (manufacturing applied the enrolment again: its COI can be issued)
        (tmp_path / "two.jsonl").write_text(
            '{"command": "RegisterPatient", "ref": "p2", "centre_id": "IT-BG-01", "hospital_record_number": "H2",'
            ' "family_name": "Bianchi", "given_name": "Luca", "date_of_birth": "1971-01-01", "registered_on": "2025-01-02"}\n'
            '{"command": "EnrollSubject", "subject_ref": "p2", "programme_id": "CART-BALL-RR", "centre_id": "IT-BG-01",'
            ' "enrolled_on": "2025-01-04"}\n')
        deadline = time.monotonic() + 90
        while (res := run("load", "two.jsonl", cwd=tmp_path, env=env)).returncode != 0 \
                and time.monotonic() < deadline:
            time.sleep(2)  # the services come up against the new broker
        assert res.returncode == 0, res.stdout + res.stderr
        status = run("status", subject, cwd=tmp_path, env=env)
        assert status.returncode == 0 and "enrolled in CART-BALL-RR" in status.stdout, status.stdout + status.stderr
        assert "Traceback" not in "".join(said.lines)
