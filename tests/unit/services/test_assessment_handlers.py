"""Assessment handlers: response after infusion, study day 0 = first infusion, NCCN ALL
response categories with the prior status taken from the subject's earlier assessments."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import CorrectResponseAssessment, RecordObservation, RecordResponseAssessment
from contracts.events import BaselineAssessed, MrdStatus, ProductInfused, ResponseAssessed, ResponseAssessmentCorrected, ResponseCategory
from contracts.observations import BloodCounts
from services.assessment.domain.toxicity import AgeAtEnrolment
from services.clinical.eligibility import age_in_completed_years
from services.assessment import bootstrap
from services.assessment.domain.model import (
    AssessmentBeforeBirth,
    AssessmentBeforeInfusion,
    BaselineAfterInfusion,
    BaselineAlreadyRecorded,
    CorrectionChangesNothing,
    NoAssessmentToCorrect,
    SubjectNotInfused,
    assessment_stream,
)
from tests.unit.services.fakes import Bus, FakeAges, FakeEscalations, FakeInfusions, FakeStreams, FakeSubjectCentres

SUBJECT = "S-0123456789AB"
INFUSED_AT = datetime(2024, 3, 1, 10, 30, tzinfo=timezone.utc)


def wired(streams: FakeStreams, infusions: FakeInfusions, escalations: FakeEscalations | None = None,
          ages: FakeAges | None = None) -> Bus:
    return Bus(bootstrap.spec, streams=streams, infusions=infusions, escalations=escalations or FakeEscalations(),
               ages=ages or FakeAges(), subject_centres=FakeSubjectCentres())


def assessment(on: date = date(2024, 3, 29), *, blasts: float = 1.0, anc: float = 2500,
               platelets: float = 150_000, flow: float | None = None,
               molecular: float | None = None) -> RecordResponseAssessment:
    return RecordResponseAssessment(subject_id=SUBJECT, assessed_on=on, marrow_blasts_percent=blasts,
                                    circulating_blasts=False, extramedullary_disease=False, anc_per_ul=anc,
                                    platelets_per_ul=platelets, flow_mrd_percent=flow,
                                    molecular_mrd_percent=molecular)


async def infused() -> FakeInfusions:
    infusions = FakeInfusions()
    await infusions.add(SUBJECT, 1, INFUSED_AT)
    return infusions


def recorded(streams: FakeStreams) -> ResponseAssessed:
    return streams.events(assessment_stream(SUBJECT))[-1]


class TestRecordResponse:
    async def test_an_assessment_before_any_infusion_is_refused(self):
        with pytest.raises(SubjectNotInfused) as refused:
            await wired(FakeStreams(), FakeInfusions()).send(assessment())

        assert refused.value.code == "SUBJECT_NOT_INFUSED"

    async def test_an_assessment_dated_before_the_infusion_is_refused(self):
        with pytest.raises(AssessmentBeforeInfusion) as refused:
            await wired(FakeStreams(), await infused()).send(assessment(date(2024, 2, 29)))

        assert refused.value.code == "ASSESSMENT_BEFORE_INFUSION"

    @pytest.mark.parametrize(
        "assessed_on, study_day",
        [
            pytest.param(date(2024, 3, 1), 0, id="infusion-day-is-day-0"),
            pytest.param(date(2024, 3, 2), 1, id="next-day-is-day-1"),
            # CAR-CIK protocol (seed 000): primary endpoint at day 28 after the first infusion
            pytest.param(date(2024, 3, 29), 28, id="day-28-across-a-leap-february"),
        ],
    )
    async def test_the_study_day_counts_from_the_infusion_day_as_day_0(self, assessed_on, study_day):
        streams = FakeStreams()

        await wired(streams, await infused()).send(assessment(assessed_on))

        assert recorded(streams).study_day == study_day

    async def test_the_study_day_counts_from_the_first_infusion_not_a_later_one(self):
        streams, infusions = FakeStreams(), await infused()
        await infusions.add(SUBJECT, 2, datetime(2024, 3, 20, tzinfo=timezone.utc))

        await wired(streams, infusions).send(assessment(date(2024, 3, 29)))

        assert recorded(streams).study_day == 28

    async def test_a_cr_with_mrd_below_0_01_percent_is_an_mrd_negative_complete_remission(self):
        streams = FakeStreams()

        await wired(streams, await infused()).send(assessment(flow=0.005))

        event = recorded(streams)
        assert (event.response_category, event.mrd_status) == (ResponseCategory.CR, MrdStatus.NEGATIVE)

    async def test_marrow_blasts_of_5_percent_after_a_cr_are_a_haematological_relapse(self):
        streams, infusions = FakeStreams(), await infused()
        await wired(streams, infusions).send(assessment(date(2024, 3, 29), flow=0.005))

        await wired(streams, infusions).send(assessment(date(2024, 6, 1), blasts=5.0))

        assert recorded(streams).response_category is ResponseCategory.HAEMATOLOGICAL_RELAPSE

    async def test_the_prior_remission_is_read_from_earlier_events_in_the_stream(self):
        earlier_cr = ResponseAssessed(
            subject_id=SUBJECT, assessed_on=date(2024, 3, 29), study_day=28, marrow_blasts_percent=1.0,
            response_category=ResponseCategory.CR, mrd_status=MrdStatus.POSITIVE, morphologic_response=True)
        streams = FakeStreams({assessment_stream(SUBJECT): [earlier_cr]})

        await wired(streams, await infused()).send(assessment(date(2024, 6, 1), blasts=12.0))

        assert recorded(streams).response_category is ResponseCategory.HAEMATOLOGICAL_RELAPSE

    async def test_marrow_blasts_of_5_percent_without_an_earlier_cr_are_no_response(self):
        streams = FakeStreams()

        await wired(streams, await infused()).send(assessment(blasts=5.0))

        assert recorded(streams).response_category is ResponseCategory.NO_RESPONSE

    async def test_a_refused_assessment_appends_nothing(self):
        streams = FakeStreams()

        with pytest.raises(SubjectNotInfused):
            await wired(streams, FakeInfusions()).send(assessment())

        assert streams.appended == []


def correction(on: date = date(2024, 3, 29), *, blasts: float, reason: str = "transcription error: 12 read as 1.2",
               **changes) -> CorrectResponseAssessment:
    return CorrectResponseAssessment(**{**assessment(on, blasts=blasts).model_dump(), **changes, "reason": reason})


class TestCorrectResponse:
    """A correction is a new record with its reason, superseding, never editing (EU GMP Annex 11 §9)."""

    async def test_a_correction_is_appended_after_the_original_which_stays(self):
        streams = FakeStreams()
        bus = wired(streams, await infused())
        await bus.send(assessment(blasts=1.0))

        await bus.send(correction(blasts=12.0))

        original, corrected = streams.events(assessment_stream(SUBJECT))
        assert original.marrow_blasts_percent == 1.0 and original.response_category is ResponseCategory.CR
        assert isinstance(corrected, ResponseAssessmentCorrected)
        assert corrected.marrow_blasts_percent == 12.0 and corrected.response_category is ResponseCategory.NO_RESPONSE
        assert corrected.reason == "transcription error: 12 read as 1.2"

    async def test_a_correction_without_an_assessment_on_its_date_is_refused(self):
        with pytest.raises(NoAssessmentToCorrect):
            await wired(FakeStreams(), await infused()).send(correction(blasts=12.0))

    async def test_a_correction_that_changes_nothing_is_refused(self):
        bus = wired(FakeStreams(), await infused())
        await bus.send(assessment(blasts=1.0))

        with pytest.raises(CorrectionChangesNothing):
            await bus.send(correction(blasts=1.0))

    async def test_a_later_assessment_reads_its_prior_status_from_the_correction_not_the_original(self):
        streams = FakeStreams()
        bus = wired(streams, await infused())
        await bus.send(assessment(blasts=1.0))  # a CR ...
        await bus.send(correction(blasts=12.0))  # ... that was in truth no response

        await bus.send(assessment(date(2024, 6, 1), blasts=12.0))

        # after a CR, 12 % blasts would be a relapse; without one, no response
        assert recorded(streams).response_category is ResponseCategory.NO_RESPONSE


class TestOnProductInfused:
    async def test_an_infusion_learnt_from_the_infusion_service_allows_assessment(self):
        streams, infusions = FakeStreams(), FakeInfusions()
        event = ProductInfused(subject_id=SUBJECT, coi_id="W0001250000011", infused_at=INFUSED_AT, infusion_number=1)

        assessment_service = wired(streams, infusions)

        await assessment_service.send(event)
        await assessment_service.send(assessment())

        assert recorded(streams).study_day == 28


def baseline(on: date = date(2024, 2, 26), **kwargs) -> RecordResponseAssessment:
    return assessment(on, **kwargs).model_copy(update={"baseline": True})


class TestBaseline:
    """The disease before the first infusion (issue 11 item 1): what a response is a change from."""

    async def test_a_baseline_is_recorded_before_the_infusion_is_known_with_its_disease_by_each_reading(self):
        streams = FakeStreams()
        await wired(streams, FakeInfusions()).send(baseline(blasts=45.0, flow=40.0, molecular=3.0))

        [recorded_baseline] = streams.events(assessment_stream(SUBJECT))
        assert isinstance(recorded_baseline, BaselineAssessed)
        assert (recorded_baseline.in_remission, recorded_baseline.morphologic_disease, recorded_baseline.flow_disease,
                recorded_baseline.molecular_disease, recorded_baseline.mrd_status) == (
            False, True, True, True, MrdStatus.POSITIVE)

    @pytest.mark.parametrize(("on", "accepted"), [(date(2024, 3, 1), True), (date(2024, 3, 2), False)])
    async def test_a_baseline_is_dated_on_or_before_the_infusion_day(self, on, accepted):
        bus = wired(FakeStreams(), await infused())
        if accepted:
            await bus.send(baseline(on))
        else:
            with pytest.raises(BaselineAfterInfusion, match="follows the first infusion on 2024-03-01"):
                await bus.send(baseline(on))

    async def test_an_assessment_before_the_infusion_names_the_baseline(self):
        with pytest.raises(AssessmentBeforeInfusion, match="baseline true"):
            await wired(FakeStreams(), await infused()).send(assessment(date(2024, 2, 26)))

    async def test_a_second_baseline_of_a_date_is_refused_and_a_correction_supersedes_it(self):
        streams = FakeStreams()
        bus = wired(streams, FakeInfusions())
        await bus.send(baseline(blasts=1.0))
        with pytest.raises(BaselineAlreadyRecorded):
            await bus.send(baseline(blasts=30.0))
        with pytest.raises(CorrectionChangesNothing):
            await bus.send(correction(date(2024, 2, 26), blasts=1.0, baseline=True))

        await bus.send(correction(date(2024, 2, 26), blasts=30.0, baseline=True))

        original, corrected = streams.events(assessment_stream(SUBJECT))
        assert (original.in_remission, corrected.in_remission) == (True, False)
        assert corrected.correction_reason == "transcription error: 12 read as 1.2"
        with pytest.raises(NoAssessmentToCorrect):
            await bus.send(correction(date(2024, 2, 27), blasts=3.0, baseline=True))

    async def test_after_a_baseline_in_remission_blasts_of_5_percent_are_a_relapse(self):
        # seed 001 enrols patients in CR with MRD: NCCN ALL calls >= 5 % blasts after a CR a relapse
        streams = FakeStreams()
        bus = wired(streams, await infused())
        await bus.send(baseline(blasts=1.0, molecular=0.5))
        await bus.send(assessment(blasts=8.0))
        assert recorded(streams).response_category is ResponseCategory.HAEMATOLOGICAL_RELAPSE

        streams = FakeStreams()
        bus = wired(streams, await infused())
        await bus.send(baseline(blasts=60.0))  # not in remission: the same marrow is no response
        await bus.send(assessment(blasts=8.0))
        assert recorded(streams).response_category is ResponseCategory.NO_RESPONSE


class TestBeforeBirth:
    """Issue 12 item 5: a record of the subject dated before its birth is refused. The date of
    birth stays in enrollment; the age at enrolment (`SubjectEnrolled.age_years`) bounds it:
    a date before the earliest date of birth that age allows is certainly before the birth."""

    # aged 43 when enrolled on 4 March 2024: born from 5 March 1980 to 4 March 1981
    AGE = AgeAtEnrolment(date(2024, 3, 4), 43)

    def ages(self, age: AgeAtEnrolment = AGE) -> FakeAges:
        return FakeAges({SUBJECT: age})

    @pytest.mark.parametrize(("enrolled_on", "age", "earliest"), [
        (date(2024, 3, 4), 43, date(1980, 3, 5)),
        (date(2024, 2, 29), 10, date(2013, 3, 1)),  # 28 February 2013 would have made 11
        (date(2024, 2, 29), 3, date(2020, 3, 1)),
        (date(2024, 1, 1), 0, date(2023, 1, 2)),
    ])
    def test_the_earliest_date_of_birth_the_age_allows(self, enrolled_on, age, earliest):
        assert AgeAtEnrolment(enrolled_on, age).earliest_birth() == earliest
        assert age_in_completed_years(earliest, enrolled_on) == age
        assert age_in_completed_years(earliest - timedelta(days=1), enrolled_on) == age + 1

    def test_the_bound_is_exact_over_every_day_of_four_years(self):
        start = date(2020, 1, 1)
        for offset in range(4 * 366):
            enrolled_on = start + timedelta(days=offset)
            for age in (0, 1, 17, 89):
                earliest = AgeAtEnrolment(enrolled_on, age).earliest_birth()
                assert age_in_completed_years(earliest, enrolled_on) == age
                assert age_in_completed_years(earliest - timedelta(days=1), enrolled_on) > age

    @pytest.mark.parametrize("age", [AgeAtEnrolment(date(2024, 3, 4), None), AgeAtEnrolment(date(2024, 3, 4), 90)])
    def test_an_unknown_age_or_90_or_older_bounds_nothing(self, age):
        assert age.earliest_birth() is None

    async def test_a_response_assessment_before_the_birth_is_refused_naming_the_rule(self):
        with pytest.raises(AssessmentBeforeBirth) as refused:
            await wired(FakeStreams(), await infused(), ages=self.ages()).send(assessment(date(1980, 3, 4)))

        assert refused.value.code == "ASSESSMENT_BEFORE_BIRTH"
        for shown in ("1980-03-04", "aged 43", "2024-03-04", "1980-03-05"):
            assert shown in refused.value.reason

    async def test_a_date_the_age_allows_as_a_birthday_is_not_judged_before_birth(self):
        # refused for what it is: before the infusion, not before a birth it may follow
        with pytest.raises(AssessmentBeforeInfusion):
            await wired(FakeStreams(), await infused(), ages=self.ages()).send(assessment(date(1980, 3, 5)))

    async def test_a_baseline_before_the_birth_is_refused(self):
        with pytest.raises(AssessmentBeforeBirth, match="the baseline dated 1979-12-31"):
            await wired(FakeStreams(), FakeInfusions(), ages=self.ages()).send(baseline(date(1979, 12, 31)))

    async def test_a_correction_before_the_birth_is_refused(self):
        with pytest.raises(AssessmentBeforeBirth):
            await wired(FakeStreams(), await infused(), ages=self.ages()).send(CorrectResponseAssessment(
                **assessment(date(1975, 1, 1)).model_dump(), reason="transcription error"))

    async def test_an_observation_before_the_birth_is_refused_by_its_local_date(self):
        # 00:30 on 5 March 1980 at UTC+01:00 is 4 March in UTC, but 5 March where observed
        streams = FakeStreams()
        at = datetime(1980, 3, 5, 0, 30, tzinfo=timezone(timedelta(hours=1)))
        bus = wired(streams, FakeInfusions(), ages=self.ages())

        await bus.send(RecordObservation(subject_id=SUBJECT, observed_at=at, observation=BloodCounts(anc_per_ul=2500)))
        with pytest.raises(AssessmentBeforeBirth):
            await bus.send(RecordObservation(subject_id=SUBJECT, observed_at=at - timedelta(days=1),
                                             observation=BloodCounts(anc_per_ul=2500)))

    async def test_a_baseline_before_the_enrolment_is_accepted(self):
        streams = FakeStreams()

        await wired(streams, FakeInfusions(), ages=self.ages()).send(RecordObservation(
            subject_id=SUBJECT, observed_at=datetime(2024, 2, 20, 9, 0, tzinfo=timezone.utc),
            observation=BloodCounts(anc_per_ul=2500)))

        assert len(streams.events(assessment_stream(SUBJECT))) >= 1

    async def test_without_a_known_age_nothing_is_judged_before_birth(self):
        streams = FakeStreams()

        await wired(streams, FakeInfusions()).send(RecordObservation(
            subject_id=SUBJECT, observed_at=datetime(1901, 1, 1, tzinfo=timezone.utc),
            observation=BloodCounts(anc_per_ul=2500)))

        assert len(streams.events(assessment_stream(SUBJECT))) >= 1
