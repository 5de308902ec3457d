"""Ports of the enrollment service: what its handlers need from the outside world
(the event store is the kernel's `Streams`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol


class IdentityAlreadyRecorded(Exception):
    """An identity for this record number at this centre (or for this subject id) is already
    kept: typically a concurrent registration of the same person won."""


@dataclass(frozen=True)
class Identity:
    """One person's direct identifiers, as registered. Never logged, never published."""

    centre_id: str
    hospital_record_number: str
    family_name: str
    given_name: str
    date_of_birth: date

    def __repr__(self) -> str:  # so a stray log line or traceback shows no identifier
        return f"Identity(centre_id={self.centre_id!r}, <identifiers withheld>)"


class Identities(Protocol):
    """The only place direct identifiers live; never published. Kept encrypted at rest
    (docs/design.md, "Identity")."""

    async def find(self, centre_id: str, hospital_record_number: str) -> str | None:
        """The subject kept for this record number at this centre; letter case and surrounding
        spaces of the record number do not matter."""
        ...

    async def add(self, subject_id: str, centre_id: str, hospital_record_number: str,
                  family_name: str, given_name: str, date_of_birth: date) -> None:
        """Keep one person's identifiers; raises IdentityAlreadyRecorded, keeping nothing,
        if the centre's record number or the subject id already has one."""
        ...

    async def get(self, subject_id: str) -> Identity | None:
        """The identifiers kept for a subject, or None if none are (never kept, or erased)."""
        ...

    async def erase(self, subject_id: str) -> bool:
        """Remove the subject's identifiers and the key material they are readable with, so
        no copy of them can be read again and the record number no longer finds the subject.
        True if there was something to remove."""
        ...
