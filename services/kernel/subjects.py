"""The `SubjectCentres` port: whose subject a command is about, for the access policy.

A command that names only a subject (RecordInfusion, RecordResponseAssessment) is authorised
against the subject's treating centre (issue 8 item 3: centre staff write only their own
centre's subjects). A service that takes such commands keeps a local view of enrollment's
`SubjectEnrolled` (subject -> centre) and offers it here; the command guard asks it before
the policy (infra/runtime/access/commands.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from contracts.events import SubjectEnrolled


class SubjectCentre(NamedTuple):
    subject_id: str
    centre_id: str


class SubjectCentres(Protocol):
    async def centre_of(self, subject_id: str) -> str | None:
        """The centre the subject is enrolled at, None if not known here (yet)."""
        ...

    async def add_many(self, subjects: Sequence[SubjectCentre]) -> None:
        """Idempotent: a subject's centre is kept as first learnt (an enrolment is never moved)."""
        ...


async def learn_subject_centres(events: list[SubjectEnrolled], subject_centres: SubjectCentres) -> None:
    """The handler that keeps the view: wired by each service that keeps one."""
    await subject_centres.add_many([SubjectCentre(e.subject_id, e.centre_id) for e in events])
