"""The soak's faults and their repair: a killer that SIGKILLs a random live component every
few seconds, and the supervisor (`System.supervise`, as `celltrail up` runs it) that
restarts whatever died. Each is a thread of its own, so a kill may land in the middle of a
restart, as a crash would.

Targets: the five service processes, the embedded broker and embedded PostgreSQL (its
postmaster, from the pid file: killed, the server is gone; its backends notice and exit).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from infra.runtime.settings import SERVICES
from infra.tooling.supervisor import System

TARGETS: tuple[str, ...] = (*SERVICES, "broker", "postgres")
SUPERVISE_EVERY = 0.5  # seconds, as `celltrail up`


def parse_targets(text: str) -> tuple[str, ...]:
    """`services`, `broker`, `postgres` or a service's name, comma-separated; `all`."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        names = TARGETS if part == "all" else SERVICES if part == "services" else (part,)
        for name in names:
            if name not in TARGETS:
                raise ValueError(f"unknown kill target {name!r}; one of all, services, {', '.join(TARGETS)}")
            if name not in out:
                out.append(name)
    if not out:
        raise ValueError("no kill target")
    return tuple(out)


def live_pid(system: System, target: str) -> int | None:
    """The target's pid if it runs now, else None."""
    if target == "broker":
        broker = system.broker
        return broker.pid if broker is not None and broker.alive() else None
    if target == "postgres":
        pg = system.pg
        pid = pg.pid if pg is not None else None
        return pid if pid is not None and pg.alive() else None
    proc = system.procs.get(target)
    return proc.pid if proc is not None and proc.poll() is None else None


@dataclass
class Kill:
    at: float  # seconds since the soak started
    target: str
    pid: int


@dataclass
class Chaos:
    """`start()` both threads; `stop_killing()` at the end of the load; `stop()` at the very end."""

    system: System
    kill_every: float
    seed: int
    targets: Sequence[str] = TARGETS
    say: Callable[[str], None] = print
    t0: float = field(default_factory=time.monotonic)
    kills: list[Kill] = field(default_factory=list)
    said: list[str] = field(default_factory=list)  # what the supervisor said
    supervise_errors: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._killing = threading.Event()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._supervise, name="soak-supervisor", daemon=True),
                         threading.Thread(target=self._kill, name="soak-killer", daemon=True)]

    def start(self) -> None:
        self._killing.set()
        for t in self._threads:
            t.start()

    def stop_killing(self) -> None:
        self._killing.clear()

    def stop(self) -> None:
        self._killing.clear()
        self._stopping.set()
        for t in self._threads:
            t.join(120)

    @property
    def kills_by_target(self) -> dict[str, int]:
        counts = Counter(k.target for k in self.kills)
        return {t: counts.get(t, 0) for t in self.targets}

    def all_alive(self) -> bool:
        """Every component runs and none awaits a restart."""
        s = self.system
        names = [*SERVICES, *(["broker"] if s.broker else []), *(["postgres"] if s.pg else [])]
        return not s._down and all(live_pid(s, n) is not None for n in names)

    def kill_one(self) -> Kill | None:
        """SIGKILL one live target, drawn at random; None when none runs."""
        live = [(t, pid) for t in self.targets if (pid := live_pid(self.system, t)) is not None]
        if not live:
            return None
        target, pid = self._rng.choice(live)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        kill = Kill(round(time.monotonic() - self.t0, 1), target, pid)
        self.kills.append(kill)
        self.say(f"  [{kill.at:7.1f}s] kill -9 {target} (pid {pid})")
        return kill

    def _kill(self) -> None:
        next_at = time.monotonic() + self.kill_every
        while not self._stopping.is_set():
            if self._killing.is_set() and time.monotonic() >= next_at:
                self.kill_one()
                next_at = max(next_at + self.kill_every, time.monotonic() + self.kill_every / 2)
            self._stopping.wait(0.05)

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                for line in self.system.supervise():
                    self.said.append(line)
                    self.say(f"  [{time.monotonic() - self.t0:7.1f}s] {line}")
            except Exception as exc:  # noqa: BLE001 - the supervisor's own failure, counted and said
                self.supervise_errors += 1
                self.say(f"  supervise raised {type(exc).__name__}: {exc}")
            self._stopping.wait(SUPERVISE_EVERY)

