"""Resubmission is harmless (issue 12 item 4): a command resubmitted under its idempotency key
gets the original outcome and changes nothing; the same key with another body is refused;
a second, different observation of one kind for the same subject and time is refused unless
it is a correction with its reason, which the projection lets supersede."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import RecordObservation, RecordResponseAssessment
from contracts.envelope import CommandEnvelope
from contracts.errors import Forbidden, Unauthenticated
from contracts.events import ObservationRecorded, ResponseAssessed
from contracts.observations import AdverseEvent, BloodCounts, LupusAssessment, MolecularMrd, TreatmentGiven, VitalSigns
from infra.runtime.idempotency import IdempotencyKeyReused, keyed, remember_refusal
from infra.tooling.loader import LineResult, duplicate, line_key, source_of
from services.assessment import bootstrap
from services.assessment.domain.model import (
    CorrectionChangesNothing,
    DuplicateObservation,
    NoObservationToCorrect,
    SubjectNotInfused,
    assessment_stream,
)
from services.projection.domain.subject_view import SubjectView, fold
from tests.unit.services.fakes import (
    Bus,
    FakeAges,
    FakeEscalations,
    FakeFetchWrites,
    FakeInfusions,
    FakeStreams,
    FakeSubjectCentres,
)

SUBJECT = "S-0123456789AB"
CET = timezone(timedelta(hours=1))
INFUSED_AT = datetime(2024, 3, 1, 10, 30, tzinfo=timezone.utc)
KEY = "load:" + "a" * 64


def assessment(blasts: float = 1.0) -> RecordResponseAssessment:
    return RecordResponseAssessment(subject_id=SUBJECT, assessed_on=date(2024, 3, 29), marrow_blasts_percent=blasts,
                                    circulating_blasts=False, extramedullary_disease=False, anc_per_ul=2500,
                                    platelets_per_ul=150_000)


class Service:
    """Assessment as its bootstrap wires it, behind the idempotency keys as the consumer puts
    them (infra/runtime/host.py: guard(keyed(handlers))), with fakes."""

    def __init__(self, *, infused: bool = True) -> None:
        self.streams, self.infusions = FakeStreams(), FakeInfusions()
        if infused:
            self.infusions.infusions[SUBJECT] = {1: INFUSED_AT}
        self.bus = Bus(bootstrap.spec, streams=self.streams, infusions=self.infusions,
                       escalations=FakeEscalations(), ages=FakeAges(), subject_centres=FakeSubjectCentres())
        self.handlers = keyed(self.bus.spec.command_handlers)
        self.writes = FakeFetchWrites(self.streams)

    async def submit(self, command, key: str | None = KEY, actor: str = "nurse.a") -> CommandEnvelope:
        """A new message each time (a new command id), as a resubmitted line is."""
        env = CommandEnvelope.wrap(command, actor=actor, idempotency_key=key)
        mark = self.writes.mark()
        try:
            await self.handlers[command.command_type](None, env, command, writes=self.writes)
        except (SubjectNotInfused, Forbidden, Unauthenticated) as exc:  # as the consumer's `_apply_alone`
            self.writes.undo(mark)
            remember_refusal(self.writes, env, command, exc)
            raise
        return env

    def events(self):
        return self.streams.events(assessment_stream(SUBJECT))


class TestResubmission:
    async def test_a_resubmitted_command_gets_the_original_outcome_and_changes_nothing(self):
        service = Service()
        first = await service.submit(assessment())
        again = await service.submit(assessment())

        assert [type(e) for e in service.events()] == [ResponseAssessed]
        assert again.command_id != first.command_id  # a new message: the inbox would take it
        outcome = service.writes.keys.get(KEY)
        assert (outcome.outcome, outcome.command_id, outcome.events) == (
            "accepted", first.command_id, ((assessment_stream(SUBJECT), "assessment.ResponseAssessed"),))
        assert outcome.describe() == "accepted: assessment.ResponseAssessed"
        assert service.writes.keys.resubmissions == 1
        assert [o.key for o in service.writes.keys.pending] == [KEY]  # recorded once, with the events

    async def test_the_same_key_with_another_body_is_refused_and_the_original_stands(self):
        service = Service()
        await service.submit(assessment(blasts=1.0))
        with pytest.raises(IdempotencyKeyReused) as refused:
            await service.submit(assessment(blasts=7.0))
        assert refused.value.code == "IDEMPOTENCY_KEY_REUSED"
        assert len(service.events()) == 1 and service.events()[0].marrow_blasts_percent == 1.0

    async def test_the_same_body_from_another_actor_is_another_command(self):
        service = Service()
        await service.submit(assessment(), actor="nurse.a")
        with pytest.raises(IdempotencyKeyReused):
            await service.submit(assessment(), actor="nurse.b")

    async def test_a_refusal_is_the_original_outcome_too(self):
        service = Service(infused=False)
        with pytest.raises(SubjectNotInfused):
            await service.submit(assessment())
        outcome = service.writes.keys.get(KEY)
        assert (outcome.outcome, outcome.reason_code) == ("refused", "SUBJECT_NOT_INFUSED")
        service.infusions.infusions[SUBJECT] = {1: INFUSED_AT}
        await service.submit(assessment())  # the resubmission: the original refusal, nothing applied
        assert service.events() == []
        assert service.writes.keys.resubmissions == 1

    async def test_an_unauthenticated_command_claims_no_key(self):
        service = Service()
        env = CommandEnvelope.wrap(assessment(), actor="nurse.a", idempotency_key=KEY)
        remember_refusal(service.writes, env, assessment(), Unauthenticated("no credential"))
        assert service.writes.keys.get(KEY) is None
        await service.submit(assessment())
        assert len(service.events()) == 1

    async def test_a_command_without_a_key_is_applied_each_time(self):
        service = Service()
        await service.submit(assessment(), key=None)
        await service.submit(assessment(), key=None)
        assert len(service.events()) == 2 and service.writes.keys.pending == []

    async def test_an_undone_message_undoes_its_key(self):
        service = Service()
        mark = service.writes.mark()
        await service.submit(assessment())
        service.writes.undo(mark)  # its savepoint rolled back (a refusal later in its run)
        assert service.writes.keys.get(KEY) is None and service.writes.keys.pending == []

    def test_a_key_names_one_command(self):
        with pytest.raises(ValueError):
            CommandEnvelope.wrap(assessment(), actor="nurse.a", idempotency_key="has a space")
        with pytest.raises(ValueError):
            CommandEnvelope.wrap(assessment(), actor="nurse.a", idempotency_key="k" * 201)


class TestLoaderKeys:
    def test_the_same_file_and_line_give_the_same_key(self, tmp_path):
        path = tmp_path / "load.jsonl"
        lines = ['{"command": "RegisterCentre"}', '{"command": "RegisterCentre"}']
        source = source_of(lines, path)
        assert source == str(path.resolve()) == source_of(lines + ["more"], tmp_path / "." / "load.jsonl")
        assert line_key(source, 1, lines[0]) == line_key(source, 1, lines[0] + "  ")
        assert len({line_key(source, 1, lines[0]), line_key(source, 2, lines[1]),
                    line_key(source, 1, '{"command": "EnrollSubject"}'), line_key("/other", 1, lines[0])}) == 4
        assert source_of(lines, None) == source_of(list(lines), None) != source_of(lines[:1], None)
        assert len(line_key(source, 1, lines[0])) <= 200

    def test_a_duplicate_is_reported_with_the_original_outcome(self):
        known = {"command_type": "RecordResponseAssessment", "outcome": "accepted", "command_id": "c-1",
                 "summary": "accepted: assessment.ResponseAssessed",
                 "events": [{"stream_id": "assessments-S", "event_type": "assessment.ResponseAssessed"}]}
        result = duplicate(7, known)
        assert str(result) == ("line 7 RecordResponseAssessment: DUPLICATE: original outcome accepted: "
                               "assessment.ResponseAssessed (command c-1)")
        assert result.succeeded and result.events == ["assessment.ResponseAssessed"]
        refused = duplicate(8, {**known, "outcome": "refused", "summary": "refused: X: y", "events": []})
        assert not refused.succeeded
        assert not LineResult(9, None, "timeout", "").succeeded


def at(minute: int = 0) -> datetime:
    return datetime(2024, 3, 3, 9, minute, tzinfo=CET)


def vitals(temperature: float) -> VitalSigns:
    return VitalSigns(temperature_c=temperature)


def observation(obs, when: datetime | None = None, reason: str | None = None) -> RecordObservation:
    return RecordObservation(subject_id=SUBJECT, observed_at=when or at(), observation=obs, correction_reason=reason)


class TestObservations:
    def recorded(self, service: Service) -> list[ObservationRecorded]:
        return [e for e in service.events() if isinstance(e, ObservationRecorded)]

    async def test_a_second_different_observation_of_a_kind_at_the_same_time_is_refused_naming_the_first(self):
        service = Service()
        await service.bus.send(observation(vitals(38.5)))
        [first] = self.recorded(service)
        with pytest.raises(DuplicateObservation) as refused:
            await service.bus.send(observation(vitals(39.5), at().astimezone(timezone.utc)))  # the same instant
        assert refused.value.code == "DUPLICATE_OBSERVATION"
        assert str(first.observation_id) in refused.value.reason and "correction_reason" in refused.value.reason
        assert len(self.recorded(service)) == 1

    async def test_an_identical_resubmission_without_a_key_is_refused_as_a_duplicate(self):
        service = Service()
        await service.bus.send(observation(vitals(38.5)))
        with pytest.raises(DuplicateObservation) as refused:
            await service.bus.send(observation(vitals(38.5)))
        assert "repeats it" in refused.value.reason

    async def test_other_kinds_times_agents_and_terms_are_other_observations(self):
        service = Service()
        for obs, when in ((vitals(38.5), at()), (vitals(38.9), at(15)), (BloodCounts(anc_per_ul=400), at()),
                          (TreatmentGiven(agent="tocilizumab", indication="crs"), at()),
                          (TreatmentGiven(agent="corticosteroid", indication="crs"), at()),
                          (AdverseEvent(ctcae_term="Fever", grade=1, serious=False, attribution="probable"), at()),
                          (AdverseEvent(ctcae_term="Nausea", grade=1, serious=False, attribution="unlikely"), at())):
            await service.bus.send(observation(obs, when))
        assert len(self.recorded(service)) == 7
        with pytest.raises(DuplicateObservation):  # the same term at the same time, another grade
            await service.bus.send(observation(AdverseEvent(ctcae_term="fever", grade=2, serious=False,
                                                            attribution="probable")))

    async def test_a_correction_with_its_reason_supersedes_the_one_it_corrects(self):
        service = Service()
        await service.bus.send(observation(vitals(38.5)))
        await service.bus.send(observation(vitals(39.5), reason="transcription error: 39.5 on the chart"))
        first, correction = self.recorded(service)
        assert (correction.corrects, correction.correction_reason) == (
            first.observation_id, "transcription error: 39.5 on the chart")
        # and a correction of the correction
        await service.bus.send(observation(vitals(39.4), reason="the chart was misread"))
        assert self.recorded(service)[-1].corrects == correction.observation_id

    async def test_a_correction_of_nothing_or_that_changes_nothing_is_refused(self):
        service = Service()
        with pytest.raises(NoObservationToCorrect) as nothing:
            await service.bus.send(observation(vitals(38.5), reason="typo"))
        assert nothing.value.code == "NO_OBSERVATION_TO_CORRECT"
        await service.bus.send(observation(vitals(38.5)))
        with pytest.raises(CorrectionChangesNothing):
            await service.bus.send(observation(vitals(38.5), reason="typo"))


def _recorded(obs, observation_id: str, corrects: str | None = None, day: int = 28) -> ObservationRecorded:
    return ObservationRecorded(observation_id=uuid.UUID(observation_id), subject_id=SUBJECT,
                               observed_at=at() + timedelta(days=day), observation=obs,
                               corrects=uuid.UUID(corrects) if corrects else None,
                               correction_reason="re-read" if corrects else None)


class TestProjectionFold:
    ORIGINAL, SMALLER = "ffffffff-0000-4000-8000-000000000000", "00000000-0000-4000-8000-000000000001"

    def fold_all(self, events) -> SubjectView:
        view = SubjectView(SUBJECT)
        for e in events:
            view = fold(view, e, e.observed_at, str(uuid.uuid4()))
        return view

    def test_a_correction_of_a_molecular_result_stands_whatever_its_id(self):
        result = MolecularMrd(target="bcr_abl1_p190", specimen="bone_marrow", detected=True, quantifiable=True,
                              ratio_percent=0.5, control_copies=50_000)
        corrected = result.model_copy(update={"ratio_percent": 0.05})
        view = self.fold_all([_recorded(result, self.ORIGINAL), _recorded(corrected, self.SMALLER, self.ORIGINAL)])
        assert [m[2] for m in view.molecular] == [0.05]
        assert any(t.summary.endswith("0.05 % (a correction of an earlier record: re-read)") for t in view.timeline)

    def test_a_correction_of_a_lupus_assessment_stands_whatever_its_id(self):
        active = LupusAssessment(descriptors=["arthritis"], physician_global_assessment=1.0,
                                 prednisone_equivalent_mg_per_day=0.0)
        calm = LupusAssessment(descriptors=[], physician_global_assessment=0.2, prednisone_equivalent_mg_per_day=0.0)
        view = self.fold_all([_recorded(active, self.ORIGINAL), _recorded(calm, self.SMALLER, self.ORIGINAL)])
        assert [x[4] for x in view.lupus] == [self.SMALLER]
        # another observation of the date (not a correction) is still judged by its id
        view = self.fold_all([_recorded(active, self.ORIGINAL), _recorded(calm, self.SMALLER)])
        assert [x[4] for x in view.lupus] == [self.ORIGINAL]
