"""Clinical dates: the calendar day a clinical fact belongs to, and day counts between days.

A fact belongs to the calendar day where it happened: the date at the UTC offset recorded
with its time, not the UTC date (an infusion at 00:30 CET on 2 March is on 2 March,
although it is still 1 March in UTC). Study day 0 is the first infusion's date: the
CAR-CIK protocol (seed 000) reads its primary endpoint "at day 28 after the first
infusion", and this programme counts the infusion day as day 0 (unlike CDISC SDTM --DY,
which has no day 0).
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone

# The study day is a clinical rule, kept once with the others (day 0 is the infusion date).
from services.clinical.study_days import study_day

__all__ = ["clinical_date", "days_between", "start_of_day", "study_day"]


def clinical_date(moment: datetime) -> date:
    """The local calendar date of `moment`, at the offset recorded with it."""
    if moment.utcoffset() is None:
        raise ValueError(f"a clinical time needs its UTC offset to have a date, got {moment!r}")
    return moment.date()


def start_of_day(day: date) -> datetime:
    """The instant stored as `occurred_at` for a fact known only by its date: midnight UTC,
    so the date reads back unchanged."""
    return datetime.combine(_plain(day), time(0), tzinfo=timezone.utc)


def days_between(start: date, end: date) -> int:
    """Calendar days from `start` to `end`; negative when `end` is earlier."""
    return (_plain(end) - _plain(start)).days


def _plain(day: date) -> date:
    # datetime is a subclass of date: refuse it, so a time of day never shifts a day count.
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"expected a date without a time, got {day!r}")
    return day
