"""asyncpg adapter: infusion.units, a local view of manufacturing's custody events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from contracts.custody import CustodyState
from contracts.events import CertifiedUnit
from services.infusion.domain.bedside import UnitView

_COLUMNS = ("unit_id, coi_id, subject_id, state, holder, out_of_specification, quarantined, expires_at,"
            " use_within_minutes, prepared_at, released_out_of_specification")


def _view(row: asyncpg.Record) -> UnitView:
    return UnitView(row["unit_id"], row["coi_id"], row["subject_id"], CustodyState(row["state"]), row["holder"],
                    row["out_of_specification"], row["quarantined"], row["expires_at"], row["use_within_minutes"],
                    row["prepared_at"], row["released_out_of_specification"])


class PgUnits:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, unit_id: str) -> UnitView | None:
        row = await self.conn.fetchrow(f"SELECT {_COLUMNS} FROM infusion.units WHERE unit_id = $1", unit_id)
        return _view(row) if row else None

    async def of_coi(self, coi_id: str) -> list[UnitView]:
        rows = await self.conn.fetch(f"SELECT {_COLUMNS} FROM infusion.units WHERE coi_id = $1 ORDER BY unit_id", coi_id)
        return [_view(r) for r in rows]

    async def register(self, units: Sequence[UnitView]) -> None:
        await self.conn.execute(
            f"INSERT INTO infusion.units ({_COLUMNS})"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::boolean[],"
            " $7::boolean[], $8::timestamptz[], $9::integer[], $10::timestamptz[], $11::boolean[])"
            " ON CONFLICT DO NOTHING", [u.unit_id for u in units], [u.coi_id for u in units],
            [u.subject_id for u in units], [u.state.value for u in units], [u.holder for u in units],
            [u.out_of_specification for u in units], [u.quarantined for u in units],
            [u.expires_at for u in units], [u.use_within_minutes for u in units], [u.prepared_at for u in units],
            [u.released_out_of_specification for u in units])

    async def move(self, unit_id: str, state: CustodyState, holder: str | None = None, *,
                   prepared_at: datetime | None = None) -> None:
        await self.conn.execute(
            "UPDATE infusion.units SET state = $2, holder = coalesce($3, holder),"
            " out_of_specification = out_of_specification OR $2 = 'out_of_specification',"
            " prepared_at = coalesce($4, prepared_at) WHERE unit_id = $1",
            unit_id, state.value, holder, prepared_at)

    async def judged(self, unit_id: str, *, within_specification: bool, expires_at: datetime | None,
                     use_within_minutes: int | None) -> None:
        await self.conn.execute(
            "UPDATE infusion.units SET state = CASE WHEN $2 THEN 'qc_complete' ELSE 'out_of_specification' END,"
            " out_of_specification = out_of_specification OR NOT $2, expires_at = $3, use_within_minutes = $4"
            " WHERE unit_id = $1", unit_id, within_specification, expires_at, use_within_minutes)

    async def release(self, coi_id: str) -> None:
        await self.conn.execute("UPDATE infusion.units SET state = 'released' WHERE coi_id = $1 AND state = 'qc_complete'",
                                coi_id)

    async def certify(self, units: Sequence[CertifiedUnit]) -> None:
        await self.conn.execute(
            "UPDATE infusion.units u SET state = 'released', out_of_specification = u.out_of_specification OR c.oos,"
            " released_out_of_specification = c.oos, expires_at = c.expires_at,"
            " use_within_minutes = c.use_within_minutes"
            " FROM unnest($1::text[], $2::boolean[], $3::timestamptz[], $4::integer[])"
            " AS c (unit_id, oos, expires_at, use_within_minutes)"
            " WHERE u.unit_id = c.unit_id AND u.state IN ('qc_complete', 'out_of_specification')",
            [u.unit_id for u in units], [u.out_of_specification for u in units], [u.expires_at for u in units],
            [u.use_within_minutes for u in units])

    async def quarantine(self, unit_id: str, quarantined: bool) -> None:
        await self.conn.execute("UPDATE infusion.units SET quarantined = $2 WHERE unit_id = $1", unit_id, quarantined)
