"""Ports of the infusion service (the event store is the kernel's `Streams`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from contracts.custody import CustodyState
from services.infusion.domain.bedside import UnitView
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


class Units(Protocol):
    """The units (bags) of labelled products, learnt from manufacturing's events: whose each
    is, who holds it and its custody state, for the bedside gate."""

    async def get(self, unit_id: str) -> UnitView | None: ...

    async def of_coi(self, coi_id: str) -> list[UnitView]:
        """The COI's units in identifier order (none: a product not labelled as units)."""
        ...

    async def register(self, units: Sequence[UnitView]) -> None:
        """Idempotent: a unit is kept as first registered."""
        ...

    async def move(self, unit_id: str, state: CustodyState, holder: str | None = None) -> None:
        """A custody step took the unit to `state` (and to `holder`, when it changed hands);
        once out of specification, it stays flagged."""
        ...

    async def release(self, coi_id: str) -> None:
        """The COI's units that were quality-control complete are released."""
        ...

    async def quarantine(self, unit_id: str, quarantined: bool) -> None:
        """An excursion quarantined the unit (True), or quality assurance's disposition ended it."""
        ...
