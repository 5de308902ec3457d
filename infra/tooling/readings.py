"""`celltrail readings load`: a temperature logger's file, checked line by line before anything
is sent, then loaded over HTTP (`POST /temperature-readings` on manufacturing).

The file is CSV: one reading per line, `time,celsius`; the time ISO 8601 with its offset
(`2025-03-14T08:00:00+01:00`), the temperature in degrees Celsius (a dot for decimals). A
first line `time,celsius` (any case) is a header; blank lines and lines starting with `#`
are skipped. Readings must go forward in time."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path


class ReadingsFileError(ValueError):
    """The file cannot be loaded; the message names the line and what is wrong with it."""


def parse(text: str, name: str = "the file") -> list[dict[str, object]]:
    readings: list[dict[str, object]] = []
    last: datetime | None = None
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if n == 1 and [c.strip().lower() for c in row] == ["time", "celsius"]:
            continue
        if len(row) != 2:
            raise ReadingsFileError(f"{name} line {n}: expected `time,celsius`, found {len(row)} field(s)")
        try:
            at = datetime.fromisoformat(row[0].strip())
        except ValueError:
            raise ReadingsFileError(f"{name} line {n}: {row[0].strip()!r} is not an ISO 8601 time") from None
        if at.tzinfo is None:
            raise ReadingsFileError(f"{name} line {n}: {row[0].strip()!r} has no UTC offset (e.g. +01:00 or Z)")
        try:
            celsius = float(row[1].strip())
        except ValueError:
            raise ReadingsFileError(f"{name} line {n}: {row[1].strip()!r} is not a temperature in degrees Celsius") \
                from None
        if last is not None and at <= last:
            raise ReadingsFileError(f"{name} line {n}: {at.isoformat()} does not follow the reading before "
                                    f"({last.isoformat()}); readings go forward in time")
        last = at
        readings.append({"at": at.isoformat(), "celsius": celsius})
    if not readings:
        raise ReadingsFileError(f"{name} holds no readings")
    return readings


def read(path: Path) -> list[dict[str, object]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ReadingsFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ReadingsFileError(f"{path} cannot be read: {exc.strerror or exc}") from None
    return parse(text, str(path))
