"""Burst (issue 12 item 8): a burst of independent commands does not grow any process's memory
without bound, and the HTTP edge, saturated meanwhile, answers 503 with a retry hint rather
than letting requests time out.

`n` `RegisterCentre` commands (distinct centres: each one event, `enrollment.CentreRegistered`,
which enrollment's relay publishes and the projection applies), all built before the clock
starts, are published with our producer as fast as it sends (10,000 in flight at most). Until
the projection has applied every one of them, `http` callers at a time ask the projection for
its report (`GET /report`, the heaviest read) with a 10 s client timeout, again and again.

The callers outnumber a service's places (CELLTRAIL_HTTP_MAX_IN_FLIGHT), each in its own thread.
Reported: each process's resident memory (VmRSS) before, at its peak, after, and its peak in
the first and in the second half of the burst; the HTTP answers by status, whether each 503
carried `Retry-After`, and how many timed out. Targets: no process's second-half peak more
than `GROWTH_MB` above its first-half peak (memory levels off: bounded, not growing with the
commands still coming; the embedded broker, whose memory storage holds the log, is reported
apart), and no HTTP request timed out or answered 5xx other than 503 with
`Retry-After`.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import asyncpg

from contracts.commands import RegisterCentre
from contracts.events import CentreRegistered
from infra.bench.context import Run
from infra.bench.memory import Memory
from infra.bench.observe import now_s
from infra.bench.report import Section, Target, fmt, rate, say
from infra.bench.topology import topology
from infra.bench.workload import command, produce

GROWTH_MB = 64.0  # a second-half peak this far above the first half's is growth, not noise
HTTP_TIMEOUT_S = 10.0
# more callers than a service's places (CELLTRAIL_HTTP_MAX_IN_FLIGHT, 64): the edge is saturated
HTTP_CALLERS = 128
# The embedded broker (Tansu, memory storage) holds its whole log in memory by design (a Kafka
# broker keeps it on disk): it grows with what is published, and is reported apart.
LOG_IN_MEMORY = {"broker"}


def _get(url: str, token: str) -> tuple[int | str, bool]:
    """(status, whether a 503 said when to retry), or ("timeout", False)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            r.read()
            return r.status, False
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After") is not None
    except (TimeoutError, urllib.error.URLError) as exc:
        return ("timeout" if "timed out" in str(exc) or isinstance(exc, TimeoutError) else "unreachable"), False


async def _callers(url: str, token: str, callers: int, stop: asyncio.Event, answers: Counter) -> None:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(callers) as pool:  # each caller its own thread: `callers` requests at a time
        async def one() -> None:
            while not stop.is_set():
                status, hinted = await loop.run_in_executor(pool, _get, url, token)
                answers[status] += 1
                if status == 503:
                    answers["503 with Retry-After" if hinted else "503 without Retry-After"] += 1

        await asyncio.gather(*(one() for _ in range(callers)))


async def measure(run: Run, n: int, http: int = HTTP_CALLERS, timeout: float = 1800) -> Section:
    say(f"burst: {n} RegisterCentre commands at once, {http} HTTP callers on the projection meanwhile")
    prefix = f"BURST-{run.run_id}-"
    records = [command(run, RegisterCentre(centre_id=f"{prefix}{i:06d}", name=f"Burst centre {i}", country="IT"))[1]
               for i in range(n)]
    event_topic = topology().topic_of(CentreRegistered.event_type)
    projection = next(c for c in topology().consumers_of(CentreRegistered.event_type) if c.name == "projection")
    conn = await asyncpg.connect(run.database_url)
    base = await conn.fetchval(f"SELECT coalesce(sum(next_offset), 0) FROM {projection.schema}.consumer_offsets"
                               " WHERE consumer = $1 AND topic = $2", projection.name, event_topic)
    memory, answers, stop = Memory(run), Counter(), asyncio.Event()
    try:
        async with memory.sampling():
            callers = asyncio.create_task(_callers(f"{run.url('projection')}/report", run.token(), http, stop,
                                                   answers))
            t0 = now_s()
            await produce(run.producer, records)
            published = now_s()
            while await conn.fetchval(
                    f"SELECT coalesce(sum(next_offset), 0) FROM {projection.schema}.consumer_offsets"
                    " WHERE consumer = $1 AND topic = $2", projection.name, event_topic) - base < n:
                if now_s() - t0 > timeout:
                    raise TimeoutError(f"burst: the projection had not applied every centre within {timeout:.0f}s")
                await asyncio.sleep(0.2)
            applied = now_s()
            stop.set()
            await callers
    finally:
        stop.set()
        await conn.close()
    halves = memory.halves()
    growth = {name: round(second - first, 1) for name, (first, second) in halves.items()
              if first is not None and second is not None}
    ours = {name: g for name, g in growth.items() if name not in LOG_IN_MEMORY}
    timed_out = answers["timeout"] + answers["unreachable"]
    bad = sum(c for s, c in answers.items() if isinstance(s, int) and s >= 500 and s != 503)
    bad += answers["503 without Retry-After"]
    figures = {"commands": n, "publish_seconds": round(published - t0, 3), "publish_msgs_per_s": rate(n, published - t0),
               "applied_seconds": round(applied - t0, 3), "events_per_s": rate(n, applied - t0),
               "memory": memory.figures(), "memory_halves_mb": {k: list(v) for k, v in halves.items()},
               "memory_growth_second_half_mb": growth,
               "http": {str(k): v for k, v in answers.items()}, "http_timed_out": timed_out, "http_bad": bad}
    worst = max(ours.items(), key=lambda kv: kv[1], default=("-", 0.0))
    targets = [Target("largest second-half memory growth of a CellTrail process", worst[1], GROWTH_MB, "MB",
                      f"second-half peak - first-half peak, at most {GROWTH_MB:g} MB ({worst[0]})", at_most=True),
               Target("HTTP requests timed out, or 5xx other than 503 with Retry-After", float(timed_out + bad), 0.0,
                      "requests", "none", at_most=True)]
    lines = [f"{n} commands published in {published - t0:.2f}s ({fmt(figures['publish_msgs_per_s'])}/s); "
             f"the projection applied every event after {applied - t0:.2f}s",
             "HTTP answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(answers.items(), key=str)),
             *memory.lines(),
             "second-half peak - first-half peak (MB): " + ", ".join(f"{k} {v:+g}" for k, v in growth.items())
             + " (the embedded broker keeps its log in memory: it grows with what is published)"]
    return Section("burst", f"Burst: {n} commands at once, memory and the HTTP edge", figures, lines, targets)

