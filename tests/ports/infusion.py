"""Infusion's ReleasedProducts port: PgReleasedProducts and FakeReleasedProducts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.infusion.application.ports import Release
from services.infusion.domain.model import ReleasedProduct

CET = timezone(timedelta(hours=1))
PRODUCT = ReleasedProduct(coi_id="W0001250000011", subject_id="S-0123456789AB",
                          released_at=datetime(2024, 3, 24, 12, 0, tzinfo=CET))


class ReleasedProductsContract:
    async def test_a_product_never_released_is_unknown(self, products):
        assert await products.get("W0001250000011") is None

    async def test_a_released_product_is_known_by_its_coi_with_its_subject_and_release_time(self, products):
        await products.add(PRODUCT, "LOT-24-017")

        assert await products.get("W0001250000011") == PRODUCT

    async def test_a_release_learnt_twice_is_kept_as_first_learnt(self, products):
        await products.add(PRODUCT, "LOT-24-017")

        await products.add(ReleasedProduct("W0001250000011", "S-BA9876543210", PRODUCT.released_at), "LOT-24-099")

        assert await products.get("W0001250000011") == PRODUCT

    async def test_releases_added_together_are_kept_as_first_learnt_also_among_themselves(self, products):
        other = ReleasedProduct("W000125000002*", "S-BA9876543210", PRODUCT.released_at)
        await products.add_many([Release(PRODUCT, "LOT-24-017"),
                                 Release(ReleasedProduct("W0001250000011", "S-BA9876543210", PRODUCT.released_at),
                                         "LOT-24-099"),
                                 Release(other, "LOT-24-100")])

        assert (await products.get("W0001250000011"), await products.get("W000125000002*")) == (PRODUCT, other)
