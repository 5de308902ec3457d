"""Where the CPU of a measurement goes: the CPU time (user + system, /proc/<pid>/stat) each
process used while it ran, the services', the embedded broker's, embedded PostgreSQL's (the
postmaster, its live backends, and what its exited children used) and the benchmark's own
(it produces the load), per command or event measured.

From it, the most the machine could do: if the measured work were spread perfectly over
every core, `cores / (CPU seconds per item, all processes)` items per second; and one process
cannot go faster than `1 / (its CPU seconds per item)`, since a Python service applies on one
thread. A target above both is beyond this machine for this amount of work per item, whatever
the scheduling; docs/benchmark.md ("What bounds the targets") reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from infra.bench.context import Run
from infra.bench.memory import processes

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(parent pid, own CPU seconds, CPU seconds of its reaped children) of a process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return int(fields[1]), (utime + stime) / _TICK, (cutime + cstime) / _TICK


def _tree(root: int) -> float:
    """CPU seconds of `root`, its live children and its children that exited (PostgreSQL's
    backends are children of the postmaster)."""
    own = _stat(root)
    if own is None:
        return 0.0
    total = own[1] + own[2]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (child := _stat(int(entry.name))) is not None and child[0] == root:
            total += child[1]
    return total


def _postmaster(run: Run) -> int | None:
    pg = run.system.pg
    if pg is None:
        return None  # an external PostgreSQL: not on this machine's books here
    try:
        return int((pg.pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuUse:
    """CPU seconds per process between `start()` and `stop()`."""

    def __init__(self, run: Run) -> None:
        self.pids = {**processes(run), "bench (load)": os.getpid()}
        self.postmaster = _postmaster(run)
        self.cores = os.cpu_count() or 1
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.seconds = 0.0

    def _now(self) -> dict[str, float]:
        out = {name: (s[1] if (s := _stat(pid)) else 0.0) for name, pid in self.pids.items()}
        if self.postmaster is not None:
            out["postgres"] = _tree(self.postmaster)
        return out

    def start(self) -> None:
        self._before = self._now()

    def stop(self, seconds: float) -> None:
        after = self._now()
        self.used = {n: round(after[n] - self._before.get(n, 0.0), 3) for n in after}
        self.seconds = seconds

    def figures(self, items: int, what: str) -> dict:
        """Per process: CPU seconds and microseconds per item; the machine's bound."""
        system = {n: s for n, s in self.used.items() if n != "bench (load)"}
        per_item = {n: round(s / items * 1e6, 1) for n, s in self.used.items()}
        total = sum(system.values())
        busiest = max(system.items(), key=lambda kv: kv[1], default=("-", 0.0))
        return {
            "per_process_cpu_s": self.used, f"per_process_us_per_{what}": per_item,
            f"celltrail_us_per_{what}": round(total / items * 1e6, 1),
            "cores": self.cores, "wall_seconds": round(self.seconds, 3),
            "machine_busy_percent": round(100 * sum(self.used.values()) / (self.cores * self.seconds), 1)
            if self.seconds else None,
            # every core busy with nothing but this work (the load generator left aside)
            f"bound_{what}s_per_s_all_cores": round(items / total * self.cores, 1) if total else None,
            "busiest_process": busiest[0],
            f"bound_{what}s_per_s_busiest_process": round(items / busiest[1], 1) if busiest[1] else None,
        }

    def lines(self, items: int, what: str) -> list[str]:
        f = self.figures(items, what)
        parts = ", ".join(f"{n} {us:g}" for n, us in f[f"per_process_us_per_{what}"].items())
        return [f"CPU per {what} (us): {parts}; CellTrail's processes together {f[f'celltrail_us_per_{what}']:g} us "
                f"(machine {f['machine_busy_percent']}% busy over {f['wall_seconds']}s)",
                f"bound on this machine: {fmt_rate(f[f'bound_{what}s_per_s_all_cores'])} {what}s/s with this work spread "
                f"over all {f['cores']} cores; {fmt_rate(f[f'bound_{what}s_per_s_busiest_process'])} {what}s/s for "
                f"{f['busiest_process']}, the busiest process, on one core"]


def fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"
