"""Ports of the infusion service (the event store is the kernel's `Streams`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from contracts.custody import CustodyState
from contracts.events import CertifiedUnit
from services.infusion.domain.bedside import UnitView
from services.infusion.domain.dosing import Treatment
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

    async def move(self, unit_id: str, state: CustodyState, holder: str | None = None, *,
                   prepared_at: datetime | None = None) -> None:
        """A custody step took the unit to `state` (and to `holder`, when it changed hands;
        `prepared_at`, when it was thawed or prepared); once out of specification, it stays
        flagged."""
        ...

    async def judged(self, unit_id: str, *, within_specification: bool, expires_at: datetime | None,
                     use_within_minutes: int | None) -> None:
        """Its QC results were judged against its specification: the unit is quality-control
        complete, or out of specification (flagged for good); its limits of use are kept."""
        ...

    async def release(self, coi_id: str) -> None:
        """The COI's units that were quality-control complete are released (a release in
        effect at once, recorded before releases were signed)."""
        ...

    async def certify(self, units: Sequence[CertifiedUnit]) -> None:
        """The qualified person's signature released these units, each with its limits of use,
        those out of specification on the exceptional-release path. Idempotent: a unit no
        longer quality-control complete or out of specification (released already) is left
        as it is."""
        ...

    async def quarantine(self, unit_id: str, quarantined: bool) -> None:
        """An excursion quarantined the unit (True), or quality assurance's disposition ended it."""
        ...


class SubjectPolicy(NamedTuple):
    subject_id: str
    programme_id: str
    programme_version: int | None
    policy: dict


class Policies(Protocol):
    """Each enrolled subject's second-infusion policy, learnt from enrollment's
    `SubjectEnrolled` (the version it was enrolled under); none for a programme without one."""

    async def policy_of(self, subject_id: str) -> SubjectPolicy | None: ...

    async def add_many(self, policies: Sequence[SubjectPolicy]) -> None:
        """Idempotent: a subject's policy is kept as first learnt."""
        ...


class Treatments(Protocol):
    """Each enrolled subject's programme version's dosing sections (domain/dosing.py), learnt
    from enrollment's `SubjectEnrolled`; none for a subject enrolled before programmes were
    published."""

    async def of(self, subject_id: str) -> Treatment | None: ...

    async def add_many(self, treatments: Sequence[Treatment]) -> None:
        """Idempotent: a subject's treatment is kept as first learnt."""
        ...
