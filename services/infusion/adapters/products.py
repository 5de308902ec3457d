"""asyncpg adapter: infusion.released_products, a local view of manufacturing's events."""

from __future__ import annotations

import asyncpg

from services.infusion.domain.model import ReleasedProduct


class PgReleasedProducts:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, coi_id: str) -> ReleasedProduct | None:
        row = await self.conn.fetchrow(
            "SELECT coi_id, subject_id, released_at FROM infusion.released_products WHERE coi_id = $1", coi_id)
        return ReleasedProduct(row["coi_id"], row["subject_id"], row["released_at"]) if row else None

    async def add(self, product: ReleasedProduct, lot_number: str) -> None:
        await self.conn.execute(
            "INSERT INTO infusion.released_products (coi_id, subject_id, lot_number, released_at)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            product.coi_id, product.subject_id, lot_number, product.released_at)
