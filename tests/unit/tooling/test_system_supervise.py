"""`celltrail up` watches what it started (issue 12 item 2): a component found dead is said so
and restarted after a backoff that doubles with each death in a row, the others untouched; a
broker that comes back empty has every service restarted against it to republish its store."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.tooling import supervisor
from infra.tooling.supervisor import Backoff, RunInfo, System


class Proc:
    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self):
        return self.returncode

    def die(self, code: int = -9) -> None:
        self.returncode = code


class Component:
    def __init__(self) -> None:
        self.up, self.starts, self.port, self.pid = True, 0, 9092, 4242
        self.bootstrap_servers = f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.up

    def start(self):
        self.starts += 1
        self.up = True
        return self


class Watched(System):
    """A System whose processes are fakes: what `supervise` does with them, and nothing started."""

    def __init__(self, tmp: Path, *, embedded: bool = True) -> None:
        super().__init__(tmp, log_dir=tmp / "logs")
        self.info = RunInfo(database_url="postgresql://postgres@127.0.0.1:1/x", kafka_bootstrap_servers="127.0.0.1:9092")
        self.pg = Component() if embedded else None  # type: ignore[assignment]
        self.broker = Component() if embedded else None  # type: ignore[assignment]
        self.started: list[str] = []
        self.forgotten = 0
        self.next_pid = 100
        for name in supervisor.SERVICES:
            self.start_service(name)

    def start_service(self, name: str, wait: bool = True) -> None:
        self.next_pid += 1
        self.procs[name] = Proc(self.next_pid)
        self.started.append(name)

    def stop_service(self, name: str, timeout: float = 15) -> None:
        self.procs.pop(name)


@pytest.fixture
def system(tmp_path, monkeypatch) -> Watched:
    s = Watched(tmp_path)

    async def forget(url: str) -> None:
        s.forgotten += 1

    monkeypatch.setattr(supervisor, "forget_broker", forget)
    monkeypatch.setattr(supervisor, "EmbeddedBroker", lambda port, log_path: s.broker)
    s.started.clear()
    return s


class TestSupervise:
    def test_nothing_is_said_while_everything_runs(self, system):
        assert system.supervise(0.0) == [] and system.supervise(5.0) == [] and system.started == []

    def test_a_dead_service_is_said_and_restarted_after_its_backoff_the_others_untouched(self, system):
        system.supervise(0.0)
        system.procs["manufacturing"].die(-9)
        [said] = system.supervise(10.0)
        assert said.startswith("service manufacturing died with code -9; restarting it in 1 s (its log: ")
        assert system.supervise(10.5) == [] and system.started == []  # within its backoff
        [restarted] = system.supervise(11.0)
        assert restarted.startswith("service manufacturing restarted (pid ") and system.started == ["manufacturing"]
        assert all(p.poll() is None for p in system.procs.values())

    def test_each_death_in_a_row_doubles_the_wait_up_to_the_cap_and_a_steady_run_resets_it(self):
        b = Backoff(up_since=0.0)
        assert [b.died(t) for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)] == [1, 2, 4, 8, 16, 30, 30]
        b.up_since = 10.0
        assert b.died(10.0 + supervisor.STEADY_SECONDS) == 1

    def test_a_restart_that_fails_is_said_and_tried_again_later(self, system, monkeypatch):
        system.procs["assessment"].die(1)
        system.supervise(0.0)
        calls = []

        def refuses(name: str, wait: bool = True) -> None:
            calls.append(name)
            raise OSError("port in use")

        monkeypatch.setattr(system, "start_service", refuses)
        [failed] = system.supervise(1.0)
        assert failed == "service assessment did not restart (port in use); trying again in 2 s"
        assert system.supervise(2.0) == [] and calls == ["assessment"]
        monkeypatch.undo()
        assert system.supervise(3.0)[0].startswith("service assessment restarted")

    def test_postgres_comes_back_on_its_data(self, system):
        system.pg.up = False
        said = system.supervise(0.0)
        assert said[0].startswith("PostgreSQL died; restarting it in 1 s")
        assert system.supervise(1.0) == ["PostgreSQL restarted on its data; the services resume their work"]
        assert system.pg.starts == 1 and system.started == []  # the services retry meanwhile

    def test_an_empty_broker_has_every_service_restarted_to_republish_its_store(self, system):
        system.broker.up = False
        system.supervise(0.0)
        said = system.supervise(1.0)
        assert said == ["the broker restarted empty on 127.0.0.1:9092; every service restarted to republish its "
                         "store from the start"]
        assert system.broker.starts == 1 and system.forgotten == 1
        assert system.started == list(supervisor.SERVICES)

    def test_a_broker_restart_cut_short_by_an_absent_database_is_finished_later(self, system, monkeypatch):
        # Found by `celltrail soak`: the new broker started and the services stopped, then
        # `forget_broker` failed (PostgreSQL was being restarted); the broker, alive, was never
        # looked at again, and the stopped services were never started.
        async def database_away(url: str) -> None:
            raise OSError("connection refused")

        system.broker.up = False
        system.supervise(0.0)
        monkeypatch.setattr(supervisor, "forget_broker", database_away)
        [failed] = system.supervise(1.0)
        assert failed.startswith("the broker did not restart (connection refused); trying again in 2 s")
        assert system.procs == {} and system.broker.starts == 1
        monkeypatch.undo()
        monkeypatch.setattr(supervisor, "forget_broker", lambda url: _forgotten(system))
        assert system.supervise(2.0) == []  # within its backoff
        [said] = system.supervise(3.0)
        assert said.startswith("the broker restarted empty")
        assert system.broker.starts == 1 and system.forgotten == 1  # the running broker is kept
        assert sorted(system.procs) == sorted(supervisor.SERVICES) and system.restarts == {"broker": 1}
        assert system.supervise(4.0) == []

    def test_a_service_restarted_with_the_broker_is_watched_again(self, system):
        system.procs["infusion"].die(-9)
        system.supervise(0.0)  # said dead, waiting out its backoff
        system.broker.up = False
        system.supervise(0.5)
        system.supervise(1.5)  # the broker and every service restarted, each once
        assert system.started == list(supervisor.SERVICES)
        assert "infusion" in system.procs and system.procs["infusion"].poll() is None
        system.supervise(2.0)
        system.procs["infusion"].die(-9)
        [said] = system.supervise(3.0)
        assert said.startswith("service infusion died with code -9; restarting it in")

    def test_an_external_database_or_broker_is_not_ours_to_restart(self, tmp_path):
        s = Watched(tmp_path, embedded=False)
        assert s.supervise(0.0) == []


async def _forgotten(system: Watched) -> None:
    system.forgotten += 1
