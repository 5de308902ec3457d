"""asyncpg adapter: manufacturing.enrolled_subjects, a local view of enrollment's events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import asyncpg

from services.manufacturing.application.ports import Enrolment


class PgEnrolments:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def centre_of(self, subject_id: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT centre_id FROM manufacturing.enrolled_subjects WHERE subject_id = $1 LIMIT 1", subject_id)

    async def programme_of(self, subject_id: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT programme_id FROM manufacturing.enrolled_subjects WHERE subject_id = $1"
            " ORDER BY enrolled_on DESC, programme_id LIMIT 1", subject_id)

    async def enrolled_on(self, subject_id: str) -> date | None:
        return await self.conn.fetchval(
            "SELECT min(enrolled_on) FROM manufacturing.enrolled_subjects WHERE subject_id = $1", subject_id)

    async def add(self, subject_id: str, programme_id: str, centre_id: str, enrolled_on: date) -> None:
        await self.conn.execute(
            "INSERT INTO manufacturing.enrolled_subjects (subject_id, programme_id, centre_id, enrolled_on)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING", subject_id, programme_id, centre_id, enrolled_on)

    async def add_many(self, enrolments: Sequence[Enrolment]) -> None:
        await self.conn.execute(
            "INSERT INTO manufacturing.enrolled_subjects (subject_id, programme_id, centre_id, enrolled_on)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[]) ON CONFLICT DO NOTHING",
            [e.subject_id for e in enrolments], [e.programme_id for e in enrolments],
            [e.centre_id for e in enrolments], [e.enrolled_on for e in enrolments])
