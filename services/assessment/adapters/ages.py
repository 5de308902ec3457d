"""asyncpg adapter: assessment.subject_ages (migration 0016), a local view of enrollment's
`SubjectEnrolled`: each subject's age at enrolment."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.assessment.application.ports import SubjectAge
from services.assessment.domain.toxicity import AgeAtEnrolment


class PgAges:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def of(self, subject_id: str) -> AgeAtEnrolment | None:
        row = await self.conn.fetchrow("SELECT enrolled_on, age_years FROM assessment.subject_ages"
                                       " WHERE subject_id = $1", subject_id)
        return AgeAtEnrolment(row["enrolled_on"], row["age_years"]) if row else None

    async def add_many(self, ages: Sequence[SubjectAge]) -> None:
        await self.conn.execute(
            "INSERT INTO assessment.subject_ages (subject_id, enrolled_on, age_years)"
            " SELECT * FROM unnest($1::text[], $2::date[], $3::integer[]) ON CONFLICT DO NOTHING",
            [a.subject_id for a in ages], [a.age.enrolled_on for a in ages], [a.age.age_years for a in ages])
