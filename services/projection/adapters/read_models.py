"""asyncpg adapter for the projection's read models (projection.subject_state), its
applied-event set and its per-partition offsets, all written in one transaction."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import asyncpg

from services.projection.domain.subject_view import SubjectView, TimelineEntry

READ_MODEL_TABLES = ("projection.subject_state", "projection.applied", "projection.offsets")


def _row_to_view(row: asyncpg.Record) -> SubjectView:
    return SubjectView(
        subject_id=row["subject_id"], centre_id=row["centre_id"], programme_id=row["programme_id"],
        phase=row["phase"], timeline=tuple(TimelineEntry(**t) for t in json.loads(row["timeline"])),
        coi_id=row["coi_id"], collected_at=row["collected_at"], infused_at=row["infused_at"],
        day28=json.loads(row["day28"]) if row["day28"] else None,
        vein_to_vein_days=(row["infused_at"].date() - row["collected_at"].date()).days
        if row["infused_at"] and row["collected_at"] else None,
    )


class PgReadModels:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def mark_applied(self, event_id: uuid.UUID) -> bool:
        return await self.conn.fetchval(
            "INSERT INTO projection.applied (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
            event_id) is True

    async def get(self, subject_id: str) -> SubjectView | None:
        row = await self.conn.fetchrow("SELECT * FROM projection.subject_state WHERE subject_id = $1", subject_id)
        return _row_to_view(row) if row else None

    async def put(self, view: SubjectView) -> None:
        j = view.to_json()
        await self.conn.execute(
            "INSERT INTO projection.subject_state (subject_id, centre_id, programme_id, phase, timeline, coi_id,"
            " collected_at, infused_at, day28) VALUES ($1,$2,$3,$4,$5::jsonb,$6,$7,$8,$9::jsonb)"
            " ON CONFLICT (subject_id) DO UPDATE SET centre_id = EXCLUDED.centre_id,"
            " programme_id = EXCLUDED.programme_id, phase = EXCLUDED.phase, timeline = EXCLUDED.timeline,"
            " coi_id = EXCLUDED.coi_id, collected_at = EXCLUDED.collected_at, infused_at = EXCLUDED.infused_at,"
            " day28 = EXCLUDED.day28",
            view.subject_id, view.centre_id, view.programme_id, view.phase, json.dumps(j["timeline"]),
            view.coi_id, view.collected_at, view.infused_at, json.dumps(view.day28) if view.day28 else None)

    async def offsets(self) -> dict[tuple[str, int], int]:
        rows = await self.conn.fetch("SELECT topic, partition, next_offset FROM projection.offsets")
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def save_offset(self, topic: str, partition: int, next_offset: int) -> None:
        await self.conn.execute(
            "INSERT INTO projection.offsets (topic, partition, next_offset) VALUES ($1, $2, $3)"
            " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
            topic, partition, next_offset)

    async def clear(self) -> None:
        await self.conn.execute(f"TRUNCATE {', '.join(READ_MODEL_TABLES)}")

    async def all_views(self) -> list[dict]:
        rows = await self.conn.fetch("SELECT * FROM projection.subject_state ORDER BY subject_id")
        return [_row_to_view(r).to_json() for r in rows]

    async def programme_rows(self, programme_id: str | None) -> list[asyncpg.Record]:
        return await self.conn.fetch(
            "SELECT programme_id, phase, day28, collected_at, infused_at FROM projection.subject_state"
            " WHERE programme_id IS NOT NULL AND ($1::text IS NULL OR programme_id = $1) ORDER BY programme_id",
            programme_id)
