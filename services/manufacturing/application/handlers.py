"""Manufacturing handlers: chain of identity from collection to release."""

from __future__ import annotations

from datetime import datetime

from contracts import isbt128
from contracts.commands import RecordApheresisCollection, RecordProductRelease
from contracts.events import SubjectEnrolled
from services.kernel.aggregate import rebuild
from services.kernel.streams import Streams, reads
from services.manufacturing.application.ports import Enrolment, Enrolments
from services.manufacturing.domain.model import ChainOfIdentity, coi_stream


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_collection(cmd: RecordApheresisCollection, streams: Streams, enrolments: Enrolments) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    new = chain.collect(cmd, await enrolments.centre_of(cmd.subject_id))
    await streams.append(coi_stream(cmd.coi_id), version, new, occurred_at=cmd.collected_at,
                         subject_id=cmd.subject_id, centre_id=cmd.centre_id)


async def issue_coi(subject_id: str, centre_id: str, fin: str, sequence: int, at: datetime,
                    streams: Streams) -> str:
    """Issue COI `sequence` of `fin` in `at`'s year for the subject's starting material
    (docs/identifiers.md). Called over HTTP (entrypoints/http.py), not from the broker."""
    coi = str(isbt128.issue(fin, at.year, sequence))
    events, version = await streams.load(coi_stream(coi))
    await streams.append(coi_stream(coi), version, rebuild(ChainOfIdentity(coi), events).issue(subject_id, centre_id, at),
                         occurred_at=at, subject_id=subject_id, centre_id=centre_id)
    return coi


@reads(lambda cmd: [coi_stream(cmd.coi_id)])
async def record_release(cmd: RecordProductRelease, streams: Streams) -> None:
    events, version = await streams.load(coi_stream(cmd.coi_id))
    chain = rebuild(ChainOfIdentity(cmd.coi_id), events)
    await streams.append(coi_stream(cmd.coi_id), version, chain.release(cmd), occurred_at=cmd.released_at,
                         subject_id=cmd.subject_id)


async def on_subjects_enrolled(events: list[SubjectEnrolled], enrolments: Enrolments) -> None:
    await enrolments.add_many([Enrolment(e.subject_id, e.programme_id, e.centre_id, e.enrolled_on) for e in events])
