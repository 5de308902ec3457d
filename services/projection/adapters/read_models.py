"""asyncpg adapter for the projection's read models (projection.subject_state), written in
the transaction of the fetch they come from (the consumer keeps the inbox and offsets)."""

from __future__ import annotations

import orjson
from collections.abc import Sequence

import asyncpg

from services.projection.domain.report import ProgrammeRow
from services.projection.domain.subject_view import SubjectView

READ_MODEL_TABLES = ("projection.subject_state",)


def _dumps(view: dict) -> str:
    """A view as JSON text: orjson, a tenth of json.dumps's time on a view (`python -m
    infra.bench.projection_cpu --profile`); a non-finite number becomes null, which jsonb
    could not hold anyway."""
    return orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS).decode()


class PgReadModels:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, subject_id: str) -> SubjectView | None:
        return (await self.get_many([subject_id])).get(subject_id)

    async def get_many(self, subject_ids: Sequence[str]) -> dict[str, SubjectView]:
        rows = await self.conn.fetch(
            "SELECT subject_id, view FROM projection.subject_state WHERE subject_id = ANY($1::text[])",
            list(subject_ids))
        return {r["subject_id"]: SubjectView.from_json(orjson.loads(r["view"])) for r in rows}

    async def put_many(self, views: Sequence[SubjectView]) -> None:
        # One multi-row statement for the fetch, not a statement per view (the profile of
        # the rebuild, docs/benchmark.md).
        await self.conn.execute(
            "INSERT INTO projection.subject_state (subject_id, programme_id, phase, view)"
            " SELECT s, p, ph, v::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(s, p, ph, v)"
            " ON CONFLICT (subject_id) DO UPDATE SET programme_id = EXCLUDED.programme_id, phase = EXCLUDED.phase,"
            " view = EXCLUDED.view",
            [v.subject_id for v in views], [v.programme_id for v in views], [v.phase for v in views],
            [_dumps(v.to_json()) for v in views])

    async def clear(self) -> None:
        await self.conn.execute(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}")

    async def all_views(self) -> list[dict]:
        rows = await self.conn.fetch("SELECT view FROM projection.subject_state ORDER BY subject_id")
        return [orjson.loads(r["view"]) for r in rows]

    async def programme_rows(self, programme_id: str | None) -> list[ProgrammeRow]:
        rows = await self.conn.fetch(
            "SELECT view FROM projection.subject_state WHERE programme_id IS NOT NULL"
            " AND ($1::text IS NULL OR programme_id = $1) ORDER BY subject_id", programme_id)
        views = [SubjectView.from_json(orjson.loads(r["view"])) for r in rows]
        return [ProgrammeRow.of(v) for v in views]
