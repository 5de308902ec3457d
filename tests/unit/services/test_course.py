"""The course after infusion from observations (issue 11 items 1 to 3): neutropenia and B-cell
aplasia determined by the assessment service from the blood counts (services/assessment/domain/
counts.py, by services/clinical/cytopenia.py: ANC < 500/uL, CTCAE v5 grade 4, recovered on
the first of three values at or above it; CD19+ B cells below 20/uL, recovered on the first
value at or above it), and the projection's course figures (hospital stay, enrolment to
apheresis, neutropenia and aplasia durations, deaths and last contacts)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

from contracts.commands import RecordObservation
from contracts.events import CountEpisodesDetermined, ObservationRecorded, ProductInfused, SubjectEnrolled
from contracts.events import ApheresisCollected
from contracts.observations import BloodCounts, Death, HospitalAdmission, HospitalDischarge, LastContact
from services.assessment import bootstrap
from services.assessment.domain.model import assessment_stream
from services.projection.domain.report import ProgrammeRow, course
from services.projection.domain.subject_view import SubjectView, fold
from tests.unit.services.fakes import Bus, FakeAges, FakeEscalations, FakeInfusions, FakeStreams, FakeSubjectCentres

SUBJECT = "S-0123456789AB"
CET = timezone(timedelta(hours=1))
INFUSED = datetime(2025, 3, 10, 10, tzinfo=CET)
COI = "I0011250000011"


def on(day: int, hour: int = 8) -> datetime:
    return INFUSED.replace(hour=hour) + timedelta(days=day)


class Ward:
    def __init__(self) -> None:
        self.streams, self.infusions = FakeStreams(), FakeInfusions()
        self.bus = Bus(bootstrap.spec, streams=self.streams, infusions=self.infusions, escalations=FakeEscalations(),
                       ages=FakeAges(), subject_centres=FakeSubjectCentres())

    async def observe(self, at: datetime, observation) -> None:
        await self.infusions.add(SUBJECT, 1, INFUSED)
        await self.bus.send(RecordObservation(subject_id=SUBJECT, observed_at=at, observation=observation))

    def latest(self, kind: str) -> CountEpisodesDetermined:
        return [e for e in self.streams.events(assessment_stream(SUBJECT))
                if isinstance(e, CountEpisodesDetermined) and e.kind == kind][-1]


async def a_course() -> Ward:
    """Lymphodepletion started already neutropenic (seed 002's patients 1 and 4): ANC below 500
    from day -3, recovering on day 8 (8, 9, 10 at or above 500); B cells gone from day 7 to day
    250; in hospital from day -6 to day 14; last seen alive on day 300."""
    ward = Ward()
    await ward.observe(on(-6), HospitalAdmission(reason="lymphodepletion and CAR-T"))
    for day, anc in ((-5, 900), (-3, 400), (0, 100), (3, 0), (6, 300), (8, 600), (9, 800), (10, 1200)):
        await ward.observe(on(day), BloodCounts(anc_per_ul=anc))
    await ward.observe(on(4, 20), BloodCounts(anc_per_ul=700))  # a single value up: no recovery
    for day, b in ((-5, 150), (7, 5), (90, 0), (250, 40)):
        await ward.observe(on(day, 9), BloodCounts(b_cells_per_ul=b))
    await ward.observe(on(14), HospitalDischarge())
    await ward.observe(on(300), LastContact())
    return ward


class TestFromTheCounts:
    async def test_neutropenia_from_before_the_infusion_to_its_recovery(self):
        ward = await a_course()
        [episode] = ward.latest("neutropenia").episodes
        assert (episode.onset_day, episode.recovery_day, episode.duration_days) == (-3, 8, 11)
        assert (episode.nadir_per_ul, episode.nadir_day) == (0, 3)
        assert ward.latest("neutropenia").threshold_per_ul == 500

    async def test_b_cell_aplasia_to_its_recovery(self):
        ward = await a_course()
        [period] = ward.latest("b_cell_aplasia").episodes
        assert (period.onset_day, period.recovery_day, period.duration_days, period.nadir_per_ul) == (7, 250, 243, 0)

    async def test_each_determination_is_recorded_only_when_it_changes_and_supersedes_by_revision(self):
        ward = await a_course()
        revisions = [e.revision for e in ward.streams.events(assessment_stream(SUBJECT))
                     if isinstance(e, CountEpisodesDetermined) and e.kind == "neutropenia"]
        assert revisions == list(range(1, len(revisions) + 1)) and len(revisions) == 9  # each count changed it
        await ward.observe(on(300, 10), LastContact())
        assert [e.revision for e in ward.streams.events(assessment_stream(SUBJECT))
                if isinstance(e, CountEpisodesDetermined)][-1] == 4  # B-cell aplasia's, unchanged since


class TestTheCourseInTheProjection:
    async def test_the_figures_and_what_they_leave_out(self):
        ward = await a_course()
        view = SubjectView(SUBJECT)
        for e, at in [(SubjectEnrolled(subject_id=SUBJECT, programme_id="CART-BALL-RR", centre_id="IT-BG-01",
                                       enrolled_on=date(2025, 1, 10)), on(-60)),
                      (ApheresisCollected(coi_id=COI, subject_id=SUBJECT, centre_id="IT-BG-01",
                                          collected_at=datetime(2025, 1, 21, 9, tzinfo=CET)), on(-48)),
                      (ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=INFUSED, infusion_number=1),
                       INFUSED)]:
            view = fold(view, e, at)
        for e in ward.streams.events(assessment_stream(SUBJECT)):
            view = fold(view, e, getattr(e, "observed_at", INFUSED))
        assert (view.hospital_stay_days, view.enrolment_to_apheresis_days) == (20, 11)
        assert view.neutropenia_episodes == ((-3, 8, 11),) and view.b_cell_aplasia_episodes == ((7, 250, 243),)
        assert view.last_contact_on == "2026-01-04" and view.died_on is None
        assert SubjectView.from_json(view.to_json()) == view
        dead = fold(view, ObservationRecorded(observation_id="0" * 32, subject_id=SUBJECT, observed_at=on(320),
                                              observation=Death(cause="relapse")), on(320))
        other = SubjectView("S-BA9876543210", enrolments=(("2025-01-10", "CART-BALL-RR"),), phase="infused")
        c = course([ProgrammeRow.of(view), ProgrammeRow.of(other)])
        assert (c["hospital_stay_days"]["median"], c["hospital_stay_days"]["n"]) == (20, 1)
        assert c["hospital_stay_days"]["left_out"]["n"] == 1
        assert c["neutropenia_days"]["median"] == 11 and c["b_cell_aplasia_days"]["median"] == 243
        assert round(c["b_cell_aplasia_months"]["median"], 1) == 8.0
        assert c["enrolment_to_apheresis_days"] == {"median": 11, "minimum": 11, "maximum": 11, "n": 1,
                                                    "left_out": {"n": 1, "why": "not collected yet"}}
        assert (c["alive_at_last_contact"], c["deaths"], c["n"]) == (1, 0, 2)
        assert course([ProgrammeRow.of(dead)])["deaths"] == 1


class TestSurvival:
    """OS, EFS, TTP and DOR in the report (services/clinical/time_to_event.py,
    services/clinical/survival.py), from the views' infusion, responses, relapse, death and
    last contact."""

    @staticmethod
    def subject(n: int, *, remission: int | None = 28, relapse: int | None = None, died: int | None = None,
                last: int = 365) -> SubjectView:
        day0 = date(2024, 1, 1) + timedelta(days=n)

        def iso(days: int) -> str:
            return (day0 + timedelta(days=days)).isoformat()

        responses = []
        if remission is not None:
            responses.append((iso(remission), "complete_remission", "negative", False))
        if relapse is not None:
            responses.append((iso(relapse), "haematological_relapse", "positive", False))
        from services.projection.domain.subject_view import Product
        return SubjectView(f"S-{n:012d}", enrolments=(("2023-12-01", "CART-BALL-RR"),), phase="assessed",
                           products=(Product(f"I00112400000{n}1", collected_on="2023-12-10", infused_on=day0.isoformat(),
                                             infused_at=f"{day0.isoformat()}T10:00:00+00:00"),),
                           responses=tuple(responses), last_contact_on=iso(min(last, died) if died else last),
                           died_on=iso(died) if died is not None else None)

    def report(self, conf_type: str = "log-log") -> dict:
        from services.projection.domain.report import survival

        views = [self.subject(1, relapse=120, died=200), self.subject(2, relapse=90, last=300),
                 self.subject(3, died=150), self.subject(4), self.subject(5, remission=None, last=180)]
        return survival([ProgrammeRow.of(v) for v in views], conf_type)

    def test_overall_survival_counts_the_deaths_and_censors_the_living(self):
        os_ = self.report()["overall_survival"]
        assert (os_["n"], os_["events"], os_["median_months"]) == (5, 2, None)  # 2 deaths of 5: not reached

    def test_duration_of_response_counts_the_responders_only(self):
        dor = self.report()["duration_of_response"]
        assert (dor["n"], dor["events"], dor["left_out"]["n"]) == (4, 3, 1)  # relapse, relapse, death
        assert "no complete remission" in dor["left_out"]["why"]

    def test_efs_counts_no_remission_within_3_months_as_a_failure_at_day_0(self):
        efs = self.report()["event_free_survival"]
        assert (efs["n"], efs["events"]) == (5, 4)  # three failures after remission, one never in remission

    def test_time_to_progression_censors_a_death_without_relapse(self):
        ttp = self.report()["time_to_progression"]
        assert (ttp["n"], ttp["events"]) == (5, 2)

    def test_who_is_alive_in_mrd_negative_remission_at_the_last_assessment(self):
        from services.projection.domain.report import course as course_of

        views = [self.subject(1, relapse=120, died=200), self.subject(2, relapse=90, last=300),
                 self.subject(3, died=150), self.subject(4), self.subject(5, remission=None, last=180)]
        assert course_of([ProgrammeRow.of(v) for v in views])["alive_in_mrd_negative_remission_at_last_assessment"] == 1

    def test_the_interval_type_is_chosen(self):
        assert self.report("log")["conf_type"] == "log"

    def test_contradicting_dates_are_left_out_and_said(self):
        from services.projection.domain.report import survival

        bad = dataclasses.replace(self.subject(9, died=100), last_contact_on="2025-06-01")  # alive after death
        os_ = survival([ProgrammeRow.of(bad), ProgrammeRow.of(self.subject(8))])["overall_survival"]
        assert (os_["n"], os_["left_out"]["n"]) == (1, 1) and "contradict" in os_["left_out"]["why"]



class TestOutcomeEvents:
    """Issue 11 item 4: what a downstream consumer needs, on celltrail.outcomes.v1, each once
    (its key), a changed determination as a new outcome."""

    def test_closed_episodes_responses_and_a_death(self):
        from contracts import events as ev
        from services.projection.domain.subject_view import outcome_key, outcomes

        view = TestSurvival.subject(1, relapse=120, died=200)
        view = dataclasses.replace(view, crs_episodes=((1, 2, 4, 3, True, False), (10, 1, None, None, False, False)),
                                   icans_episodes=((5, 2, 7, 2, False, True),))
        found = outcomes(view)
        closed = [o for o in found if isinstance(o, ev.ToxicityEpisodeClosed)]
        assert [(o.kind.value, o.onset_day, o.max_grade, o.duration_days) for o in closed] == [
            ("crs", 1, 2, 3), ("icans", 5, 2, 2)]  # the open CRS episode is not closed yet
        responses = [o for o in found if isinstance(o, ev.ResponseDetermined)]
        assert [(o.study_day, o.response_category) for o in responses] == [
            (28, ev.ResponseCategory.CR), (120, ev.ResponseCategory.HAEMATOLOGICAL_RELAPSE)]
        [death] = [o for o in found if isinstance(o, ev.DeathRecorded)]
        assert death.study_day == 200
        keys = {outcome_key(o, view) for o in found}
        assert len(keys) == len(found)
        worse = dataclasses.replace(view, crs_episodes=((1, 3, 4, 3, True, False),))
        changed = next(o for o in outcomes(worse) if isinstance(o, ev.ToxicityEpisodeClosed) and o.kind.value == "crs")
        assert outcome_key(changed, worse) not in keys  # a new outcome supersedes the earlier one

    def test_each_observed_relapse_once_with_its_study_day_and_site(self):
        import itertools

        from contracts import events as ev
        from contracts.observations import Relapse
        from services.projection.domain.subject_view import outcome_key, outcomes

        def relapse(day: int, site: str, n: int) -> ObservationRecorded:  # day from the infusion of 2024-01-02
            return ObservationRecorded(observation_id=str(n) * 32, subject_id="S-000000000001",
                                       observed_at=datetime(2024, 1, 2, 9, tzinfo=CET) + timedelta(days=day),
                                       observation=Relapse(site=site))

        seen = [relapse(100, "molecular", 3), relapse(120, "extramedullary", 4), relapse(100, "molecular", 5)]
        views = set()
        for order in itertools.permutations(seen):
            view = TestSurvival.subject(1)
            for e in order:
                view = fold(view, e, e.observed_at)
            views.add(view)
        [view] = views  # any order, and the same relapse observed twice once
        assert SubjectView.from_json(view.to_json()) == view
        found = [o for o in outcomes(view) if isinstance(o, ev.RelapseRecorded)]
        assert [(o.relapsed_on.isoformat(), o.study_day, o.site) for o in found] == [
            ("2024-04-11", 100, "molecular"), ("2024-05-01", 120, "extramedullary")]
        keys = {outcome_key(o, view) for o in outcomes(view)}
        assert len(keys) == len(outcomes(view))
        # folded before the infusion is known: no study day; once it is, a new outcome supersedes it
        early = fold(dataclasses.replace(view, products=(), relapse_sites=(), relapses=()), seen[0], INFUSED)
        [before] = [o for o in outcomes(early) if isinstance(o, ev.RelapseRecorded)]
        assert before.study_day is None and outcome_key(before, early) not in keys

    async def test_the_mtd_of_a_dose_escalation_once_for_its_programme(self):
        from contracts import events as ev
        from services.projection.adapters.outcomes import outcome_stream
        from services.projection.application.handlers import project_batch
        from tests.unit.services.fakes import FakeOutcomes, FakeReadModels, envelope

        declared = ev.MtdDeclared(programme_id="NK-PHALL-P1", programme_version=1, recommended_level=1,
                                  action="stop_max_sample_size", reason="MTD not established; recommended level 1",
                                  declared_on=date(2025, 7, 30))
        mtd = envelope(declared, subject_id=None, occurred_at=INFUSED, stream_id="escalation-NK-PHALL-P1")
        enrolled = SubjectEnrolled(subject_id=SUBJECT, programme_id="NK-PHALL-P1", centre_id="IT-RM-01",
                                   enrolled_on=date(2025, 7, 1))
        read_models, published = FakeReadModels(), FakeOutcomes()
        await project_batch(read_models, published, [(mtd, declared),
                                                      (envelope(enrolled, subject_id=SUBJECT, occurred_at=INFUSED),
                                                       enrolled)])
        [(key, outcome)] = [(k, o) for k, o in published.published.items() if isinstance(o, ev.MtdDetermined)]
        assert key.startswith("mtd:NK-PHALL-P1:") and set(read_models.views) == {SUBJECT}  # no subject's view
        assert (outcome.mtd_level, outcome.recommended_level, outcome.programme_version, outcome.declared_on) == (
            None, 1, 1, date(2025, 7, 30))
        assert outcome_stream(outcome) == ("outcomes-programme-NK-PHALL-P1", None)  # keyed by the programme
        # a rebuild (the read models dropped, the topics replayed) derives the same key: published once
        await project_batch(FakeReadModels(), published, [(mtd, declared)])
        assert [k for k in published.published if k.startswith("mtd:")] == [key] and published.calls == 2


class TestTheExampleConsumer:
    """docs/examples/outcome_consumer.py keeps the latest outcome per what it is about."""

    def test_a_later_outcome_supersedes_an_earlier_one_and_a_duplicate_changes_nothing(self):
        import importlib.util
        from pathlib import Path

        from contracts import events as ev
        from tests.unit.services.fakes import envelope

        path = Path(__file__).parents[3] / "docs" / "examples" / "outcome_consumer.py"
        spec = importlib.util.spec_from_file_location("outcome_consumer", path)
        consumer = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(consumer)

        def record(outcome) -> bytes:
            env = envelope(outcome, subject_id=getattr(outcome, "subject_id", None), occurred_at=INFUSED)
            return env.model_dump_json().encode()

        first = ev.ToxicityEpisodeClosed(subject_id=SUBJECT, programme_id="CART-BALL-RR", kind="crs", onset_day=1,
                                         max_grade=1, resolution_day=3, duration_days=2, tocilizumab_given=True,
                                         steroids_given=False)
        worse = first.model_copy(update={"max_grade": 2})
        death = ev.DeathRecorded(subject_id=SUBJECT, programme_id="CART-BALL-RR", died_on=date(2025, 9, 1),
                                 study_day=175)
        relapse = ev.RelapseRecorded(subject_id=SUBJECT, programme_id="CART-BALL-RR", relapsed_on=date(2025, 8, 1),
                                     study_day=None, site="molecular")
        relapse_later = relapse.model_copy(update={"study_day": 144})  # the first infusion known later
        mtd = ev.MtdDetermined(programme_id="NK-PHALL-P1", programme_version=1, recommended_level=1,
                               action="stop_max_sample_size", reason="MTD not established",
                               declared_on=date(2025, 7, 30))
        kept = consumer.latest([record(first), record(death), record(relapse), record(mtd), record(worse),
                                record(death), record(relapse_later), record(mtd)])
        assert kept == {("toxicity", SUBJECT, "crs", 1): worse, ("death", SUBJECT): death,
                        ("relapse", SUBJECT, date(2025, 8, 1), "molecular"): relapse_later,
                        ("mtd", "NK-PHALL-P1"): mtd}


class TestAdverseEvents:
    """Adverse events by CTCAE v5 term and grade in the view (the worst grade of each term,
    whatever the order) and the report's safety table."""

    def test_the_worst_grade_of_each_term_and_the_table(self):
        import itertools

        from contracts.observations import AdverseEvent
        from services.projection.domain.report import adverse_events

        def ae(term: str, grade: int, serious: bool = False, day: int = 3) -> ObservationRecorded:
            return ObservationRecorded(observation_id="1" * 32, subject_id=SUBJECT, observed_at=on(day),
                                       observation=AdverseEvent(ctcae_term=term, grade=grade, serious=serious,
                                                                attribution="possible"))

        events = [ae("Febrile neutropenia", 3, True), ae("febrile neutropenia", 2, day=9), ae("Hypogammaglobulinemia", 2)]
        folded = set()
        for order in itertools.permutations(events):
            view = SubjectView(SUBJECT, phase="infused", enrolments=(("2025-01-10", "CART-BALL-RR"),))
            for e in order:
                view = fold(view, e, e.observed_at)
            folded.add(view.adverse_events)
        assert folded == {(("febrile neutropenia", 3, True), ("hypogammaglobulinemia", 2, False))}
        assert SubjectView.from_json(view.to_json()).adverse_events == view.adverse_events
        other = SubjectView("S-BA9876543210", phase="infused", enrolments=(("2025-01-10", "CART-BALL-RR"),))
        other = fold(other, ae("Febrile neutropenia", 4).model_copy(update={"subject_id": "S-BA9876543210"}), on(2))
        table = adverse_events([ProgrammeRow.of(view), ProgrammeRow.of(other)])
        assert table["n"] == 2 and table["grade_3_or_more"] == 2
        assert table["by_term"]["febrile neutropenia"] == {"by_worst_grade": {"3": 1, "4": 1}, "serious": 1,
                                                           "subjects": 2}
        assert table["by_term"]["hypogammaglobulinemia"]["by_worst_grade"] == {"2": 1}


class TestDay28ByEachReading:
    """Seed 000: the day-28 response by morphology, flow cytometry and molecular biology, each
    with its exact interval, over the subjects whose assessment measured it."""

    def test_each_reading_counts_its_own_subjects(self):
        from services.projection.domain.report import by_reading

        def row(morphology: bool, flow: bool | None, molecular: bool | None) -> ProgrammeRow:
            return ProgrammeRow("CARCIK-CD19-P2", "assessed", {"morphologic_response": morphology,
                                                                "flow_response": flow,
                                                                "molecular_response": molecular,
                                                                "responder": morphology}, None)

        r = by_reading([row(True, True, False), row(True, False, None), row(False, False, False)])
        assert (r["morphology"]["responders"], r["morphology"]["n"]) == (2, 3)
        assert (r["flow_cytometry"]["responders"], r["flow_cytometry"]["n"]) == (1, 3)
        assert (r["molecular"]["responders"], r["molecular"]["n"], r["molecular"]["left_out"]["n"]) == (0, 2, 1)
        # 2/3: Clopper-Pearson 95 % (0.0943, 0.9916); 0/2: (0, 0.8419)
        assert [round(x, 4) for x in r["morphology"]["ci95"]] == [0.0943, 0.9916]
        assert [round(x, 4) for x in r["molecular"]["ci95"]] == [0.0, 0.8419]


class TestTheTimelineAtTheSite:
    """Issue 11 item 5: times as the site's clock read them, and clinical order."""

    def test_a_collection_at_half_past_midnight_in_italy_is_on_that_day(self):
        collected = datetime(2025, 3, 10, 0, 30, tzinfo=CET)
        view = fold(SubjectView(SUBJECT), ApheresisCollected(coi_id=COI, subject_id=SUBJECT, centre_id="IT-BG-01",
                                                             collected_at=collected), collected)
        [entry] = view.timeline
        assert (entry.at[:10], entry.on, entry.local) == ("2025-03-09", "2025-03-10", "2025-03-10T00:30:00+01:00")
        assert SubjectView.from_json(view.to_json()).timeline == view.timeline

    def test_registered_then_enrolled_on_one_day_whatever_the_order(self):
        from contracts.events import PatientRegistered

        registered = PatientRegistered(subject_id=SUBJECT, centre_id="IT-BG-01")
        enrolled = SubjectEnrolled(subject_id=SUBJECT, programme_id="CART-BALL-RR", centre_id="IT-BG-01",
                                   enrolled_on=date(2025, 3, 3))
        collected = ApheresisCollected(coi_id=COI, subject_id=SUBJECT, centre_id="IT-BG-01",
                                       collected_at=datetime(2025, 3, 3, 8, tzinfo=CET))
        midnight = datetime(2025, 3, 3, tzinfo=timezone.utc)  # a registration's recorded time: its date's start
        for order in ((enrolled, collected, registered), (registered, enrolled, collected),
                      (collected, registered, enrolled)):
            view = SubjectView(SUBJECT)
            for e in order:
                view = fold(view, e, midnight if e is registered else collected.collected_at)
            assert [t.event_type for t in view.timeline] == [
                "enrollment.PatientRegistered", "enrollment.SubjectEnrolled", "manufacturing.ApheresisCollected"]


class TestPlots:
    """celltrail report --plots (issue 11 item 6): SVG that parses, with what it must draw."""

    def test_kaplan_meier_curves_and_the_swimmer_plot(self, tmp_path):
        import xml.etree.ElementTree as ET

        from infra.tooling.plots import write_plots
        from services.projection.domain.report import programme_report

        views = [TestSurvival.subject(1, relapse=120, died=200), TestSurvival.subject(2, relapse=90, last=300),
                 TestSurvival.subject(3, died=150), TestSurvival.subject(4), TestSurvival.subject(5, remission=None,
                                                                                                   last=180)]
        views[3] = dataclasses.replace(views[3], crs_episodes=((1, 2, 4, 3, True, False),))
        report = programme_report([ProgrammeRow.of(v) for v in views])
        from services.projection.domain.deidentify import deidentified

        # as a reader without identifiers sees the views: dates cut to the year, intervals kept
        written = write_plots(tmp_path, report, [deidentified(v.to_json()) for v in views])
        assert sorted(p.name for p in written) == sorted(
            [f"CART-BALL-RR-{e}.svg" for e in ("overall_survival", "event_free_survival", "time_to_progression",
                                               "duration_of_response")] + ["CART-BALL-RR-swimmer.svg"])
        ns = "{http://www.w3.org/2000/svg}"

        def classes(name: str) -> list[str]:
            return [e.get("class") for e in ET.parse(tmp_path / name).getroot().iter() if e.get("class")]

        os_ = classes("CART-BALL-RR-overall_survival.svg")
        assert os_.count("curve") == 1 and os_.count("band") == 1
        at_risk = [e.text for e in ET.parse(tmp_path / "CART-BALL-RR-overall_survival.svg").getroot().iter(f"{ns}text")
                   if e.get("class") == "at-risk"]
        assert at_risk[0] == "5"  # all five at risk at month 0
        swim = classes("CART-BALL-RR-swimmer.svg")
        assert swim.count("lane") == 5 and swim.count("infusion") == 5 and swim.count("death") == 2
        assert swim.count("remission") == 4 and swim.count("relapse") == 2 and swim.count("crs") == 1
        assert swim.count("alive") == 3


class TestLupus:
    """Seed 003: SLEDAI-2K (Gladman 2002: proteinuria 4, arthritis 4, rash 2, low complement 2,
    increased DNA binding 2) and DORIS 2021 remission (clinical SLEDAI 0, PGA < 0.5, prednisone
    <= 5 mg/day, stable maintenance) and drug-free remission (DORIS 2017), from raw assessments."""

    @staticmethod
    def assessed(view: SubjectView, day: int, descriptors: list[str], pga: float, prednisone: float,
                 immunosuppressive: bool = False) -> SubjectView:
        from contracts.observations import LupusAssessment

        at = datetime.combine(date.fromisoformat(view.products[0].infused_on) + timedelta(days=day),
                              datetime.min.time(), tzinfo=CET).replace(hour=9)
        e = ObservationRecorded(observation_id=f"{day + 100:032d}", subject_id=view.subject_id, observed_at=at,
                                observation=LupusAssessment(descriptors=descriptors, physician_global_assessment=pga,
                                                            prednisone_equivalent_mg_per_day=prednisone,
                                                            on_immunosuppressive=immunosuppressive))
        return fold(view, e, at)

    def test_the_change_from_baseline_and_remission(self):
        from services.projection.domain.report import lupus

        first = self.assessed(TestSurvival.subject(1), -5, ["proteinuria", "arthritis", "rash", "low_complement",
                                                            "increased_dna_binding"], 2.0, 20.0, True)
        first = self.assessed(first, 90, [], 0.2, 0.0)
        second = self.assessed(TestSurvival.subject(2), -3, ["proteinuria", "low_complement"], 1.5, 10.0, True)
        second = self.assessed(second, 90, ["low_complement"], 0.3, 7.5, True)  # prednisone above 5 mg/day
        third = TestSurvival.subject(3)  # infused, never assessed for lupus
        assert [x[1] for x in first.lupus] == [14, 0] and [x[1] for x in second.lupus] == [6, 2]
        table = lupus([ProgrammeRow.of(v) for v in (first, second, third)])
        assert (table["sledai_2k_baseline"]["median"], table["sledai_2k_change"]["median"]) == (10, -9)
        assert (table["sledai_2k_change"]["minimum"], table["sledai_2k_change"]["maximum"]) == (-14, -4)
        assert table["sledai_2k_change"]["left_out"]["n"] == 1
        assert table["doris_remission"] == {"subjects": 1, "n": 2}
        assert table["drug_free_remission"] == {"subjects": 1, "n": 2}
        assert SubjectView.from_json(first.to_json()).lupus == first.lupus

    def test_its_descriptors_are_the_rules(self):
        from contracts.observations import SledaiDescriptor as Contract
        from services.clinical.sledai import SledaiDescriptor as Rule

        assert [c.value for c in Contract] == [r.value for r in Rule]


class TestRelapseAndExpansion:
    async def test_car_t_expansion_from_the_counts(self):
        ward = Ward()
        for day, cells in ((-1, 0.0), (4, 12.0), (10, 118.8), (10.5, 90.0), (28, 3.0), (60, 0.0)):
            at = on(int(day), 8 if day == int(day) else 20)
            await ward.observe(at, BloodCounts(car_t_per_ul=cells))
        from contracts.events import CarTExpansionDetermined

        latest = [e for e in ward.streams.events(assessment_stream(SUBJECT)) if isinstance(e, CarTExpansionDetermined)]
        # cytopenia.car_t_expansion: the peak 118.8/uL on day 10 (the day's highest), last detectable day 28
        assert (latest[-1].peak_per_ul, latest[-1].peak_day, latest[-1].last_detectable_day) == (118.8, 10, 28)
        # a lower second count on day 10 changes nothing: no new revision
        assert latest[-1].counted_days == [4, 10, 28, 60] and [e.revision for e in latest] == [1, 2, 3, 4]
        view = SubjectView(SUBJECT, phase="infused")
        for e in ward.streams.events(assessment_stream(SUBJECT))[::-1]:  # any order: the latest revision
            view = fold(view, e, INFUSED)
        assert view.car_t == (4, 118.8, 10, 28)
        assert SubjectView.from_json(view.to_json()).car_t == view.car_t

    def test_an_observed_relapse_ends_the_response(self):
        from contracts.observations import Relapse
        from services.projection.domain.report import survival

        view = TestSurvival.subject(1)  # in remission from day 28
        relapsed = fold(view, ObservationRecorded(
            observation_id="2" * 32, subject_id=view.subject_id, observed_at=datetime(2024, 5, 1, 9, tzinfo=CET),
            observation=Relapse(site="extramedullary")), INFUSED)
        assert relapsed.response_dates == ("2024-01-30", "2024-05-01")
        assert survival([ProgrammeRow.of(relapsed)])["time_to_progression"]["events"] == 1
