"""asyncpg adapter: infusion.released_products, a local view of manufacturing's events."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.infusion.application.ports import Release

from services.infusion.domain.model import ReleasedProduct


class PgReleasedProducts:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def get(self, coi_id: str) -> ReleasedProduct | None:
        row = await self.conn.fetchrow(
            "SELECT coi_id, subject_id, released_at, viable_cells_per_ml, volume_ml FROM infusion.released_products"
            " WHERE coi_id = $1", coi_id)
        return ReleasedProduct(row["coi_id"], row["subject_id"], row["released_at"], row["viable_cells_per_ml"],
                               row["volume_ml"]) if row else None

    async def add(self, product: ReleasedProduct, lot_number: str) -> None:
        await self.add_many([Release(product, lot_number)])

    async def add_many(self, releases: Sequence[Release]) -> None:
        await self.conn.execute(
            "INSERT INTO infusion.released_products"
            " (coi_id, subject_id, lot_number, released_at, viable_cells_per_ml, volume_ml)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[], $6::float8[])"
            " ON CONFLICT DO NOTHING",
            [r.product.coi_id for r in releases], [r.product.subject_id for r in releases],
            [r.lot_number for r in releases], [r.product.released_at for r in releases],
            [r.product.viable_cells_per_ml for r in releases], [r.product.volume_ml for r in releases])
