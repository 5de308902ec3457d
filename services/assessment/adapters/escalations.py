"""asyncpg adapter: assessment.escalations (migration 0015), a local view of enrollment's
`SubjectEnrolled` for the subjects of dose escalations."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.assessment.application.ports import Escalation


class PgEscalations:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def of(self, subject_id: str) -> Escalation | None:
        row = await self.conn.fetchrow("SELECT subject_id, programme_id, dose_level, dlt_window_days"
                                       " FROM assessment.escalations WHERE subject_id = $1", subject_id)
        return Escalation(*row) if row else None

    async def add_many(self, escalations: Sequence[Escalation]) -> None:
        await self.conn.execute(
            "INSERT INTO assessment.escalations (subject_id, programme_id, dose_level, dlt_window_days)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[]) ON CONFLICT DO NOTHING",
            [e.subject_id for e in escalations], [e.programme_id for e in escalations],
            [e.dose_level for e in escalations], [e.dlt_window_days for e in escalations])
