"""asyncpg adapters: infusion.second_infusion_policies (migration 0013) and
infusion.subject_treatments (migration 0014)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from contracts.programmes import Dosing
from services.infusion.application.ports import SubjectPolicy
from services.infusion.domain.dosing import Treatment


class PgPolicies:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def policy_of(self, subject_id: str) -> SubjectPolicy | None:
        row = await self.conn.fetchrow("SELECT subject_id, programme_id, programme_version, policy"
                                       " FROM infusion.second_infusion_policies WHERE subject_id = $1", subject_id)
        return SubjectPolicy(row["subject_id"], row["programme_id"], row["programme_version"],
                             json.loads(row["policy"])) if row else None

    async def add_many(self, policies: Sequence[SubjectPolicy]) -> None:
        await self.conn.execute(
            "INSERT INTO infusion.second_infusion_policies (subject_id, programme_id, programme_version, policy)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::jsonb[]) ON CONFLICT DO NOTHING",
            [p.subject_id for p in policies], [p.programme_id for p in policies],
            [p.programme_version for p in policies], [json.dumps(p.policy) for p in policies])


class PgTreatments:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def of(self, subject_id: str) -> Treatment | None:
        row = await self.conn.fetchrow("SELECT subject_id, programme_id, programme_version, dosing, dose_level"
                                       " FROM infusion.subject_treatments WHERE subject_id = $1", subject_id)
        return Treatment(row["subject_id"], row["programme_id"], row["programme_version"],
                         Dosing.model_validate_json(row["dosing"]), row["dose_level"]) if row else None

    async def add_many(self, treatments: Sequence[Treatment]) -> None:
        await self.conn.execute(
            "INSERT INTO infusion.subject_treatments (subject_id, programme_id, programme_version, dosing, dose_level)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::jsonb[], $5::integer[])"
            " ON CONFLICT DO NOTHING",
            [t.subject_id for t in treatments], [t.programme_id for t in treatments],
            [t.programme_version for t in treatments], [t.dosing.model_dump_json() for t in treatments],
            [t.dose_level for t in treatments])
