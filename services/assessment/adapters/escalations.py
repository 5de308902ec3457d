"""asyncpg adapter: assessment.escalations (migration 0015), a local view of enrollment's
`SubjectEnrolled` for the subjects of dose escalations."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from services.assessment.application.ports import Escalation


class PgEscalations:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def of(self, subject_id: str) -> Escalation | None:
        row = await self.conn.fetchrow("SELECT subject_id, programme_id, dose_level, dlt_window_days, dlt_rule"
                                       " FROM assessment.escalations WHERE subject_id = $1", subject_id)
        if row is None:
            return None
        return Escalation(*row[:4], json.loads(row["dlt_rule"]) if row["dlt_rule"] is not None else None)

    async def add_many(self, escalations: Sequence[Escalation]) -> None:
        await self.conn.execute(
            "INSERT INTO assessment.escalations (subject_id, programme_id, dose_level, dlt_window_days, dlt_rule)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::jsonb[])"
            " ON CONFLICT DO NOTHING",
            [e.subject_id for e in escalations], [e.programme_id for e in escalations],
            [e.dose_level for e in escalations], [e.dlt_window_days for e in escalations],
            [json.dumps(e.dlt_rule) if e.dlt_rule is not None else None for e in escalations])
