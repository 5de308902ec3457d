"""Time types. Every instant and date a contract carries lies in [1900-01-01, 2200-01-01) UTC.

Why bounded: an unbounded date let `"registered_on": "0001-01-01"` through; the driver stored
it as `-infinity`, which then could not be read back, and the relay publishing that store
stopped. 1900 is before the birth of any living patient; 2200 is far enough ahead for any
planned date and well inside what Python, PostgreSQL and JSON consumers represent. Each
events table enforces the same bounds with a CHECK (migration 0002).
"""

from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, AwareDatetime, Field

EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)  # exclusive

Instant = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST,
                                         description="with a UTC offset; from 1900-01-01 to before 2200-01-01 UTC")]
ClinicalDate = Annotated[date, Field(ge=EARLIEST.date(), lt=LATEST.date(),
                                     description="from 1900-01-01 to 2199-12-31")]


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones()) - {"localtime"}  # a machine's own zone, where it has one


def _known_time_zone(name: str) -> str:
    """`name` if it is a zone of the IANA time zone database (tzdata) that `zoneinfo.ZoneInfo`
    reads; not a directory of it (`Europe`) nor a machine's own files (`localtime`)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    else:
        if name in _zone_names():
            return name
    raise ValueError(f"{name!r} is not a time zone of the IANA database (e.g. 'Europe/Rome')")


# A centre's named time zone (issue 11 item 5): an IANA name, whose rules (DST included) give a
# UTC instant's date and time at the site. The pattern keeps out paths (`../`) and odd names
# before the database is asked.
TimeZoneName = Annotated[str, Field(min_length=1, max_length=64,
                                    pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
                                    description="an IANA time zone name, e.g. Europe/Rome"),
                         AfterValidator(_known_time_zone)]
