"""`celltrail up`: the whole system on one machine, each service its own OS process.

The system's home (CELLTRAIL_HOME, by default a per-user directory, see `default_home`)
holds its data, logs, the run file `run.json` through which every `celltrail` command
finds the running system from any directory, and `up.lock`, held by the running `up` so a
second one refuses at once. With DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS unset, starts
embedded PostgreSQL (data kept in the home) and the embedded Tansu broker. Tansu keeps its log in memory, so a
new broker starts empty while PostgreSQL still holds every event: on each start against a
new embedded broker every service republishes its history from its event store and the
projection forgets its broker offsets (events are deduplicated by id, so nothing is
applied twice).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

from infra.runtime.access.tokens import public_key_pem
from infra.runtime.db import migrate
from infra.runtime.relay import rewind
from infra.tooling.access import (TokenSource, cli_token, ensure_service_keys, ensure_token_key, provision_cli,
                                  service_public_keys)
from infra.tooling.embedded import LOOPBACK, EmbeddedBroker, EmbeddedPostgres, free_port, process_alive
from infra.runtime.settings import DEFAULT_HTTP_PORTS, SERVICES


def default_home() -> Path:
    """CELLTRAIL_HOME, else the per-user state directory ($XDG_STATE_HOME/celltrail or
    ~/.local/state/celltrail): the same system whatever the working directory."""
    if os.environ.get("CELLTRAIL_HOME"):
        return Path(os.environ["CELLTRAIL_HOME"]).expanduser().resolve()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser().resolve() / "celltrail"


IDENTITY_KEY_FILE = "identity.key"
# The group session of services on the embedded broker: a consumer joins in about half of
# it (Tansu), and a killed one is replaced as soon (infra/runtime/settings.py).
EMBEDDED_SESSION_TIMEOUT_MS = 3_000


def identity_key(home: Path, *, create: bool = True) -> str | None:
    """CELLTRAIL_IDENTITY_KEY if set, else the home's key file, created (mode 0600) with a new
    random key on first use when `create`: the identity table of a system started by `up` is
    readable only with the key kept beside its data. Losing the file loses every identity."""
    if os.environ.get("CELLTRAIL_IDENTITY_KEY"):
        return os.environ["CELLTRAIL_IDENTITY_KEY"]
    from services.enrollment.adapters.identity_crypto import Keyring

    path = home / IDENTITY_KEY_FILE
    if not create:
        return path.read_text().strip() if path.exists() else None
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(Keyring.generate() + "\n")
    return path.read_text().strip()


class NotRunningError(RuntimeError):
    """No system is running for this home; the message says how to start one."""


@dataclass
class RunInfo:
    database_url: str
    kafka_bootstrap_servers: str
    urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)  # each service's, and the embedded broker's and PostgreSQL's
    pid: int = field(default_factory=os.getpid)  # the supervising `celltrail up`

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / "run.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(home / "run.json")

    @classmethod
    def load(cls, home: Path) -> "RunInfo":
        """The running system's addresses, or NotRunningError saying what to do."""
        path = home / "run.json"
        start = "start one with `celltrail up` (or `make up`)"
        if not path.exists():
            raise NotRunningError(f"no CellTrail system is running (no {path}); {start}, "
                                  f"or set CELLTRAIL_HOME to the home of the one you started")
        try:
            info = cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise NotRunningError(f"{path} is unreadable ({exc}); {start}") from None
        if not process_alive(info.pid):
            raise NotRunningError(f"the CellTrail system recorded in {path} (pid {info.pid}) is not running; {start}")
        return info



class AlreadyRunningError(RuntimeError):
    pass


