"""Time types. Every instant and date a contract carries lies in [1900-01-01, 2200-01-01) UTC.

Why bounded: an unbounded date let `"registered_on": "0001-01-01"` through; the driver stored
it as `-infinity`, which then could not be read back, and the relay publishing that store
stopped. 1900 is before the birth of any living patient; 2200 is far enough ahead for any
planned date and well inside what Python, PostgreSQL and JSON consumers represent. Each
events table enforces the same bounds with a CHECK (migration 0002).
"""

from datetime import date, datetime, timezone
from typing import Annotated

from pydantic import AwareDatetime, Field

EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)  # exclusive

Instant = Annotated[AwareDatetime, Field(ge=EARLIEST, lt=LATEST,
                                         description="with a UTC offset; from 1900-01-01 to before 2200-01-01 UTC")]
ClinicalDate = Annotated[date, Field(ge=EARLIEST.date(), lt=LATEST.date(),
                                     description="from 1900-01-01 to 2199-12-31")]
