"""Ports of the infusion service (the event store is the kernel's `Streams`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from services.infusion.domain.model import ReleasedProduct


class Release(NamedTuple):
    product: ReleasedProduct
    lot_number: str


class ReleasedProducts(Protocol):
    """Releases learnt from manufacturing's events, never from its tables."""

    async def get(self, coi_id: str) -> ReleasedProduct | None: ...

    async def add(self, product: ReleasedProduct, lot_number: str) -> None:
        """Idempotent: a COI's release is kept once, as first added."""
        ...

    async def add_many(self, releases: Sequence[Release]) -> None:
        """`add` of each, in order, in one go."""
        ...