class HomeLock:
    """Held by the running `celltrail up` for its lifetime (an flock, so a crash releases
    it): a second `up` on the same home refuses at once instead of dying on taken ports."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._fd: int | None = None

    def acquire(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.home / "up.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            where = f"home {self.home}"
            try:
                info = RunInfo.load(self.home)
                where += f", pid {info.pid}, projection at {info.urls.get('projection', '?')}"
            except NotRunningError:
                where += ", still starting"
            raise AlreadyRunningError(
                f"CellTrail is already running ({where}); use it, stop it first (Ctrl-C where it runs), "
                f"or run another beside it with CELLTRAIL_HOME set to another directory") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


async def forget_broker(database_url: str) -> None:
    """A new, empty broker: republish every store, and replay from the new log's start."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            for schema in SERVICES:
                await rewind(conn, schema)
                # offsets on the old broker mean nothing on the new one: every consumer
                # starts from the new log's beginning (inboxes absorb what was applied)
                await conn.execute(f"TRUNCATE {schema}.consumer_offsets")
    finally:
        await conn.close()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def wait_healthy(url: str, proc: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service {name} exited with code {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"service {name} did not become healthy at {url} within {timeout}s")


# Issue 12 item 2: how long the supervisor waits before restarting a component that died,
# doubling from the first to the cap with each death in a row; a component that has run for
# STEADY_SECONDS since its restart starts again from the first.
FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, STEADY_SECONDS = 1.0, 30.0, 60.0


@dataclass
class Backoff:
    """One component's restarts: when it may be restarted next, and how many times it died
    in a row."""

    deaths: int = 0
    next_at: float = 0.0
    up_since: float | None = None
    first: float = FIRST_BACKOFF_SECONDS
    cap: float = MAX_BACKOFF_SECONDS
    steady: float = STEADY_SECONDS

    def died(self, now: float) -> float:
        """Record a death at `now`; the seconds to wait before restarting."""
        if self.up_since is not None and now - self.up_since >= self.steady:
            self.deaths = 0
        self.deaths += 1
        self.up_since = None
        delay = min(self.cap, self.first * 2 ** (self.deaths - 1))
        self.next_at = now + delay
        return delay


class System:
    """Starts and stops the embedded components and the five service processes, and (for
    `celltrail up`) watches them: `supervise`."""

    def __init__(self, home: Path, *, fixed_ports: bool = True, log_dir: Path | None = None,
                 database_url: str | None = None, kafka_bootstrap_servers: str | None = None,
                 ephemeral: bool = False, backoff: tuple[float, float, float] | None = None) -> None:
        """`backoff`: (first, cap, steady) seconds of `supervise`'s restart backoff, by default
        FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, STEADY_SECONDS (`celltrail soak` kills far
        more often than any crash loop, and passes shorter ones)."""
        self.home = home
        self.ephemeral = ephemeral  # the embedded database is removed when the system stops
        self.database_url = database_url or os.environ.get("DATABASE_URL")
        self.kafka_bootstrap_servers = kafka_bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.fixed_ports = fixed_ports
        self.log_dir = log_dir or home / "logs"
        self.pg: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.info: RunInfo | None = None
        self.token_public_key: str | None = None
        self.service_keys: dict[str, str] = {}
        self._tokens: TokenSource | None = None
        self._backoff: dict[str, Backoff] = {}
        self._down: set[str] = set()  # components found dead and not yet restarted
        self.backoff_policy = backoff or (FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS, STEADY_SECONDS)
        self.restarts: dict[str, int] = {}  # each component's completed restarts by `supervise`

    def start_infrastructure(self) -> RunInfo:
        import asyncio

        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        db, kafka = self.database_url, self.kafka_bootstrap_servers
        if not db:
            self.pg = EmbeddedPostgres(self.home / "postgres", ephemeral=self.ephemeral)
            self.pg.start()
            db = self.pg.url
        if not kafka:
            self.broker = EmbeddedBroker(log_path=self.log_dir / "broker.log").start()
            kafka = self.broker.bootstrap_servers
        migrate(db)
        # Services get the public half only: they verify tokens, the CLI issues them.
        self.token_public_key = public_key_pem(ensure_token_key(self.home))
        # Each service signs what it publishes with its own key; all know every public key.
        self.service_keys = ensure_service_keys(self.home)
        # The CLI calls the services as its own principal (infra.tooling.access.CLI_PRINCIPAL)
        asyncio.run(provision_cli(db))
        if self.broker is not None:
            asyncio.run(forget_broker(db))
        self.info = RunInfo(database_url=db, kafka_bootstrap_servers=kafka)
        self._note_infrastructure_pids()
        return self.info

    def _note_infrastructure_pids(self) -> None:
        assert self.info is not None
        for name, component in (("broker", self.broker), ("postgres", self.pg)):
            if component is not None and component.pid is not None:
                self.info.pids[name] = component.pid

    def start_service(self, name: str, wait: bool = True) -> None:
        assert self.info is not None
        port = DEFAULT_HTTP_PORTS[name] if self.fixed_ports and port_free(DEFAULT_HTTP_PORTS[name]) else free_port()
        if name in self.info.urls:
            port = int(self.info.urls[name].rsplit(":", 1)[1])
        env = {**os.environ, "DATABASE_URL": self.info.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.info.kafka_bootstrap_servers,
               "HTTP_HOST": LOOPBACK, "HTTP_PORT": str(port), "CELLTRAIL_TOKEN_PUBLIC_KEY": self.token_public_key}
        env.pop("CELLTRAIL_TOKEN_KEY", None)  # the signing key stays with the issuer
        if self.broker is not None:  # the embedded broker, on this machine (Settings.kafka_session_timeout_ms)
            env.setdefault("CELLTRAIL_KAFKA_SESSION_TIMEOUT_MS", str(EMBEDDED_SESSION_TIMEOUT_MS))
        env["CELLTRAIL_SERVICE_KEY"] = self.service_keys[name]  # its own key only
        env["CELLTRAIL_SERVICE_PUBLIC_KEYS"] = service_public_keys(self.service_keys)
        env.pop("CELLTRAIL_IDENTITY_KEY", None)
        if name == "enrollment":  # the only service that keeps identities holds the key
            env["CELLTRAIL_IDENTITY_KEY"] = identity_key(self.home)
        log = open(self.log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", f"services.{name}.bootstrap"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        self.info.urls[name] = f"http://{LOOPBACK}:{port}"
        self.info.pids[name] = proc.pid
        if wait:
            wait_healthy(self.info.urls[name], proc, name)

    def start(self) -> RunInfo:
        self.start_infrastructure()
        for name in SERVICES:  # start all, then wait: each start is mostly waiting on the broker
            self.start_service(name, wait=False)
        assert self.info is not None
        for name in SERVICES:
            wait_healthy(self.info.urls[name], self.procs[name], name)
        self.info.save(self.home)
        self.publish_bundled_programmes()
        return self.info

    def publish_bundled_programmes(self) -> None:
        """A new network starts with the seed programmes' definitions (infra/tooling/programmes.py):
        each bundled one whose programme has no published version yet, as the CLI."""
        import asyncio

        from infra.tooling import programmes
        from infra.tooling.loader import Loader

        assert self.info is not None
        missing = asyncio.run(programmes.unpublished(self.info.database_url, programmes.bundled()))
        if not missing:
            return
        loader = Loader(self.info.kafka_bootstrap_servers, self.info.urls["enrollment"], self.info.urls["projection"],
                        self.tokens(), service_urls=self.info.urls)
        results = asyncio.run(programmes.publish(loader, missing))
        refused = [r for r in results if not r.succeeded]
        if refused:
            raise RuntimeError(f"the bundled programme definitions were not published: {refused}")

    def token(self) -> str:
        """A bearer token of the CLI's principal, for calling this system's services."""
        return cli_token(self.tokens())

    def tokens(self) -> TokenSource:
        """The CLI's tokens for this system (what its loader submits with)."""
        if self._tokens is None:
            assert self.info is not None, "the system is not started"
            self._tokens = TokenSource(self.home, self.info.database_url)
        return self._tokens

    def kill_service(self, name: str) -> None:
        """SIGKILL: no clean shutdown, as a crash would be."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop_service(self, name: str, timeout: float = 15) -> None:
        """SIGTERM: a clean shutdown (the consumer leaves its group); `restart_service`
        starts it again on the same port."""
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart_service(self, name: str) -> None:
        self.start_service(name)

    def supervise(self, now: float | None = None) -> list[str]:
        """One look at what this system started (`celltrail up` calls it twice a second): a
        component found dead is said so and restarted, after a backoff that doubles with each
        death in a row (FIRST_BACKOFF_SECONDS to MAX_BACKOFF_SECONDS); the others keep running.
        PostgreSQL comes back on its data (the services retry their work for as long as it is
        away, infra/runtime/consumer.py); the embedded broker comes back empty (memory
        storage), so every service is restarted against it and republishes its store from
        the start (`forget_broker`; the consumers' inboxes absorb what they had applied); a
        broker restart cut short (PostgreSQL away for `forget_broker`) is tried again after
        its backoff, keeping the new broker, and the services wait for it. An
        external database or broker (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS) is not ours to
        restart. Returns the lines to say."""
        now = time.monotonic() if now is None else now
        said: list[str] = []
        # Each looked at when its turn comes: a broker's restart restarts every service.
        checks: list[tuple[str, Callable[[], bool], str]] = []
        if self.pg is not None:
            checks.append(("postgres", self.pg.alive, "PostgreSQL"))
        if self.broker is not None:
            # a broker restarted whose services were not all restarted against it (PostgreSQL
            # was away for `forget_broker`) is not done: its restart is tried again
            checks.append(("broker", lambda: self.broker.alive() and "broker" not in self._down, "the broker"))
        for name in list(self.procs):
            checks.append((name, lambda name=name: name in self.procs and self.procs[name].poll() is None,
                           f"service {name}"))
        for name, looks_alive, what in checks:
            if name in SERVICES and "broker" in self._down:  # the broker's restart starts every service
                continue
            alive = looks_alive()
            first, cap, steady = self.backoff_policy
            backoff = self._backoff.setdefault(name, Backoff(up_since=now, first=first, cap=cap, steady=steady))
            if alive:
                self._down.discard(name)  # restarted another way (a service, with the broker)
                if backoff.up_since is None:
                    backoff.up_since = now
                continue
            if name not in self._down:
                self._down.add(name)
                code = f" with code {self.procs[name].returncode}" if name in self.procs else ""
                delay = backoff.died(now)
                said.append(f"{what} died{code}; restarting it in {delay:g} s (its log: {self._log_of(name)})")
            if now < backoff.next_at:
                continue
            try:
                restarted = self._restart(name)
            except Exception as exc:  # noqa: BLE001 - said, and tried again after the next backoff
                delay = backoff.died(now)
                said.append(f"{what} did not restart ({exc}); trying again in {delay:g} s")
                continue
            said.extend(restarted)
            self._down.discard(name)
            self.restarts[name] = self.restarts.get(name, 0) + 1
            backoff.up_since = now
            self._note_infrastructure_pids()
            if (self.home / "run.json").exists():  # every `celltrail` command reads the new pids
                self.info.save(self.home)  # type: ignore[union-attr]
        return said

    def _log_of(self, name: str) -> Path:
        return self.log_dir / {"postgres": "postgres.log", "broker": "broker.log"}.get(name, f"{name}.log")

    def _restart(self, name: str) -> list[str]:
        import asyncio

        assert self.info is not None
        if name == "postgres":
            assert self.pg is not None
            self.pg.start()
            return ["PostgreSQL restarted on its data; the services resume their work"]
        if name == "broker":
            assert self.broker is not None
            port = self.broker.port
            if not self.broker.alive():  # else restarted already, by a try that failed after it
                self.broker = EmbeddedBroker(port=port, log_path=self.log_dir / "broker.log").start()
            for service in list(self.procs):
                self.stop_service(service)
            asyncio.run(forget_broker(self.info.database_url))
            for service in SERVICES:
                self.start_service(service, wait=False)
            return [f"the broker restarted empty on {self.broker.bootstrap_servers}; every service restarted to "
                    "republish its store from the start"]
        self.start_service(name, wait=False)
        return [f"service {name} restarted (pid {self.procs[name].pid})"]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.broker:
            self.broker.stop()
        if self.pg:
            if self.pg.log_path.exists():  # kept with the other logs, also when the data goes
                self.log_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.pg.log_path, self.log_dir / "postgres.log")
            self.pg.stop()
        run_file = self.home / "run.json"
        if run_file.exists():
            run_file.unlink()
