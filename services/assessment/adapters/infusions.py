"""asyncpg adapter: assessment.infusions, a local view of infusion's events."""

from __future__ import annotations

from datetime import date, datetime, timezone

import asyncpg


class PgInfusions:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def first_infusion_on(self, subject_id: str) -> date | None:
        at = await self.conn.fetchval(
            "SELECT infused_at FROM assessment.infusions WHERE subject_id = $1 ORDER BY infusion_number LIMIT 1",
            subject_id)
        return at.astimezone(timezone.utc).date() if at else None

    async def add(self, subject_id: str, infusion_number: int, infused_at: datetime) -> None:
        await self.conn.execute(
            "INSERT INTO assessment.infusions (subject_id, infusion_number, infused_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING", subject_id, infusion_number, infused_at)
