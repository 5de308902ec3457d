"""ICANS graded by the assessment service from neurological assessments (issue 11 item 2;
services/assessment/domain/toxicity.py), through the bootstrap with fakes. The grades are the
ASTCT consensus tables' (Lee et al., Biol Blood Marrow Transplant 2019;25:625-638, Table 8 for
12 years and older with the ICE score: 7-9 grade 1, 3-6 grade 2, 0-2 grade 3, 0 unarousable
grade 4; Table 9 below 12 with the CAPD: 1-8 grade 1, >= 9 grade 3, unable to perform grade
4), the worst of ICE or CAPD, consciousness, seizure, motor findings and raised ICP. The tool is
judged against the age at enrolment carried by `SubjectEnrolled`."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import RecordObservation
from contracts.errors import CommandRefused
from contracts.events import ToxicityEpisodesDetermined, ToxicityGraded, ToxicityKind
from contracts.observations import CapdItems, IceItems, NeurologicalAssessment
from services.assessment import bootstrap
from services.assessment.domain.model import assessment_stream
from services.assessment.domain.toxicity import AgeAtEnrolment
from tests.unit.services.fakes import Bus, FakeAges, FakeEscalations, FakeInfusions, FakeStreams, FakeSubjectCentres

SUBJECT = "S-0123456789AB"
INFUSED = datetime(2025, 3, 10, 10, tzinfo=timezone.utc)
ENROLLED = date(2025, 1, 15)


def ice(total: int) -> IceItems:
    """An ICE score of `total` (orientation first, then naming, commands, writing, attention)."""
    parts, left = [], total
    for top in (4, 3, 1, 1, 1):
        parts.append(min(top, left))
        left -= parts[-1]
    return IceItems(orientation=parts[0], naming=parts[1], following_commands=parts[2], writing=parts[3],
                    attention=parts[4])


def capd(first_four: str, last_four: str) -> CapdItems:
    """Items 1-4 (eye contact, purposeful, aware, communicates: scored reversed, never = 4) and
    items 5-8 (restless, inconsolable, underactive, slow to respond: always = 4), Traube 2014."""
    return CapdItems(**{f: first_four for f in ("eye_contact", "purposeful_actions", "aware_of_surroundings",
                                                "communicates_needs")},
                     **{f: last_four for f in ("restless", "inconsolable", "underactive", "slow_to_respond")})


class Ward:
    def __init__(self, age: int | None = 45) -> None:
        self.streams, self.infusions = FakeStreams(), FakeInfusions()
        ages = FakeAges({SUBJECT: AgeAtEnrolment(ENROLLED, age)})
        self.bus = Bus(bootstrap.spec, streams=self.streams, infusions=self.infusions, escalations=FakeEscalations(),
                       ages=ages, subject_centres=FakeSubjectCentres())

    async def assess(self, day: int, **fields) -> None:
        await self.infusions.add(SUBJECT, 1, INFUSED)
        await self.bus.send(RecordObservation(subject_id=SUBJECT, observed_at=INFUSED + timedelta(days=day),
                                              observation=NeurologicalAssessment(**fields)))

    def grades(self) -> dict[int, tuple[int, list[str]]]:
        return {g.study_day: (g.grade, g.drivers) for g in self.streams.events(assessment_stream(SUBJECT))
                if isinstance(g, ToxicityGraded) and g.kind is ToxicityKind.ICANS}


class TestTheAdultTable:
    @pytest.mark.parametrize(("fields", "grade", "drivers"), [
        ({"ice": ice(10)}, 0, []),
        ({"ice": ice(9)}, 1, ["ice"]),
        ({"ice": ice(7)}, 1, ["ice"]),
        ({"ice": ice(6)}, 2, ["ice"]),
        ({"ice": ice(3)}, 2, ["ice"]),
        ({"ice": ice(2)}, 3, ["ice"]),
        ({"ice": IceItems(orientation=0, naming=0, following_commands=0, writing=0, attention=0, unarousable=True),
          "consciousness": "unarousable_or_vigorous_stimuli_stupor_coma"}, 4, ["consciousness", "ice"]),
        ({"ice": ice(10), "consciousness": "awakens_to_voice"}, 2, ["consciousness"]),
        ({"ice": ice(8), "seizure": "clinical_resolving_rapidly_or_eeg_resolving_with_intervention"}, 3, ["seizure"]),
        ({"ice": ice(10), "motor": "deep_focal_motor_weakness"}, 4, ["motor"]),
        ({"ice": ice(10), "raised_icp": "focal_local_oedema_on_neuroimaging"}, 3, ["raised_icp"]),
    ])
    async def test_one_assessment(self, fields, grade, drivers):
        ward = Ward()
        await ward.assess(2, **fields)
        assert ward.grades() == {2: (grade, drivers)}


class TestTheChildrensTableAndTheAge:
    @pytest.mark.parametrize(("first_four", "last_four", "grade"), [
        ("always", "never", 0),  # total 0
        ("always", "rarely", 1),  # 4 x 1 = 4: 1-8
        ("always", "sometimes", 1),  # 8
        ("rarely", "sometimes", 3),  # 4 x 3 + 4 x 2 = 20 >= 9
        ("never", "always", 3),  # 32
    ])
    async def test_the_capd_below_12(self, first_four, last_four, grade):
        ward = Ward(age=9)
        await ward.assess(2, capd=capd(first_four, last_four))
        assert ward.grades()[2][0] == grade

    async def test_unable_to_perform_the_capd(self):
        ward = Ward(age=9)
        await ward.assess(2, capd_unable_to_perform=True)
        assert ward.grades()[2] == (4, ["capd"])

    async def test_the_ice_for_a_child_is_refused_naming_the_age(self):
        ward = Ward(age=9)
        with pytest.raises(CommandRefused) as refused:
            await ward.assess(2, ice=ice(10))
        assert refused.value.code == "INVALID_OBSERVATION" and "use capd" in refused.value.reason
        assert "9 or 10" in refused.value.reason

    async def test_the_capd_at_12_and_older_needs_developmental_delay(self):
        ward = Ward(age=30)
        with pytest.raises(CommandRefused):
            await ward.assess(2, capd=capd("always", "sometimes"))
        await ward.assess(2, capd=capd("always", "sometimes"), developmental_delay=True)
        assert ward.grades()[2] == (1, ["capd"])

    async def test_a_child_of_11_at_enrolment_may_be_12_by_now_so_either_tool_is_taken(self):
        ward = Ward(age=11)
        await ward.assess(2, ice=ice(8))  # enrolled 15 January at 11: 12 from a birthday before 12 March
        await ward.assess(3, capd=capd("always", "sometimes"))
        assert ward.grades() == {2: (1, ["ice"]), 3: (1, ["capd"])}

    async def test_an_age_not_known_takes_the_tool_for_it(self):
        ward = Ward(age=None)
        await ward.assess(2, ice=ice(5))
        assert ward.grades()[2] == (2, ["ice"])


class TestEpisodes:
    async def test_an_icans_episode_graded_apart_from_crs(self):
        ward = Ward()
        for day, total in ((3, 8), (4, 5), (5, 9), (6, 10)):
            await ward.assess(day, ice=ice(total))
        [latest] = [e for e in ward.streams.events(assessment_stream(SUBJECT))
                    if isinstance(e, ToxicityEpisodesDetermined)][-1:]
        assert latest.kind is ToxicityKind.ICANS
        assert [(e.onset_day, e.max_grade, e.resolution_day, e.duration_days) for e in latest.episodes] == [
            (3, 2, 6, 3)]


class TestTheAge:
    @pytest.mark.parametrize(("age", "on", "ages"), [
        (11, date(2025, 1, 15), (11, 12)),  # on the day of enrolment, a birthday may fall later that day... or year
        (11, date(2026, 1, 15), (12, 13)),
        (11, date(2026, 1, 14), (11, 12)),
        (90, date(2030, 1, 1), (94, 95)),  # 90 or older: older still
    ])
    def test_the_ages_the_subject_may_have(self, age, on, ages):
        assert AgeAtEnrolment(ENROLLED, age).ages_on(on) == ages


class TestTheContract:
    def test_its_values_are_the_rules(self):
        from contracts import observations as o
        from services.clinical import icans

        for contract, rule in ((o.Consciousness, icans.Consciousness), (o.Seizure, icans.Seizure),
                               (o.MotorFinding, icans.MotorFinding), (o.RaisedIcp, icans.RaisedIcp),
                               (o.CapdFrequency, icans.CapdFrequency)):
            assert [c.value for c in contract] == [r.value for r in rule], contract.__name__
        assert set(o.IceItems.model_fields) - {"unarousable"} == {
            "orientation", "naming", "following_commands", "writing", "attention"}

    def test_one_tool_exactly(self):
        with pytest.raises(ValueError, match="one encephalopathy tool"):
            NeurologicalAssessment(ice=ice(10), capd_unable_to_perform=True)
        with pytest.raises(ValueError, match="one encephalopathy tool"):
            NeurologicalAssessment()
