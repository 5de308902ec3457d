"""Ports of the enrollment service: what its handlers need from the outside world
(the event store is the kernel's `Streams`)."""

from __future__ import annotations

from datetime import date
from typing import Protocol


class IdentityAlreadyRecorded(Exception):
    """An identity for this record number at this centre (or for this subject id) is already
    kept: typically a concurrent registration of the same person won."""


class Identities(Protocol):
    """The only place direct identifiers live; never published."""

    async def find(self, centre_id: str, hospital_record_number: str) -> str | None: ...

    async def add(self, subject_id: str, centre_id: str, hospital_record_number: str,
                  family_name: str, given_name: str, date_of_birth: date) -> None:
        """Keep one person's identifiers; raises IdentityAlreadyRecorded, keeping nothing,
        if the centre's record number or the subject id already has one."""
        ...
