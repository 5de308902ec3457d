"""CRS graded by the assessment service from observations (issue 11 items 1 and 2;
services/assessment/domain/toxicity.py), through the bootstrap with fakes. The grades are the
ASTCT consensus table's (Lee et al., Biol Blood Marrow Transplant 2019;25:625-638): grade 1
fever >= 38 C; grade 2 fever with hypotension not requiring vasopressors or low-flow oxygen
(<= 6 L/min); grade 3 one vasopressor or high-flow oxygen (> 6 L/min) or a facemask; grade 4
several vasopressors or positive pressure; after antipyretic or anti-cytokine therapy fever is
no longer required. Episodes: onset, maximum grade, resolution (services/clinical/episodes.py)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from contracts.commands import RecordObservation
from contracts.events import ObservationRecorded, ToxicityEpisodesDetermined, ToxicityGraded
from contracts.observations import HypotensionSupport, OxygenDevice, TreatmentGiven, VitalSigns
from services.assessment import bootstrap
from services.assessment.domain.model import assessment_stream
from services.clinical.crs import Hypotension, OxygenSupport
from tests.unit.services.fakes import Bus, FakeAges, FakeEscalations, FakeInfusions, FakeStreams, FakeSubjectCentres

SUBJECT = "S-0123456789AB"
CET = timezone(timedelta(hours=1))
INFUSED = datetime(2025, 3, 10, 10, tzinfo=CET)  # day 0


def on(day: int, hour: int = 8) -> datetime:
    return INFUSED.replace(hour=hour) + timedelta(days=day)


def vitals(temperature: float, hypotension: str = "none", oxygen: str = "none",
           flow: float | None = None) -> VitalSigns:
    return VitalSigns(temperature_c=temperature, hypotension=HypotensionSupport(hypotension),
                      oxygen=OxygenDevice(oxygen), oxygen_flow_l_min=flow)


class Ward:
    def __init__(self, infused: bool = True) -> None:
        self.streams, self.infusions, self.infused = FakeStreams(), FakeInfusions(), infused
        self.bus = Bus(bootstrap.spec, streams=self.streams, infusions=self.infusions,
                       escalations=FakeEscalations(), ages=FakeAges(), subject_centres=FakeSubjectCentres())

    async def observe(self, at: datetime, observation) -> None:
        if self.infused:
            await self.infusions.add(SUBJECT, 1, INFUSED)
        await self.bus.send(RecordObservation(subject_id=SUBJECT, observed_at=at, observation=observation))

    def events(self, kind: type) -> list:
        return [e for e in self.streams.events(assessment_stream(SUBJECT)) if isinstance(e, kind)]

    def grades(self) -> dict[int, tuple[int, list[str]]]:
        return {g.study_day: (g.grade, g.drivers) for g in self.events(ToxicityGraded)}  # the latest of each day

    def episodes(self) -> list[tuple]:
        latest = self.events(ToxicityEpisodesDetermined)[-1]
        return [(e.onset_day, e.max_grade, e.resolution_day, e.duration_days, e.tocilizumab_given)
                for e in latest.episodes]


class TestTheDailyGradeByTheAstctTable:
    @pytest.mark.parametrize(("reading", "grade", "drivers"), [
        (vitals(37.2), 0, []),
        (vitals(38.0), 1, ["fever"]),  # fever is >= 38.0 C
        (vitals(38.4, "not_requiring_vasopressors"), 2, ["hypotension"]),
        (vitals(38.4, oxygen="nasal_cannula", flow=6.0), 2, ["hypoxia"]),  # low-flow: <= 6 L/min
        (vitals(38.4, oxygen="nasal_cannula", flow=6.5), 3, ["hypoxia"]),  # high-flow
        (vitals(38.4, "one_vasopressor_with_or_without_vasopressin"), 3, ["hypotension"]),
        (vitals(38.4, oxygen="facemask"), 3, ["hypoxia"]),
        (vitals(38.4, "multiple_vasopressors_excluding_vasopressin", "bipap"), 4, ["hypotension", "hypoxia"]),
        (vitals(37.0, "one_vasopressor_with_or_without_vasopressin"), 0, []),  # no fever, no therapy: no CRS
    ])
    async def test_one_reading(self, reading, grade, drivers):
        ward = Ward()
        await ward.observe(on(1), reading)
        [graded] = ward.events(ToxicityGraded)
        assert (graded.study_day, graded.grade, graded.drivers) == (1, grade, drivers)
        assert graded.observation_ids == [ward.events(ObservationRecorded)[0].observation_id]
        assert str(graded.on) == "2025-03-11"

    async def test_the_worst_reading_of_the_day(self):
        ward = Ward()
        await ward.observe(on(1, 8), vitals(38.3))
        await ward.observe(on(1, 20), vitals(38.9, "not_requiring_vasopressors"))
        await ward.observe(on(1, 23), vitals(37.5))
        assert ward.grades() == {1: (2, ["hypotension"])}
        assert len(ward.events(ToxicityGraded)[-1].observation_ids) == 3

    async def test_after_tocilizumab_for_crs_fever_is_no_longer_required(self):
        ward = Ward()
        await ward.observe(on(1), vitals(38.6, "not_requiring_vasopressors"))
        await ward.observe(on(1, 12), TreatmentGiven(agent="tocilizumab", dose_mg=560.0, indication="crs"))
        await ward.observe(on(2), vitals(37.1, "one_vasopressor_with_or_without_vasopressin"))
        assert ward.grades()[2] == (3, ["hypotension"])
        tocilizumab = ward.events(ObservationRecorded)[1].observation_id
        assert tocilizumab in ward.events(ToxicityGraded)[-1].observation_ids

    async def test_a_treatment_for_another_indication_does_not_count(self):
        ward = Ward()
        await ward.observe(on(1), TreatmentGiven(agent="corticosteroid", indication="other"))
        await ward.observe(on(2), vitals(37.1, "one_vasopressor_with_or_without_vasopressin"))
        assert ward.grades()[2] == (0, [])


class TestEpisodesAndLateObservations:
    async def test_an_episode_from_onset_to_resolution(self):
        ward = Ward()
        await ward.observe(on(-1), vitals(36.8))  # baseline: not graded
        await ward.observe(on(1), vitals(38.2))
        await ward.observe(on(2), vitals(38.9, "not_requiring_vasopressors"))
        await ward.observe(on(2, 14), TreatmentGiven(agent="tocilizumab", indication="crs"))
        await ward.observe(on(3), vitals(37.0))
        assert ward.grades() == {1: (1, ["fever"]), 2: (2, ["hypotension"]), 3: (0, [])}
        assert ward.episodes() == [(1, 2, 3, 2, True)]
        assert ward.events(ToxicityEpisodesDetermined)[-1].graded_days == [1, 2, 3]

    async def test_a_late_reading_supersedes_the_days_grade_and_the_episode(self):
        ward = Ward()
        await ward.observe(on(1), vitals(38.2))
        await ward.observe(on(2), vitals(36.9))
        assert ward.episodes() == [(1, 1, 2, 1, False)]
        await ward.observe(on(1, 22), vitals(38.5, oxygen="nasal_cannula", flow=8.0))  # entered afterwards
        day1 = [g for g in ward.events(ToxicityGraded) if g.study_day == 1]
        assert [(g.revision, g.grade, len(g.observation_ids)) for g in day1] == [(1, 1, 1), (2, 3, 2)]  # supersedes
        assert ward.episodes() == [(1, 3, 2, 1, False)]
        assert [e.revision for e in ward.events(ToxicityEpisodesDetermined)] == [1, 2, 3]

    async def test_nothing_changed_records_no_determination(self):
        ward = Ward()
        await ward.observe(on(1), vitals(38.2))
        await ward.observe(on(1, 10), TreatmentGiven(agent="other", name="paracetamol", indication="other"))
        assert len(ward.events(ToxicityGraded)) == 1 and len(ward.events(ToxicityEpisodesDetermined)) == 1

    async def test_before_any_infusion_an_observation_is_recorded_and_not_graded(self):
        ward = Ward(infused=False)
        await ward.observe(on(-3), vitals(38.5))
        assert len(ward.events(ObservationRecorded)) == 1 and ward.events(ToxicityGraded) == []


class TestTheContract:
    def test_its_values_are_the_rules(self):
        assert {h.value for h in HypotensionSupport} == {h.value for h in Hypotension}
        assert {o.value for o in OxygenDevice} == {o.value for o in OxygenSupport}

    @pytest.mark.parametrize(("fields", "message"), [
        ({"temperature_c": 38.0, "oxygen": "nasal_cannula"}, "oxygen_flow_l_min"),
        ({"temperature_c": 38.0, "oxygen_flow_l_min": 2.0}, "only with an oxygen device"),
        ({"temperature_c": 50.0}, "temperature_c"),
    ])
    def test_a_reading_the_rules_cannot_grade_is_refused_naming_the_field(self, fields, message):
        with pytest.raises(ValueError, match=message):
            VitalSigns(**fields)


class TestInTheProjection:
    async def test_the_timeline_the_latest_episodes_in_any_order_and_the_safety_table(self):
        from itertools import permutations

        from services.projection.domain.report import ProgrammeRow, toxicity_table
        from services.projection.domain.subject_view import SubjectView, fold

        ward = Ward()
        await ward.observe(on(1), vitals(38.2, oxygen="nasal_cannula", flow=3.0))
        await ward.observe(on(2), vitals(36.9))
        await ward.observe(on(1, 22), vitals(38.5, "one_vasopressor_with_or_without_vasopressin"))  # late
        events = ward.streams.events(assessment_stream(SUBJECT))
        views = set()
        for order in list(permutations(events))[:200]:
            view = SubjectView(SUBJECT, phase="infused")
            for e in order:
                view = fold(view, e, INFUSED)
            views.add(view.crs_episodes)
        assert views == {((1, 3, 2, 1, False, False),)}  # the latest revision, whatever the order
        view = SubjectView(SUBJECT, phase="infused")
        for e in events:
            view = fold(view, e, INFUSED)
        summaries = [t.summary for t in view.timeline]
        assert "vital signs: 38.2 C, oxygen: nasal_cannula 3 L/min" in summaries
        assert "CRS grade 3 on day 1 (hypotension), revision 2" in summaries
        assert SubjectView.from_json(view.to_json()).crs_episodes == view.crs_episodes
        none = SubjectView("S-BA9876543210", phase="infused")
        table = toxicity_table([ProgrammeRow.of(dataclasses.replace(view, enrolments=(("2025-03-01", "P"),))),
                           ProgrammeRow.of(dataclasses.replace(none, enrolments=(("2025-03-01", "P"),)))])
        assert table["n"] == 1 and table["with_crs"] == 1 and table["by_max_grade"] == {"3": 1}
        assert table["onset_day"]["median"] == 1 and table["duration_days"]["median"] == 1
        assert table["left_out"]["n"] == 1

