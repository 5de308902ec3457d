"""asyncpg adapter: the organisations of the access schema (read only)."""

from __future__ import annotations

import asyncpg

from contracts.access import OrgKind


class PgOrganisations:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def kind_of(self, org_id: str) -> OrgKind | None:
        kind = await self.conn.fetchval("SELECT kind FROM access.organisations WHERE org_id = $1", org_id)
        return None if kind is None else OrgKind(kind)
