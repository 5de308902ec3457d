"""Each process's memory through a measurement (issue 12 item 8: a burst of commands must not
grow any process's memory without bound): the resident set (VmRSS, /proc/<pid>/status) of
every service process and of the embedded broker, sampled every `every_s` while the
measurement runs: before, peak and after."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from infra.bench.context import Run


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def processes(run: Run) -> dict[str, int]:
    pids = {name: proc.pid for name, proc in run.system.procs.items()}
    if run.system.broker is not None and run.system.broker.pid is not None:
        pids["broker"] = run.system.broker.pid
    return pids


class Memory:
    """Samples while entered; `figures()` gives each process's before, peak and after (MB)."""

    def __init__(self, run: Run, every_s: float = 0.5) -> None:
        self.pids, self.every_s = processes(run), every_s
        self.before = {n: rss_mb(p) for n, p in self.pids.items()}
        self.peak = dict(self.before)
        self.after: dict[str, float | None] = {}
        self.samples: list[tuple[float, str, float]] = []  # (monotonic s, process, MB)

    def _sample(self) -> None:
        t = time.monotonic()
        for name, pid in self.pids.items():
            now = rss_mb(pid)
            if now is None:
                continue
            self.samples.append((t, name, now))
            if self.peak.get(name) is None or now > self.peak[name]:  # type: ignore[operator]
                self.peak[name] = now

    def halves(self) -> dict[str, tuple[float | None, float | None]]:
        """Each process's peak in the first and in the second half of the sampling: memory that
        grows without bound keeps growing into the second half; bounded memory levels off."""
        if not self.samples:
            return {}
        start, end = self.samples[0][0], self.samples[-1][0]
        middle = (start + end) / 2
        out: dict[str, tuple[float | None, float | None]] = {}
        for name in self.pids:
            first = [mb for t, n, mb in self.samples if n == name and t <= middle]
            second = [mb for t, n, mb in self.samples if n == name and t > middle]
            out[name] = (max(first, default=None), max(second, default=None))
        return out

    @contextlib.asynccontextmanager
    async def sampling(self) -> AsyncIterator["Memory"]:
        async def loop() -> None:
            while True:
                self._sample()
                await asyncio.sleep(self.every_s)

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._sample()
            self.after = {n: rss_mb(p) for n, p in self.pids.items()}

    def figures(self) -> dict[str, dict[str, float | None]]:
        return {n: {"before_mb": self.before[n], "peak_mb": self.peak[n], "after_mb": self.after.get(n)}
                for n in self.pids}

    def lines(self) -> list[str]:
        return ["memory (VmRSS, MB) before / peak / after: " + "; ".join(
            f"{n} {f['before_mb']} / {f['peak_mb']} / {f['after_mb']}" for n, f in self.figures().items())]
