"""Ports of the assessment service (the event store is the kernel's `Streams`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

from services.assessment.domain.toxicity import AgeAtEnrolment


class Infusion(NamedTuple):
    subject_id: str
    infusion_number: int
    infused_at: datetime


class Infusions(Protocol):
    """Infusions learnt from infusion's events."""

    async def first_infusion_on(self, subject_id: str) -> date | None:
        """The clinical date (services.kernel.clinical_dates) of the subject's infusion
        number 1, or of the lowest number known: study day 0."""
        ...

    async def add(self, subject_id: str, infusion_number: int, infused_at: datetime) -> None:
        """Idempotent: a subject's infusion number is kept once, as first added."""
        ...

    async def add_many(self, infusions: Sequence[Infusion]) -> None:
        """`add` of each, in order, in one go."""
        ...


class Escalation(NamedTuple):
    """A subject in a dose escalation: its programme, the level the design assigned it and the
    programme's DLT window (days after the first infusion)."""

    subject_id: str
    programme_id: str
    dose_level: int
    dlt_window_days: int
    # the programme's DLT definition (contracts/programmes.DltRule as JSON); None: none
    dlt_rule: dict[str, Any] | None = None


class Escalations(Protocol):
    """The subjects of dose escalations, learnt from enrollment's `SubjectEnrolled`."""

    async def of(self, subject_id: str) -> Escalation | None: ...

    async def add_many(self, escalations: Sequence[Escalation]) -> None:
        """Idempotent: a subject's escalation is kept as first learnt."""
        ...


class SubjectAge(NamedTuple):
    subject_id: str
    age: AgeAtEnrolment


class Ages(Protocol):
    """Each enrolled subject's age at enrolment, learnt from enrollment's `SubjectEnrolled`
    (ICANS grading reads it: ICE from 12 years, CAPD below)."""

    async def of(self, subject_id: str) -> AgeAtEnrolment | None: ...

    async def add_many(self, ages: Sequence[SubjectAge]) -> None:
        """Idempotent: a subject's age is kept as first learnt (its first enrolment)."""
        ...
