"""Dose escalation through the services (issue 10 item 3; services/enrollment/domain/escalation.py
and the DLT evaluation of services/assessment/domain/model.py), through the bootstraps with
fakes. Scripted sequences of DLTs whose decisions the designs' published rules give:
3+3 (Storer 1989; Le Tourneau et al., JNCI 2009: 0/3 escalate, 1/3 expand to 6, <= 1/6
escalate, >= 2 exceed the MTD, the MTD the highest level with <= 1/6 below) on seed 001's
definition (two levels, at most 6 patients, a 28-day DLT window) and on a three-level variant
without a cap; BOIN (Liu & Yuan 2015; target 0.3: lambda_e 0.236, lambda_d 0.358)."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import EnrollSubject, PublishProgramme, RecordDltEvaluation, RecordObservation, RegisterCentre
from contracts.errors import CommandRefused
from contracts.events import (
    DltEvaluated,
    DoseLevelAssigned,
    DoseLimitingToxicitiesDetermined,
    DoseLimitingToxicity,
    EscalationDecided,
    MtdDeclared,
    ObservationRecorded,
    SubjectEnrolled,
)
from contracts.observations import AdverseEvent
from contracts.programmes import ProgrammeDefinition
from infra.tooling.programmes import bundled
from services.assessment import bootstrap as assessment
from services.assessment.application.ports import Escalation as SubjectEscalation
from services.assessment.domain.model import assessment_stream
from services.enrollment import bootstrap as enrollment
from services.enrollment.application import handlers
from services.enrollment.domain.escalation import escalation_stream
from services.enrollment.domain.model import subject_stream
from tests.unit.services.fakes import (
    IMPORTER,
    Bus,
    FakeAges,
    FakeEscalations,
    FakeIdentities,
    FakeInfusions,
    FakeStreams,
    FakeSubjectCentres,
)
from tests.unit.services.test_enrollment_handlers import patient_cmd

NK = next(d for d in bundled() if d.programme_id == "NK-PHALL-P1")
CENTRE = "OSR-MILANO"
ENROLLED = date(2025, 3, 3)


def variant(**changes) -> ProgrammeDefinition:
    data = copy.deepcopy(NK.model_dump(mode="json"))
    data.update(changes)
    return ProgrammeDefinition.model_validate(data)


THREE_LEVELS = variant(dose_levels=[{"level": n} for n in (1, 2, 3)],
                       escalation={"design": "3+3", "cohort_size": 3, "dlt_window_days": 28})
BOIN = variant(dose_levels=[{"level": n} for n in (1, 2, 3)],
               escalation={"design": "boin", "target_dlt_rate": 0.3, "cohort_size": 3, "max_sample_size": 9,
                           "dlt_window_days": 28})


class Trial:
    """Enrollment with fakes: a centre, the programme published, subjects registered; its
    commands as an import (no screening needed), DLT evaluations as assessment records them."""

    def __init__(self, definition: ProgrammeDefinition = NK) -> None:
        self.streams = FakeStreams()
        self.identities = FakeIdentities()
        self.bus = Bus(enrollment.spec, acting=IMPORTER, streams=self.streams, identities=self.identities)
        self.definition = definition
        self.subjects: list[str] = []

    async def start(self) -> "Trial":
        await self.bus.send(RegisterCentre(centre_id=CENTRE, name="San Raffaele", country="IT"))
        await self.bus.send(PublishProgramme(definition=self.definition))
        return self

    async def enrol(self, dose_level: int | None = None) -> SubjectEnrolled:
        subject, _ = await handlers.register_patient(patient_cmd(record=f"MRN-{len(self.subjects)}"), self.streams,
                                                     FakeIdentities())
        await self.bus.send(EnrollSubject(subject_id=subject, programme_id=self.definition.programme_id,
                                          centre_id=CENTRE, enrolled_on=ENROLLED, dose_level=dose_level))
        self.subjects.append(subject)
        return next(e for e in self.streams.events(subject_stream(subject)) if isinstance(e, SubjectEnrolled))

    async def enrol_refused(self, code: str, dose_level: int | None = None) -> str:
        with pytest.raises(CommandRefused) as refused:
            await self.enrol(dose_level)
        assert refused.value.code == code, refused.value
        return refused.value.reason

    async def evaluate(self, index: int, dlt: bool) -> None:
        subject = self.subjects[index]
        level = next(e.dose_level for e in self.escalation() if isinstance(e, DoseLevelAssigned)
                     and e.subject_id == subject)
        infused = ENROLLED + timedelta(days=10)
        await self.bus.send(DltEvaluated(
            subject_id=subject, programme_id=self.definition.programme_id, dose_level=level, dlt_window_days=28,
            infused_on=infused, evaluated_on=infused + timedelta(days=28),
            dlt=DoseLimitingToxicity(onset_on=infused + timedelta(days=9), ctcae_term="Neutrophil count decreased",
                                     grade=4) if dlt else None))

    def escalation(self) -> list:
        return self.streams.events(escalation_stream(self.definition.programme_id))

    def decisions(self) -> list[tuple[str, int | None]]:
        return [(e.decision.action, e.decision.next_dose_level) for e in self.escalation()
                if isinstance(e, EscalationDecided)]

    def declared(self) -> MtdDeclared | None:
        return next((e for e in self.escalation() if isinstance(e, MtdDeclared)), None)


async def cohort(trial: Trial, level: int, n: int = 3) -> None:
    assert [(await trial.enrol()).dose_level for _ in range(n)] == [level] * n


class TestSeed001:
    """NK-PHALL-P1: "A maximum of 6 patients will be enrolled in two different steps"."""

    async def test_each_subject_is_assigned_a_level_and_carries_it_with_the_dlt_window(self):
        trial = await Trial().start()
        first = await trial.enrol()
        assert (first.dose_level, first.dlt_window_days) == (1, 28)
        [assigned] = trial.escalation()
        assert (assigned.cohort, assigned.cohort_size, assigned.decision.action) == (1, 3, "start")
        assert [(c.level, c.evaluable, c.pending) for c in assigned.levels] == [(1, 0, 0), (2, 0, 0)]

    async def test_a_full_cohort_waits_for_its_evaluations(self):
        trial = await Trial().start()
        await cohort(trial, 1)
        reason = await trial.enrol_refused("COHORT_PENDING")
        assert "possible: escalate to level 2, expand to level 1" in reason

    async def test_a_level_the_design_does_not_allow(self):
        trial = await Trial().start()
        assert "at level 1, not 2" in await trial.enrol_refused("DOSE_LEVEL_NOT_ALLOWED", dose_level=2)
        assert (await trial.enrol(dose_level=1)).dose_level == 1

    async def test_one_dlt_in_three_expands_then_the_cap_stops_with_the_recommended_level(self):
        trial = await Trial().start()
        await cohort(trial, 1)
        for i, dlt in enumerate((True, False, False)):
            await trial.evaluate(i, dlt)
        assert trial.decisions() == [("wait", None), ("wait", None), ("expand", 1)]
        await cohort(trial, 1)  # expanded to 6 at level 1
        assert "at most 6 subjects" in await trial.enrol_refused("ESCALATION_CAP_REACHED")
        for i in (3, 4, 5):
            await trial.evaluate(i, False)
        assert trial.decisions()[-1] == ("stop_max_sample_size", None)
        declared = trial.declared()
        assert (declared.mtd_level, declared.recommended_level) == (None, 1)  # 1/6 at level 1; level 2 never tried
        assert "cap of 6 reached" in declared.reason
        assert "stopped" in await trial.enrol_refused("ESCALATION_STOPPED")

    async def test_no_dlt_escalates_and_two_dlts_at_the_top_exceed_it_with_the_cap_reached(self):
        trial = await Trial().start()
        await cohort(trial, 1)
        for i in range(3):
            await trial.evaluate(i, False)
        assert trial.decisions()[-1] == ("escalate", 2)
        await cohort(trial, 2)
        for i, dlt in zip((3, 4, 5), (True, True, False)):
            await trial.evaluate(i, dlt)
        # 2 of 3 at level 2 exceed the MTD: level 1 would be expanded to 6, beyond the cap of 6
        assert trial.decisions()[3:] == [("wait", None), ("wait", None), ("stop_max_sample_size", None)]
        assert (trial.declared().mtd_level, trial.declared().recommended_level) == (None, None)

    async def test_an_evaluation_delivered_twice_decides_once(self):
        trial = await Trial().start()
        await cohort(trial, 1)
        await trial.evaluate(0, False)
        await trial.evaluate(0, True)  # the same subject again: already counted
        assert trial.decisions() == [("wait", None)]

    async def test_the_counts_each_decision_was_taken_on(self):
        trial = await Trial().start()
        await cohort(trial, 1)
        await trial.evaluate(0, True)
        [decided] = [e for e in trial.escalation() if isinstance(e, EscalationDecided)]
        assert (decided.subject_id, decided.dlt) == (trial.subjects[0], True)
        assert [(c.level, c.evaluable, c.dlts, c.pending) for c in decided.levels] == [(1, 1, 1, 2), (2, 0, 0, 0)]


class TestThreeLevelsWithoutACap:
    async def test_two_dlts_above_a_level_of_six_with_none_find_the_mtd(self):
        trial = await Trial(THREE_LEVELS).start()
        await cohort(trial, 1)
        for i in range(3):
            await trial.evaluate(i, False)
        await cohort(trial, 2)
        for i, dlt in zip((3, 4, 5), (True, True, False)):
            await trial.evaluate(i, dlt)
        assert trial.decisions()[-1] == ("de_escalate", 1)  # expand level 1 to 6
        await cohort(trial, 1)
        for i in (6, 7, 8):
            await trial.evaluate(i, False)
        assert trial.decisions()[-1] == ("stop_mtd_found", None)
        assert (trial.declared().mtd_level, trial.declared().recommended_level) == (1, 1)

    async def test_the_highest_planned_level_safe_in_six(self):
        trial = await Trial(THREE_LEVELS).start()
        for level in (1, 2):
            await cohort(trial, level)
            for i in range(len(trial.subjects) - 3, len(trial.subjects)):
                await trial.evaluate(i, False)
        await cohort(trial, 3)
        for i, dlt in zip((6, 7, 8), (True, False, False)):
            await trial.evaluate(i, dlt)
        await cohort(trial, 3)  # 1/3 at the top: expand to 6
        for i in (9, 10, 11):
            await trial.evaluate(i, False)
        assert trial.decisions()[-1] == ("stop_highest_dose_safe", None)
        assert (trial.declared().mtd_level, trial.declared().recommended_level) == (None, 3)

    async def test_the_lowest_level_toxic_stops_without_a_recommended_level(self):
        trial = await Trial(THREE_LEVELS).start()
        await cohort(trial, 1)
        for i, dlt in enumerate((True, True, False)):
            await trial.evaluate(i, dlt)
        assert trial.decisions()[-1] == ("stop_lowest_dose_toxic", None)
        assert (trial.declared().mtd_level, trial.declared().recommended_level) == (None, None)


class TestBoin:
    async def test_the_observed_rate_against_the_boundaries(self):
        trial = await Trial(BOIN).start()
        await cohort(trial, 1)
        for i in range(3):
            await trial.evaluate(i, False)
        assert trial.decisions()[-1] == ("escalate", 2)  # 0/3 = 0 <= lambda_e 0.236
        await cohort(trial, 2)
        for i, dlt in zip((3, 4, 5), (True, True, False)):
            await trial.evaluate(i, dlt)
        assert trial.decisions()[-1] == ("de_escalate", 1)  # 2/3 = 0.667 >= lambda_d 0.358
        await cohort(trial, 1)
        for i in (6, 7, 8):
            await trial.evaluate(i, False)
        # 9 treated, the cap: stop and select the MTD by isotonic regression
        assert trial.decisions()[-1] == ("stop_max_sample_size", None)
        assert trial.declared().mtd_level == 1


# --- the DLT evaluation, in assessment ------------------------------------------------------
SUBJECT = "S-0123456789AB"
INFUSED = datetime(2025, 3, 13, 10, tzinfo=timezone.utc)


class Ward:
    def __init__(self, *, infused: bool = True, in_escalation: bool = True) -> None:
        self.streams, self.infusions = FakeStreams(), FakeInfusions()
        self.infused = infused
        escalations = FakeEscalations(*([SubjectEscalation(SUBJECT, "NK-PHALL-P1", 2, 28)] if in_escalation else []))
        self.bus = Bus(assessment.spec, streams=self.streams, infusions=self.infusions, escalations=escalations, ages=FakeAges(),
                       subject_centres=FakeSubjectCentres())

    async def evaluate(self, days: int, onset_day: int | None = None) -> DltEvaluated:
        if self.infused:
            await self.infusions.add(SUBJECT, 1, INFUSED)
        dlt = (DoseLimitingToxicity(onset_on=INFUSED.date() + timedelta(days=onset_day), ctcae_term="Febrile neutropenia",
                                    grade=3) if onset_day is not None else None)
        await self.bus.send(RecordDltEvaluation(subject_id=SUBJECT, evaluated_on=INFUSED.date() + timedelta(days=days),
                                                dlt=dlt))
        return self.streams.events(assessment_stream(SUBJECT))[-1]

    async def refused(self, code: str, days: int, onset_day: int | None = None) -> str:
        with pytest.raises(CommandRefused) as refused:
            await self.evaluate(days, onset_day)
        assert refused.value.code == code, refused.value
        return refused.value.reason


class TestDltEvaluation:
    @pytest.mark.parametrize(("days", "onset_day"), [(28, None), (40, None), (5, 5), (28, 0), (30, 28)])
    async def test_recorded_with_the_level_the_window_and_the_infusion(self, days, onset_day):
        e = await Ward().evaluate(days, onset_day)
        assert (e.dose_level, e.dlt_window_days, e.infused_on, e.programme_id) == (2, 28, INFUSED.date(),
                                                                                      "NK-PHALL-P1")
        assert (e.dlt is not None) == (onset_day is not None)

    async def test_no_dlt_before_the_window_closes(self):
        assert "closes on 2025-04-10" in await Ward().refused("DLT_WINDOW_OPEN", 27)

    async def test_a_toxicity_after_the_window_is_not_dose_limiting(self):
        assert "outside the 28-day DLT window" in await Ward().refused("OUTSIDE_DLT_WINDOW", 35, 29)

    async def test_an_onset_before_the_infusion_or_after_the_evaluation(self):
        await Ward().refused("OUTSIDE_DLT_WINDOW", 10, -1)
        await Ward().refused("OUTSIDE_DLT_WINDOW", 10, 12)

    async def test_once_per_subject(self):
        ward = Ward()
        await ward.evaluate(28)
        await ward.refused("DLT_ALREADY_EVALUATED", 30, 20)

    async def test_not_infused_or_not_in_an_escalation(self):
        await Ward(infused=False).refused("SUBJECT_NOT_INFUSED", 28)
        await Ward(in_escalation=False).refused("NOT_IN_DOSE_ESCALATION", 28)

    async def test_assessment_learns_the_escalation_from_the_enrolment(self):
        escalations = FakeEscalations()
        bus = Bus(assessment.spec, streams=FakeStreams(), infusions=FakeInfusions(), escalations=escalations, ages=FakeAges(),
                  subject_centres=FakeSubjectCentres())
        await bus.send(SubjectEnrolled(subject_id=SUBJECT, programme_id="NK-PHALL-P1", centre_id=CENTRE,
                                       enrolled_on=ENROLLED, programme_version=1, dose_level=2, dlt_window_days=28))
        assert await escalations.of(SUBJECT) == SubjectEscalation(SUBJECT, "NK-PHALL-P1", 2, 28)

    def test_a_dlt_is_described_and_none_is_not(self):
        with pytest.raises(ValueError):
            DoseLimitingToxicity(onset_on=ENROLLED, ctcae_term="", grade=3)


RULE = {"min_grade": 3, "min_grade_haematological": 4, "haematological_terms": ["Neutrophil count decreased"],
        "min_attribution": "possible", "source": "Le Tourneau et al., JNCI 2009"}


class TestDltsFromAdverseEvents:
    """Issue 11 item 2: assessment derives the DLTs from the adverse events by the programme's
    definition (services/clinical/escalation/dlt.py), naming the observations; the investigator's
    evaluation of no DLT against them needs its reason."""

    def ward(self) -> Ward:
        ward = Ward()
        ward.bus = Bus(assessment.spec, streams=ward.streams, infusions=ward.infusions, ages=FakeAges(),
                       escalations=FakeEscalations(SubjectEscalation(SUBJECT, "NK-PHALL-P1", 2, 28, RULE)),
                       subject_centres=FakeSubjectCentres())
        return ward

    async def adverse(self, ward: Ward, day: int, term: str, grade: int, attribution: str = "possible") -> None:
        await ward.infusions.add(SUBJECT, 1, INFUSED)
        await ward.bus.send(RecordObservation(subject_id=SUBJECT, observed_at=INFUSED + timedelta(days=day),
                                              observation=AdverseEvent(ctcae_term=term, grade=grade, serious=grade > 2,
                                                                       attribution=attribution)))

    def determinations(self, ward: Ward) -> list[DoseLimitingToxicitiesDetermined]:
        return [e for e in ward.streams.events(assessment_stream(SUBJECT))
                if isinstance(e, DoseLimitingToxicitiesDetermined)]

    async def test_each_change_is_determined_naming_its_observations(self):
        ward = self.ward()
        await self.adverse(ward, 3, "Cytokine release syndrome", 2)  # grade 2: none, nothing recorded
        await self.adverse(ward, 5, "Neutrophil count decreased", 3)  # haematological grade 3: none
        assert self.determinations(ward) == []
        await self.adverse(ward, 9, "Febrile neutropenia", 3)
        await self.adverse(ward, 40, "Sepsis", 4)  # after the window
        [first] = self.determinations(ward)
        [found] = first.toxicities
        fn = [e for e in ward.streams.events(assessment_stream(SUBJECT))
              if isinstance(e, ObservationRecorded) and e.observation.kind == "adverse_event"][2]
        assert (found.observation_id, found.study_day, found.ctcae_term, found.grade, first.revision) == (
            fn.observation_id, 9, "Febrile neutropenia", 3, 1)
        assert (first.programme_id, first.dose_level, first.dlt_window_days) == ("NK-PHALL-P1", 2, 28)
        await self.adverse(ward, 12, "Neutrophil count decreased", 4, "probable")
        assert [len(d.toxicities) for d in self.determinations(ward)] == [1, 2]
        assert self.determinations(ward)[-1].revision == 2

    async def test_an_evaluation_of_no_dlt_against_them_needs_its_reason(self):
        ward = self.ward()
        await self.adverse(ward, 9, "Febrile neutropenia", 3)
        reason = await ward.refused("DLT_EVALUATION_DISAGREES", 28)
        assert "Febrile neutropenia grade 3 (possible) from 2025-03-22" in reason
        await ward.bus.send(RecordDltEvaluation(subject_id=SUBJECT, evaluated_on=INFUSED.date() + timedelta(days=28),
                                                disagreement_reason="fever from a line infection, not the cells"))
        evaluated = ward.streams.events(assessment_stream(SUBJECT))[-1]
        assert evaluated.dlt is None and evaluated.disagreement_reason == "fever from a line infection, not the cells"

    async def test_an_evaluation_that_agrees_needs_none(self):
        ward = self.ward()
        await self.adverse(ward, 9, "Febrile neutropenia", 3)
        assert (await ward.evaluate(12, 9)).dlt.ctcae_term == "Febrile neutropenia"

    async def test_without_a_definition_nothing_is_derived(self):
        ward = Ward()
        await self.adverse(ward, 9, "Febrile neutropenia", 4)
        assert self.determinations(ward) == [] and (await ward.evaluate(28)).dlt is None

    async def test_the_definition_travels_from_the_programme_to_assessment(self):
        escalations = FakeEscalations()
        bus = Bus(assessment.spec, streams=FakeStreams(), infusions=FakeInfusions(), escalations=escalations,
                  ages=FakeAges(), subject_centres=FakeSubjectCentres())
        await bus.send(SubjectEnrolled(subject_id=SUBJECT, programme_id="NK-PHALL-P1", centre_id=CENTRE,
                                       enrolled_on=ENROLLED, programme_version=1, dose_level=1, dlt_window_days=28,
                                       dlt_rule=NK.escalation.dlt_rule))
        assert (await escalations.of(SUBJECT)).dlt_rule["min_grade_haematological"] == 4

    def test_a_definition_the_rule_refuses_is_not_published(self):
        from services.enrollment.domain.programmes import InvalidProgramme, rules_of

        escalation = NK.escalation.model_dump(mode="json")
        rules_of(variant(escalation={**escalation, "dlt_rule": {**escalation["dlt_rule"], "min_attribution": "definite"}}))
        # past the contract (a definition built in code), the rule still refuses it
        bad = NK.model_copy(update={"escalation": NK.escalation.model_copy(update={
            "dlt_rule": NK.escalation.dlt_rule.model_copy(update={"min_grade": 9})})})
        with pytest.raises(InvalidProgramme, match="escalation.dlt_rule"):
            rules_of(bad)


class TestInTheProjection:
    async def test_each_subjects_level_and_evaluation_and_the_reports_counts_per_level(self):
        from services.projection.domain.report import ProgrammeRow, programme_report
        from services.projection.domain.subject_view import SubjectView, fold

        trial = await Trial().start()
        await cohort(trial, 1)
        for i, dlt in enumerate((True, False, False)):
            await trial.evaluate(i, dlt)
        views = {s: SubjectView(s) for s in trial.subjects}
        at = datetime(2025, 3, 3, tzinfo=timezone.utc)
        for stream in [*(subject_stream(s) for s in trial.subjects), escalation_stream("NK-PHALL-P1")]:
            for e in trial.streams.events(stream):
                if getattr(e, "subject_id", None) in views:
                    views[e.subject_id] = fold(views[e.subject_id], e, at)
        first = views[trial.subjects[0]]
        assert first.dose_level == 1
        assert any("dose level 1 assigned by the design, cohort 1 of 3 (start)" in t.summary for t in first.timeline)
        assert any("after this evaluation: wait" in t.summary for t in first.timeline)
        third = views[trial.subjects[2]]
        assert any("after this evaluation: expand level 1" in t.summary for t in third.timeline)
        dlts = [DltEvaluated(subject_id=s, programme_id="NK-PHALL-P1", dose_level=1, dlt_window_days=28,
                             infused_on=ENROLLED, evaluated_on=ENROLLED + timedelta(days=28),
                             dlt=DoseLimitingToxicity(onset_on=ENROLLED, ctcae_term="Sepsis", grade=3) if i == 0
                             else None) for i, s in enumerate(trial.subjects[:2])]
        for e in dlts:
            views[e.subject_id] = fold(views[e.subject_id], e, at)
        assert (views[trial.subjects[0]].dlt, views[trial.subjects[1]].dlt, views[trial.subjects[2]].dlt) == (
            True, False, None)
        [report] = programme_report([ProgrammeRow.of(v) for v in views.values()])
        assert report["escalation"] == [{"level": 1, "enrolled": 3, "evaluable": 2, "dlts": 1, "dlts_by_definition": 0,
                                         "evaluated_against_definition": 0}]
        assert SubjectView.from_json(first.to_json()).dose_level == 1
