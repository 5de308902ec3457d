"""asyncpg adapter: infusion.units, a local view of manufacturing's custody events."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from contracts.custody import CustodyState
from services.infusion.domain.bedside import UnitView

_COLUMNS = "unit_id, coi_id, subject_id, state, holder, out_of_specification, quarantined"


def _view(row: asyncpg.Record) -> UnitView:
    return UnitView(row["unit_id"], row["coi_id"], row["subject_id"], CustodyState(row["state"]), row["holder"],
                    row["out_of_specification"], row["quarantined"])


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
            " $7::boolean[]) ON CONFLICT DO NOTHING", [u.unit_id for u in units], [u.coi_id for u in units],
            [u.subject_id for u in units], [u.state.value for u in units], [u.holder for u in units],
            [u.out_of_specification for u in units], [u.quarantined for u in units])

    async def move(self, unit_id: str, state: CustodyState, holder: str | None = None) -> None:
        await self.conn.execute(
            "UPDATE infusion.units SET state = $2, holder = coalesce($3, holder),"
            " out_of_specification = out_of_specification OR $2 = 'out_of_specification' WHERE unit_id = $1",
            unit_id, state.value, holder)

    async def release(self, coi_id: str) -> None:
        await self.conn.execute("UPDATE infusion.units SET state = 'released' WHERE coi_id = $1 AND state = 'qc_complete'",
                                coi_id)

    async def quarantine(self, unit_id: str, quarantined: bool) -> None:
        await self.conn.execute("UPDATE infusion.units SET quarantined = $2 WHERE unit_id = $1", unit_id, quarantined)
