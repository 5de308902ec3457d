"""Assessment handlers."""

from __future__ import annotations

from contracts.commands import CorrectResponseAssessment, RecordDltEvaluation, RecordObservation, RecordResponseAssessment
from contracts.events import ProductInfused, SubjectEnrolled
from services.assessment.application.ports import Ages, Escalation, Escalations, Infusion, Infusions, SubjectAge
from services.assessment.domain.toxicity import AgeAtEnrolment
from services.assessment.domain.model import Assessments, assessment_stream, evaluate_dlt, observe
from services.kernel.aggregate import rebuild
from services.kernel.clinical_dates import start_of_day
from services.kernel.streams import Streams, reads
from services.kernel.subjects import SubjectCentres, learn_subject_centres


@reads(lambda cmd: [assessment_stream(cmd.subject_id)])
async def record_response(cmd: RecordResponseAssessment, streams: Streams, infusions: Infusions,
                          ages: Ages) -> None:
    events, version = await streams.load(assessment_stream(cmd.subject_id))
    new = rebuild(Assessments(cmd.subject_id), events).assess(
        cmd, await infusions.first_infusion_on(cmd.subject_id), await ages.of(cmd.subject_id))
    await streams.append(assessment_stream(cmd.subject_id), version, new,
                         occurred_at=start_of_day(cmd.assessed_on), subject_id=cmd.subject_id)


@reads(lambda cmd: [assessment_stream(cmd.subject_id)])
async def correct_response(cmd: CorrectResponseAssessment, streams: Streams, infusions: Infusions,
                           ages: Ages) -> None:
    events, version = await streams.load(assessment_stream(cmd.subject_id))
    new = rebuild(Assessments(cmd.subject_id), events).correct(
        cmd, await infusions.first_infusion_on(cmd.subject_id), await ages.of(cmd.subject_id))
    await streams.append(assessment_stream(cmd.subject_id), version, new,
                         occurred_at=start_of_day(cmd.assessed_on), subject_id=cmd.subject_id)


async def on_products_infused(events: list[ProductInfused], infusions: Infusions) -> None:
    await infusions.add_many([Infusion(e.subject_id, e.infusion_number, e.infused_at) for e in events])


@reads(lambda cmd: [assessment_stream(cmd.subject_id)])
async def record_dlt_evaluation(cmd: RecordDltEvaluation, streams: Streams, infusions: Infusions,
                                escalations: Escalations, ages: Ages) -> None:
    events, version = await streams.load(assessment_stream(cmd.subject_id))
    new = evaluate_dlt(rebuild(Assessments(cmd.subject_id), events), cmd,
                       await infusions.first_infusion_on(cmd.subject_id), await escalations.of(cmd.subject_id),
                       await ages.of(cmd.subject_id))
    await streams.append(assessment_stream(cmd.subject_id), version, new,
                         occurred_at=start_of_day(cmd.evaluated_on), subject_id=cmd.subject_id)


@reads(lambda cmd: [assessment_stream(cmd.subject_id)])
async def record_observation(cmd: RecordObservation, streams: Streams, infusions: Infusions, ages: Ages,
                             escalations: Escalations) -> None:
    events, version = await streams.load(assessment_stream(cmd.subject_id))
    new = observe(rebuild(Assessments(cmd.subject_id), events), cmd, await infusions.first_infusion_on(cmd.subject_id),
                  await ages.of(cmd.subject_id), await escalations.of(cmd.subject_id))
    await streams.append(assessment_stream(cmd.subject_id), version, new, occurred_at=cmd.observed_at,
                         subject_id=cmd.subject_id)


async def on_subjects_enrolled(events: list[SubjectEnrolled], subject_centres: SubjectCentres,
                               escalations: Escalations, ages: Ages) -> None:
    """Each subject's centre (the command guard's), its age at enrolment and, in a dose
    escalation, its level and the programme's DLT window."""
    await learn_subject_centres(events, subject_centres)
    await ages.add_many([SubjectAge(e.subject_id, AgeAtEnrolment(e.enrolled_on, e.age_years)) for e in events])
    await escalations.add_many([Escalation(e.subject_id, e.programme_id, e.dose_level, e.dlt_window_days,
                                           e.dlt_rule.model_dump() if e.dlt_rule is not None else None)
                                for e in events if e.dose_level is not None and e.dlt_window_days is not None])
