"""Condition (issue 9, item 3): each storage condition's temperature range as data, and the
excursions a logger's readings show.

An excursion is a maximal run of consecutive readings outside the range: it starts at the
first reading out of range and ends at the first reading back in range (or, if none came
back, at the last reading: it is `ongoing`). Its length in minutes and its worst reading
(the peak, and how many degrees beyond the limit) are what quality assurance judges. Every
excursion quarantines the unit until quality assurance records a disposition: the range is
the limit, and whether a short or small excursion is acceptable is QA's documented decision,
not this code's (EU GMP Part IV, 12.3: transport conditions monitored and deviations
investigated; EU GMP Chapter 5.41 / GDP 9.4: temperature excursions reported and assessed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts.custody import StorageCondition


@dataclass(frozen=True)
class Range:
    """Inclusive limits in degrees Celsius (None: no limit on that side), and the source."""

    low: float | None
    high: float | None
    source: str

    def deviation(self, celsius: float) -> float:
        """Degrees beyond the range (0 inside it)."""
        if self.high is not None and celsius > self.high:
            return celsius - self.high
        if self.low is not None and celsius < self.low:
            return self.low - celsius
        return 0.0


# The storage requirement of each condition.
RANGES: dict[StorageCondition, Range] = {
    # Issue 9 (seed 002, autologous cryopreserved CAR-T): at or below -150 C in the vapour phase
    # of liquid nitrogen (axicabtagene ciloleucel SmPC 6.4: "Store in vapour phase of liquid
    # nitrogen <= -150 C").
    StorageCondition.CRYOPRESERVED: Range(None, -150.0, "vapour phase of liquid nitrogen, <= -150 C "
                                                        "(issue 9; axicabtagene ciloleucel SmPC 6.4)"),
    # Issue 9: a fresh apheresis product at 2-8 C (FACT-JACIE C: collection products stored
    # and transported within the validated temperature range).
    StorageCondition.REFRIGERATED: Range(2.0, 8.0, "fresh apheresis product, 2-8 C (issue 9)"),
    # Ph. Eur. 1. General Notices: "room temperature" 15-25 C, for a fresh product the
    # programme keeps so (seed 003, fresh to fresh).
    StorageCondition.CONTROLLED_ROOM: Range(15.0, 25.0, "controlled room temperature, 15-25 C "
                                                        "(Ph. Eur. General Notices)"),
}


@dataclass(frozen=True)
class Reading:
    at: datetime
    celsius: float


@dataclass(frozen=True)
class Excursion:
    started_at: datetime
    ended_at: datetime
    ongoing: bool
    peak_celsius: float
    deviation: float

    @property
    def minutes(self) -> float:
        return (self.ended_at - self.started_at).total_seconds() / 60


class ReadingsOutOfOrder(ValueError):
    """Readings not in time order (or repeating an instant): a logger's file mangled."""


def excursions(readings: Sequence[Reading], limits: Range) -> list[Excursion]:
    """Every excursion in `readings` (time-ordered) against `limits` (module docstring)."""
    for before, after in zip(readings, readings[1:]):
        if after.at <= before.at:
            raise ReadingsOutOfOrder(f"reading at {after.at.isoformat()} does not follow {before.at.isoformat()}")
    found: list[Excursion] = []
    start: Reading | None = None
    worst: Reading | None = None
    for r in readings:
        out = limits.deviation(r.celsius)
        if out > 0:
            if start is None:
                start, worst = r, r
            elif out > limits.deviation(worst.celsius):
                worst = r
        elif start is not None:
            found.append(Excursion(start.at, r.at, False, worst.celsius, round(limits.deviation(worst.celsius), 3)))
            start = worst = None
    if start is not None:
        found.append(Excursion(start.at, readings[-1].at, True, worst.celsius,
                               round(limits.deviation(worst.celsius), 3)))
    return found
