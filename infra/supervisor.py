"""`celltrail up`: the whole system on one machine, each service its own OS process.

With DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS unset, starts embedded PostgreSQL (data kept
in the home directory) and the embedded Tansu broker. Tansu keeps its log in memory, so a
new broker starts empty while PostgreSQL still holds every event: on each start against a
new embedded broker every service republishes its history from its event store and the
projection forgets its broker offsets (events are deduplicated by id, so nothing is
applied twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

from infra.db import migrate
from infra.relay import rewind
from infra.embedded import LOOPBACK, EmbeddedBroker, EmbeddedPostgres, free_port
from infra.settings import DEFAULT_HTTP_PORTS, SERVICES


@dataclass
class RunInfo:
    database_url: str
    kafka_bootstrap_servers: str
    urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        (home / "run.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, home: Path) -> "RunInfo":
        path = home / "run.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: is `celltrail up` running (or CELLTRAIL_HOME set)?")
        return cls(**json.loads(path.read_text()))


async def forget_broker(database_url: str) -> None:
    """A new, empty broker: republish every store, and replay from the new log's start."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            for schema in SERVICES:
                await rewind(conn, schema)
            await conn.execute("TRUNCATE projection.offsets")
    finally:
        await conn.close()


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


class System:
    """Starts and stops the embedded components and the five service processes."""

    def __init__(self, home: Path, *, fixed_ports: bool = True, log_dir: Path | None = None,
                 database_url: str | None = None, kafka_bootstrap_servers: str | None = None) -> None:
        self.home = home
        self.database_url = database_url or os.environ.get("DATABASE_URL")
        self.kafka_bootstrap_servers = kafka_bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.fixed_ports = fixed_ports
        self.log_dir = log_dir or home / "logs"
        self.pg: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.info: RunInfo | None = None

    def start_infrastructure(self) -> RunInfo:
        import asyncio

        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        db, kafka = self.database_url, self.kafka_bootstrap_servers
        if not db:
            self.pg = EmbeddedPostgres(self.home / "postgres").start()
            db = self.pg.url
        if not kafka:
            self.broker = EmbeddedBroker(log_path=self.log_dir / "broker.log").start()
            kafka = self.broker.bootstrap_servers
        migrate(db)
        if self.broker is not None:
            asyncio.run(forget_broker(db))
        self.info = RunInfo(database_url=db, kafka_bootstrap_servers=kafka)
        return self.info

    def start_service(self, name: str, wait: bool = True) -> None:
        assert self.info is not None
        port = DEFAULT_HTTP_PORTS[name] if self.fixed_ports else free_port()
        if name in self.info.urls:
            port = int(self.info.urls[name].rsplit(":", 1)[1])
        env = {**os.environ, "DATABASE_URL": self.info.database_url,
               "KAFKA_BOOTSTRAP_SERVERS": self.info.kafka_bootstrap_servers,
               "HTTP_HOST": LOOPBACK, "HTTP_PORT": str(port)}
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
        return self.info

    def kill_service(self, name: str) -> None:
        """SIGKILL: no clean shutdown, as a crash would be."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def restart_service(self, name: str) -> None:
        self.start_service(name)

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
            self.pg.stop()
        run_file = self.home / "run.json"
        if run_file.exists():
            run_file.unlink()
