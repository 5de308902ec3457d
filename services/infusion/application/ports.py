"""Ports of the infusion service (the event store is the kernel's `Streams`)."""

from __future__ import annotations

from typing import Protocol

from services.infusion.domain.model import ReleasedProduct


class ReleasedProducts(Protocol):
    """Releases learnt from manufacturing's events, never from its tables."""

    async def get(self, coi_id: str) -> ReleasedProduct | None: ...

    async def add(self, product: ReleasedProduct, lot_number: str) -> None:
        """Idempotent: a COI's release is kept once, as first added."""
        ...
