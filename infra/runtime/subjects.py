"""asyncpg adapter of the kernel's `SubjectCentres` port (services/kernel/subjects.py):
`<schema>.subject_centres`, a service's local view of enrollment's `SubjectEnrolled`
(migration 0008)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from infra.runtime.eventstore import valid_schema
from services.kernel.subjects import SubjectCentre


class PgSubjectCentres:
    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn, self.table = conn, f"{valid_schema(schema)}.subject_centres"

    async def centre_of(self, subject_id: str) -> str | None:
        return await self.conn.fetchval(f"SELECT centre_id FROM {self.table} WHERE subject_id = $1", subject_id)

    async def add_many(self, subjects: Sequence[SubjectCentre]) -> None:
        await self.conn.execute(
            f"INSERT INTO {self.table} (subject_id, centre_id) SELECT * FROM unnest($1::text[], $2::text[])"
            " ON CONFLICT DO NOTHING", [s.subject_id for s in subjects], [s.centre_id for s in subjects])


def subject_centres_in(schema: str) -> Callable[[asyncpg.Connection, str], object]:
    """The command guard's lookup of a subject's centre in `schema`'s view."""
    async def centre_of(conn: asyncpg.Connection, subject_id: str) -> str | None:
        return await PgSubjectCentres(conn, schema).centre_of(subject_id)
    return centre_of
