"""asyncpg adapter: assessment.infusions, a local view of infusion's events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import asyncpg

from services.assessment.application.ports import Infusion
from services.kernel.clinical_dates import clinical_date


class PgInfusions:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def first_infusion_on(self, subject_id: str) -> date | None:
        return await self.conn.fetchval(
            "SELECT infused_on FROM assessment.infusions WHERE subject_id = $1 ORDER BY infusion_number LIMIT 1",
            subject_id)

    async def add(self, subject_id: str, infusion_number: int, infused_at: datetime) -> None:
        # Study day 0 is the infusion's date where it happened (clinical_date), not in UTC.
        await self.conn.execute(
            "INSERT INTO assessment.infusions (subject_id, infusion_number, infused_at, infused_on)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            subject_id, infusion_number, infused_at, clinical_date(infused_at))

    async def add_many(self, infusions: Sequence[Infusion]) -> None:
        await self.conn.execute(
            "INSERT INTO assessment.infusions (subject_id, infusion_number, infused_at, infused_on)"
            " SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::date[]) ON CONFLICT DO NOTHING",
            [i.subject_id for i in infusions], [i.infusion_number for i in infusions],
            [i.infused_at for i in infusions], [clinical_date(i.infused_at) for i in infusions])
