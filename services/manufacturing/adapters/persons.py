"""asyncpg adapter: manufacturing.registered_persons, a local view of enrollment's
`PatientRegistered` (migration 0012)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.manufacturing.application.ports import Person


class PgPersons:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def centre_of_person(self, subject_id: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT centre_id FROM manufacturing.registered_persons WHERE subject_id = $1", subject_id)

    async def add_many(self, persons: Sequence[Person]) -> None:
        await self.conn.execute(
            "INSERT INTO manufacturing.registered_persons (subject_id, centre_id)"
            " SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            [p.subject_id for p in persons], [p.centre_id for p in persons])
