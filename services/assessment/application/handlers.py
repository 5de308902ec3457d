"""Assessment handlers."""

from __future__ import annotations

from contracts.commands import CorrectResponseAssessment, RecordResponseAssessment
from contracts.events import ProductInfused
from services.assessment.application.ports import Infusion, Infusions
from services.assessment.domain.model import Assessments, assessment_stream
from services.kernel.aggregate import rebuild
from services.kernel.clinical_dates import start_of_day
from services.kernel.streams import Streams, reads


@reads(lambda cmd: [assessment_stream(cmd.subject_id)])
async def record_response(cmd: RecordResponseAssessment, streams: Streams, infusions: Infusions) -> None:
    events, version = await streams.load(assessment_stream(cmd.subject_id))
    new = rebuild(Assessments(cmd.subject_id), events).assess(
        cmd, await infusions.first_infusion_on(cmd.subject_id))
    await streams.append(assessment_stream(cmd.subject_id), version, new,
                         occurred_at=start_of_day(cmd.assessed_on), subject_id=cmd.subject_id)


@reads(lambda cmd: [assessment_stream(cmd.subject_id)])
async def correct_response(cmd: CorrectResponseAssessment, streams: Streams, infusions: Infusions) -> None:
    events, version = await streams.load(assessment_stream(cmd.subject_id))
    new = rebuild(Assessments(cmd.subject_id), events).correct(
        cmd, await infusions.first_infusion_on(cmd.subject_id))
    await streams.append(assessment_stream(cmd.subject_id), version, new,
                         occurred_at=start_of_day(cmd.assessed_on), subject_id=cmd.subject_id)


async def on_products_infused(events: list[ProductInfused], infusions: Infusions) -> None:
    await infusions.add_many([Infusion(e.subject_id, e.infusion_number, e.infused_at) for e in events])
