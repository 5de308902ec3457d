"""Ports of the manufacturing service (the event store is the kernel's `Streams`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import NamedTuple, Protocol

from contracts.access import OrgKind


class Enrolment(NamedTuple):
    subject_id: str
    programme_id: str
    centre_id: str
    enrolled_on: date


class Enrolments(Protocol):
    """Which subjects enrollment has enrolled, learnt from its events."""

    async def centre_of(self, subject_id: str) -> str | None: ...

    async def programme_of(self, subject_id: str) -> str | None:
        """The programme the subject was last enrolled in (whose product specification its
        product is released against); None if not enrolled."""
        ...

    async def enrolled_on(self, subject_id: str) -> date | None:
        """The day of the subject's first enrolment (in any programme); None if not enrolled."""
        ...

    async def add(self, subject_id: str, programme_id: str, centre_id: str, enrolled_on: date) -> None:
        """Idempotent: a subject's enrolment in a programme is kept once, as first added."""
        ...

    async def add_many(self, enrolments: Sequence[Enrolment]) -> None:
        """`add` of each, in order, in one go."""
        ...


class Organisations(Protocol):
    """The organisations of the network (the access schema): what kind each one is."""

    async def kind_of(self, org_id: str) -> OrgKind | None:
        """None for an organisation the network does not know."""
        ...


class Person(NamedTuple):
    subject_id: str
    centre_id: str


class Persons(Protocol):
    """The people registered in the network (pseudonym and centre), learnt from enrollment's
    `PatientRegistered`: a donor must be one."""

    async def centre_of_person(self, subject_id: str) -> str | None:
        """The centre that registered the person; None if not known here."""
        ...

    async def add_many(self, persons: Sequence[Person]) -> None:
        """Idempotent: a person is kept as first learnt."""
        ...
