"""Figures, targets and how they are printed: every target beside its figure, PASS or MISS.

A measurement returns a `Section`: its figures as a JSON-able dict, the lines it prints and
the targets it is judged by (issue 7, item 8). Statistics are nearest-rank, so every
percentile is an observed value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def say(msg: str) -> None:
    print(msg, flush=True)


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): an observed value, never an interpolation."""
    if not values:
        return None
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def latency_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [x * 1000 for x in seconds]
    if not ms:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return {"n": len(ms), "p50": round(percentile(ms, 50), 2), "p90": round(percentile(ms, 90), 2),
            "p99": round(percentile(ms, 99), 2), "max": round(max(ms), 2), "mean": round(sum(ms) / len(ms), 2)}


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: `figure` must be >= (or, `at_most`, <=) `bound`."""

    name: str
    figure: float | None
    bound: float
    unit: str
    rule: str  # how the bound is derived, e.g. "0.25 x raw produce+consume 16,269 msg/s"
    at_most: bool = False

    @property
    def passed(self) -> bool:
        if self.figure is None:
            return False
        return self.figure <= self.bound if self.at_most else self.figure >= self.bound

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "MISS"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "figure": self.figure, "target": self.bound, "unit": self.unit,
                "comparison": "<=" if self.at_most else ">=", "rule": self.rule, "verdict": self.verdict}


@dataclass
class Section:
    """What one measurement found."""

    key: str  # its key in the JSON
    title: str
    figures: dict[str, Any]
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # something did not arrive: the run fails


def print_section(s: Section) -> None:
    say("")
    say(s.title)
    for line in s.lines:
        say(f"  {line}")
    for t in s.targets:
        say(f"  {t.verdict}  {t.name}: {fmt(t.figure)} {t.unit} (target {'<=' if t.at_most else '>='} "
            f"{fmt(t.bound)} {t.unit}: {t.rule})")
    for f in s.failures[:5]:
        say(f"  FAILED  {f}")


def print_summary(sections: list[Section], environment: dict[str, Any], undersized: list[str]) -> None:
    say("")
    say(f"CellTrail benchmark: {environment['where']}, {environment['cpus']} CPUs, "
        f"Python {environment['python']}, load average before the run {environment['load_before']}")
    targets = [t for s in sections for t in s.targets]
    width = max((len(t.name) for t in targets), default=20)
    say(f"{'target':<{width}}  {'figure':>14}  {'target':>16}  verdict")
    for t in targets:
        bound = f"{'<=' if t.at_most else '>='} {fmt(t.bound)}"
        say(f"{t.name:<{width}}  {fmt(t.figure):>14}  {bound:>16}  {t.verdict}  ({t.unit})")
    if undersized:
        say("NOTE: smaller than the issue requires, so these verdicts are indicative only: " + "; ".join(undersized))
    failed = [f for s in sections for f in s.failures]
    if failed:
        say(f"FAILED: {len(failed)} checks; first: {failed[:3]}")
