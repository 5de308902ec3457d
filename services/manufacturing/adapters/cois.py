"""The next sequence number of a facility identification number and year, from the COI
streams in manufacturing's store (`coi-<FIN><YY><SEQ><check>`): one past the highest, so a
COI labelled outside CellTrail under the same FIN is never drawn again."""

from __future__ import annotations

import asyncpg


async def next_sequence(conn: asyncpg.Connection, fin: str, year: int) -> int:
    highest = await conn.fetchval(
        "SELECT max(substr(stream_id, 12, 6)::int) FROM manufacturing.events"
        " WHERE stream_id ~ $1", f"^coi-{fin}{year % 100:02d}[0-9]{{6}}[0-9A-Z*]$")
    return (highest or 0) + 1
