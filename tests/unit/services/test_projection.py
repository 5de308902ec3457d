"""Projection: the subject journey folded from four topics in any order, the outcome events
it implies, the idempotent project() handler, and the programme report."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import events as ev
from contracts.base import EventPayload
from services.projection.application.handlers import project
from services.projection.domain.report import ProgrammeRow, programme_report
from services.projection.domain.subject_view import SubjectView, fold, outcome_key, outcomes
from tests.unit.services.fakes import FakeOutcomes, FakeReadModels, envelope

SUBJECT = "S-0123456789AB"
CENTRE = "OSR-MILANO"
PROGRAMME = "CARCIK-CD19-P2"
COI = "W0001250000011"
COLLECTED_AT = datetime(2024, 3, 10, 9, 0, tzinfo=timezone.utc)
RELEASED_AT = datetime(2024, 3, 24, 12, 0, tzinfo=timezone.utc)
INFUSED_AT = datetime(2024, 3, 27, 10, 30, tzinfo=timezone.utc)
DAY0 = INFUSED_AT.date()


def at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def registered() -> tuple[EventPayload, datetime]:
    return ev.PatientRegistered(subject_id=SUBJECT, centre_id=CENTRE), datetime(2024, 3, 1, tzinfo=timezone.utc)


def enrolled() -> tuple[EventPayload, datetime]:
    return (ev.SubjectEnrolled(subject_id=SUBJECT, programme_id=PROGRAMME, centre_id=CENTRE,
                               enrolled_on=date(2024, 3, 4)), datetime(2024, 3, 4, tzinfo=timezone.utc))


def collected(coi_id: str = COI, collected_at: datetime = COLLECTED_AT) -> tuple[EventPayload, datetime]:
    return (ev.ApheresisCollected(coi_id=coi_id, subject_id=SUBJECT, centre_id=CENTRE, collected_at=collected_at),
            collected_at)


def released() -> tuple[EventPayload, datetime]:
    return (ev.ProductReleased(coi_id=COI, subject_id=SUBJECT, lot_number="LOT-24-017", released_at=RELEASED_AT,
                               released_by="QP J. Smith", viable_cells_per_ml=2.5e6, volume_ml=50.0), RELEASED_AT)


def infused(infused_at: datetime = INFUSED_AT, number: int = 1, coi_id: str = COI) -> tuple[EventPayload, datetime]:
    return (ev.ProductInfused(subject_id=SUBJECT, coi_id=coi_id, infused_at=infused_at, infusion_number=number),
            infused_at)


def assessed(study_day: int, *, blasts: float = 1.0,
             category: ev.ResponseCategory = ev.ResponseCategory.CR) -> tuple[EventPayload, datetime]:
    on = DAY0 + timedelta(days=study_day)
    return (ev.ResponseAssessed(subject_id=SUBJECT, assessed_on=on, study_day=study_day, marrow_blasts_percent=blasts,
                                response_category=category, mrd_status=ev.MrdStatus.NEGATIVE,
                                morphologic_response=blasts < 5), at(on))


def journey() -> list[tuple[EventPayload, datetime]]:
    """One subject from registration to relapse, with two assessments inside the day-28 window."""
    return [registered(), enrolled(), collected(), released(), infused(),
            assessed(26), assessed(30, category=ev.ResponseCategory.CRI),
            assessed(90, blasts=20.0, category=ev.ResponseCategory.HAEMATOLOGICAL_RELAPSE)]


def fold_all(events: list[tuple[EventPayload, datetime]], view: SubjectView | None = None) -> SubjectView:
    view = view or SubjectView(SUBJECT)
    for event, occurred_at in events:
        view = fold(view, event, occurred_at)
    return view


class TestFoldIsOrderInsensitive:
    @given(st.permutations(journey()))
    def test_any_arrival_order_of_one_journey_gives_the_same_view(self, arrival_order):
        assert fold_all(arrival_order) == fold_all(journey())

    def test_the_timeline_is_kept_in_clinical_order_whatever_the_arrival_order(self):
        view = fold_all(list(reversed(journey())))

        assert [e.at for e in view.timeline] == sorted(e.at for e in view.timeline)


class TestPhase:
    @pytest.mark.parametrize(
        "prefix, phase",
        [(1, "registered"), (2, "enrolled"), (3, "collected"), (4, "released"), (5, "infused"), (6, "assessed")],
    )
    def test_the_phase_is_the_last_milestone_reached(self, prefix, phase):
        assert fold_all(journey()[:prefix]).phase == phase

    def test_an_issued_coi_is_on_the_timeline_and_moves_no_phase(self):
        issued = ev.CoiIssued(coi_id=COI, subject_id=SUBJECT, centre_id=CENTRE, issued_at=COLLECTED_AT - timedelta(days=1))
        view = fold_all([registered(), enrolled(), (issued, issued.issued_at)])

        assert view.phase == "enrolled"
        assert [e["summary"] for e in view.to_json()["timeline"]][-1] == f"COI {COI} issued for the apheresis bag"

    def test_a_late_arriving_earlier_milestone_does_not_move_the_phase_back(self):
        view = fold_all([infused(), enrolled(), collected()])

        assert view.phase == "infused"


class TestVeinToVein:
    def test_vein_to_vein_time_is_the_days_from_collection_to_infusion(self):
        assert fold_all([collected(), infused()]).vein_to_vein_days == 17

    def test_vein_to_vein_time_counts_from_the_first_infusion(self):
        view = fold_all([collected(), infused(INFUSED_AT + timedelta(days=40), 2), infused()])

        assert view.vein_to_vein_days == 17

    def test_vein_to_vein_time_is_unknown_before_infusion(self):
        assert fold_all([collected(), released()]).vein_to_vein_days is None

    def test_a_second_collection_after_the_first_infusion_keeps_the_first_vein_to_vein_time(self):
        view = fold_all([enrolled(), collected(), infused(),
                         collected("W000125000002*", INFUSED_AT + timedelta(days=60))])

        assert view.vein_to_vein_days == 17
        assert outcomes(view)  # must not raise


class TestDay28Window:
    # CAR-CIK protocol (seed 000): primary endpoint at day 28 after the first infusion;
    # this projection's visit window is day 21-35 (DAY28_WINDOW).
    @pytest.mark.parametrize(
        "study_day, in_window",
        [
            pytest.param(20, False, id="day-20-before-window"),
            pytest.param(21, True, id="day-21-first-day-of-window"),
            pytest.param(28, True, id="day-28"),
            pytest.param(35, True, id="day-35-last-day-of-window"),
            pytest.param(36, False, id="day-36-after-window"),
        ],
    )
    def test_only_assessments_inside_the_window_count_as_day_28(self, study_day, in_window):
        view = fold_all([infused(), assessed(study_day)])

        assert (view.day28 is not None) is in_window

    def test_the_earliest_assessment_in_the_window_is_the_day_28_assessment(self):
        view = fold_all([assessed(30, category=ev.ResponseCategory.CRI), assessed(26)])

        assert view.day28["study_day"] == 26

    @pytest.mark.parametrize(
        "category, responder",
        [
            # NCCN ALL: overall response = CR or CRi
            (ev.ResponseCategory.CR, True),
            (ev.ResponseCategory.CRI, True),
            (ev.ResponseCategory.NO_RESPONSE, False),
        ],
    )
    def test_a_day_28_cr_or_cri_is_a_responder(self, category, responder):
        view = fold_all([assessed(28, blasts=1.0 if responder else 30.0, category=category)])

        assert view.day28["responder"] is responder


class TestOutcomes:
    def test_no_day_28_outcome_while_the_programme_is_unknown(self):
        view = fold_all([registered(), infused(), assessed(28)])

        assert not any(isinstance(o, ev.Day28ResponseDetermined) for o in outcomes(view))

    def test_no_day_28_outcome_while_the_day_28_assessment_is_unknown(self):
        view = fold_all([enrolled(), infused(), assessed(60)])

        assert not any(isinstance(o, ev.Day28ResponseDetermined) for o in outcomes(view))

    def test_a_day_28_outcome_once_programme_and_day_28_are_both_known(self):
        view = fold_all([assessed(28), enrolled()])

        [day28] = [o for o in outcomes(view) if isinstance(o, ev.Day28ResponseDetermined)]
        assert (day28.programme_id, day28.study_day, day28.responder) == (PROGRAMME, 28, True)

    def test_a_vein_to_vein_outcome_once_programme_collection_and_infusion_are_known(self):
        view = fold_all([infused(), collected(), enrolled()])

        assert [o for o in outcomes(view) if isinstance(o, ev.VeinToVeinTimeDetermined)] == [
            ev.VeinToVeinTimeDetermined(subject_id=SUBJECT, programme_id=PROGRAMME, coi_id=COI, days=17)]


async def projected(events: list[tuple[EventPayload, datetime]], read_models: FakeReadModels,
                    emitter: FakeOutcomes) -> None:
    for event, occurred_at in events:
        await project(read_models, emitter, envelope(event, subject_id=SUBJECT, occurred_at=occurred_at), event)


class TestProjectHandler:
    async def test_an_event_is_folded_into_its_subjects_view(self):
        read_models = FakeReadModels()

        await projected([registered(), enrolled()], read_models, FakeOutcomes())

        assert read_models.views[SUBJECT].programme_id == PROGRAMME

    async def test_an_event_about_no_subject_shapes_no_view(self):
        read_models = FakeReadModels()
        event = ev.CentreRegistered(centre_id=CENTRE, name="Ospedale San Raffaele", country="IT")

        await project(read_models, FakeOutcomes(), envelope(event, subject_id=None, occurred_at=COLLECTED_AT), event)

        assert read_models.views == {}

    async def test_a_stores_chain_head_shapes_no_view_and_emits_nothing(self):
        read_models, emitter = FakeReadModels(), FakeOutcomes()
        head = ev.ChainHeadRecorded(store="assessment", position=7, hash="ab" * 32)

        await project(read_models, emitter, envelope(head, subject_id=None, occurred_at=COLLECTED_AT), head)

        assert (read_models.views, emitter.published) == ({}, {})
        assert fold(SubjectView(SUBJECT), head, COLLECTED_AT) == SubjectView(SUBJECT)

    async def test_an_identity_erasure_leaves_the_subjects_view_and_outcomes_as_they_were(self):
        read_models, emitter = FakeReadModels(), FakeOutcomes()
        await projected(journey(), read_models, emitter)
        view, published = read_models.views[SUBJECT], dict(emitter.published)
        erased = ev.IdentityErased(subject_id=SUBJECT, reason="consent withdrawn", erased_at=INFUSED_AT)

        await project(read_models, emitter, envelope(erased, subject_id=SUBJECT, occurred_at=INFUSED_AT), erased)

        assert (read_models.views[SUBJECT], emitter.published) == (view, published)

    async def test_outcomes_are_emitted_when_their_last_input_arrives(self):
        emitter = FakeOutcomes()

        await projected([assessed(28), infused(), collected(), enrolled()], FakeReadModels(), emitter)

        published = sorted(emitter.published)
        # the day-28 response, vein-to-vein, and the assessment itself (issue 11: a response per assessment)
        assert [published[0], published[2]] == [f"day28:{SUBJECT}:28", f"v2v:{SUBJECT}:{COI}"]
        assert published[1].startswith(f"response:{SUBJECT}:") and len(published) == 3

    async def test_nothing_is_emitted_before_the_programme_is_known(self):
        emitter = FakeOutcomes()

        await projected([collected(), infused(), assessed(28)], FakeReadModels(), emitter)

        assert emitter.published == {}

    async def test_a_later_assessment_closer_to_day_28_supersedes_with_a_new_outcome(self):
        # Documented on Day28ResponseDetermined: consumers keep the latest per subject.
        emitter = FakeOutcomes()

        await projected([enrolled(), assessed(31), assessed(27)], FakeReadModels(), emitter)

        assert [k.rsplit(":", 1)[1] for k in emitter.published if k.startswith("day28:")] == ["31", "27"]

    async def test_an_assessment_farther_from_day_28_arriving_later_publishes_nothing_new(self):
        emitter = FakeOutcomes()

        await projected([enrolled(), assessed(27), assessed(31)], FakeReadModels(), emitter)

        assert [k.rsplit(":", 1)[1] for k in emitter.published if k.startswith("day28:")] == ["27"]


def row(day28_responder: bool | None, v2v: int | None = None, phase: str = "assessed",
        programme_id: str = PROGRAMME) -> ProgrammeRow:
    day28 = None if day28_responder is None else {"responder": day28_responder}
    return ProgrammeRow(programme_id=programme_id, phase=phase, day28=day28, vein_to_vein_days=v2v)


class TestProgrammeReport:
    def test_the_day_28_orr_has_an_exact_clopper_pearson_interval(self):
        [report] = programme_report([row(True), row(True), row(False)])

        # R stats::binom.test(2, 3)$conf.int = 0.09429932 0.99159624
        assert report["day28_orr"]["estimate"] == pytest.approx(2 / 3)
        assert report["day28_orr"]["ci95"] == pytest.approx([0.0943, 0.9916], abs=5e-5)

    def test_subjects_without_a_day_28_assessment_are_not_in_the_orr_denominator(self):
        [report] = programme_report([row(True), row(None, phase="infused"), row(None, phase="enrolled")])

        assert (report["enrolled"], report["infused"], report["day28_evaluable"], report["day28_orr"]["estimate"]) \
            == (3, 2, 1, 1.0)

    def test_a_programme_with_no_day_28_assessment_has_no_orr(self):
        [report] = programme_report([row(None, phase="enrolled")])

        assert report["day28_orr"] is None

    def test_vein_to_vein_time_is_reported_as_median_and_range(self):
        [report] = programme_report([row(True, 17), row(False, 12), row(None, 30, phase="infused"),
                                     row(None, 21, phase="infused"), row(None, None, phase="enrolled")])

        assert report["vein_to_vein_days"] == {"n": 4, "median": 19.0, "minimum": 12, "maximum": 30}

    def test_each_programme_is_reported_separately(self):
        report = programme_report([row(True, programme_id="NK-PHALL-P1"), row(False)])

        assert [(r["programme_id"], r["day28_responders"]) for r in report] == [(PROGRAMME, 0), ("NK-PHALL-P1", 1)]


RELEASE_ID = "8a2f1e34-5b6c-4d7e-8f90-a1b2c3d4e5f6"


def signed(meaning: ev.SignatureMeaning = ev.SignatureMeaning.APPROVAL) -> tuple[EventPayload, datetime]:
    at_ = RELEASED_AT + timedelta(hours=1)
    return (ev.RecordSigned(signer="qp.bianchi", printed_name="Giulia Bianchi", signed_at=at_, meaning=meaning,
                            role="qualified_person", org_id="FAC-1", record_event_id=RELEASE_ID,
                            record_event_type="manufacturing.ProductReleased", record_hash="ab" * 32,
                            subject_id=SUBJECT), at_)


def corrected(study_day: int, *, blasts: float, category: ev.ResponseCategory,
              reason: str = "transcription error") -> tuple[EventPayload, datetime]:
    on = DAY0 + timedelta(days=study_day)
    return (ev.ResponseAssessmentCorrected(
        subject_id=SUBJECT, assessed_on=on, study_day=study_day, marrow_blasts_percent=blasts,
        response_category=category, mrd_status=ev.MrdStatus.NEGATIVE, morphologic_response=blasts < 5,
        reason=reason), at(on))


class TestSignatureManifestation:
    """21 CFR 11.50(b): the printed name, time and meaning shown with the signed record."""

    @pytest.mark.parametrize("signature_first", [False, True])
    def test_the_signed_records_entry_shows_the_signature_whichever_arrived_first(self, signature_first):
        release, signature = released(), signed()
        view = SubjectView(SUBJECT)
        for (event, occurred_at), event_id in ([(signature, None), (release, RELEASE_ID)] if signature_first
                                               else [(release, RELEASE_ID), (signature, None)]):
            view = fold(view, event, occurred_at, event_id)

        [entry] = [t for t in SubjectView.from_json(view.to_json()).to_json()["timeline"]
                   if t["event_type"] == "manufacturing.ProductReleased"]
        assert entry["signatures"] == [{"printed_name": "Giulia Bianchi", "signed_at": "2024-03-24T13:00:00+00:00",
                                        "meaning": "approval", "signer": "qp.bianchi", "role": "qualified_person",
                                        "org_id": "FAC-1"}]

    def test_an_entry_of_another_record_shows_no_signature(self):
        view = fold(fold(SubjectView(SUBJECT), *released(), "another-event-id"), *signed())

        assert [t["signatures"] for t in view.to_json()["timeline"]] == [[]]


class TestCorrections:
    def test_a_correction_shows_beside_the_original_with_its_reason(self):
        view = fold_all([assessed(28), corrected(28, blasts=30.0, category=ev.ResponseCategory.NO_RESPONSE,
                                                 reason="blasts misread")])

        summaries = [t.summary for t in view.timeline]
        assert summaries == ["day 28: complete_remission, MRD negative",
                             "day 28: no_response, MRD negative (corrected: blasts misread)"]

    @pytest.mark.parametrize("correction_first", [False, True])
    def test_the_correction_replaces_the_original_in_the_day_28_endpoint(self, correction_first):
        events = [assessed(28), corrected(28, blasts=30.0, category=ev.ResponseCategory.NO_RESPONSE)]
        view = fold_all(events[::-1] if correction_first else events)

        assert view.day28["responder"] is False and view.day28["corrected"] == "transcription error"

    def test_a_corrected_day_28_outcome_has_another_key_than_the_original(self):
        before = fold_all([enrolled(), assessed(28)])
        after = fold_all([corrected(28, blasts=30.0, category=ev.ResponseCategory.NO_RESPONSE)], before)
        [o1] = [o for o in outcomes(before) if isinstance(o, ev.Day28ResponseDetermined)]
        [o2] = [o for o in outcomes(after) if isinstance(o, ev.Day28ResponseDetermined)]
        assert outcome_key(o1, before) != outcome_key(o2, after) and o2.responder is False


class TestUnits:
    """Issue 9: each subject's units, where their latest custody step left them, and the steps
    on the timeline; folded in any order."""

    A0, B0 = COI + "A0", COI + "B0"

    def custody(self) -> list[tuple[EventPayload, datetime]]:
        from contracts.custody import CustodyState as S, CustodyStep as T, UnitKind

        labelled_at = RELEASED_AT - timedelta(days=3)

        def step(unit: str, step: T, frm: S, to: S, org: str, hours: int, **extra) -> tuple[EventPayload, datetime]:
            moment = labelled_at + timedelta(hours=hours)
            return ev.CustodyStepRecorded(unit_id=unit, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                          step=step, from_state=frm, to_state=to, org_id=org, role="operator",
                                          location=f"{org} store", at=moment, scanned_id=unit, **extra), moment

        return [collected(), released(),
                (ev.ProductUnitsRegistered(coi_id=COI, subject_id=SUBJECT, facility_id="GMP-PAVIA", lot_number="L",
                                           unit_ids=[self.A0, self.B0], location="suite", registered_at=labelled_at,
                                           role="operator", storage="cryopreserved"), labelled_at),
                step(self.A0, T.QC_RESULTS_RECORDED, S.AWAITING_QC, S.QC_COMPLETE, "GMP-PAVIA", 1),
                step(self.B0, T.QC_RESULTS_RECORDED, S.AWAITING_QC, S.QC_COMPLETE, "GMP-PAVIA", 1),
                step(self.A0, T.SHIPPED, S.RELEASED, S.IN_TRANSIT, "GMP-PAVIA", 24 * 3 + 2, destination_org_id=CENTRE),
                step(self.A0, T.RECEIVED, S.IN_TRANSIT, S.RECEIVED, CENTRE, 24 * 3 + 8)]

    @given(st.permutations(list(range(7))))
    def test_any_arrival_order_leaves_each_unit_where_its_latest_step_did(self, order):
        events = self.custody()
        view = fold_all([events[i] for i in order])
        assert view == fold_all(events)
        assert [(u["unit_id"], u["state"], u["holder"]) for u in view.to_json()["units"]] == [
            (self.A0, "received", CENTRE), (self.B0, "released", "GMP-PAVIA")]

    def test_the_custody_steps_are_on_the_timeline(self):
        summaries = [e.summary for e in fold_all(self.custody()).timeline]
        assert f"2 unit(s) of COI {COI} labelled by GMP-PAVIA: {self.A0}, {self.B0}" in summaries
        assert f"unit {self.A0} shipped to {CENTRE} by GMP-PAVIA (operator) at GMP-PAVIA store" in summaries

    def test_the_view_keeps_its_units_through_json(self):
        view = fold_all(self.custody())
        assert SubjectView.from_json(view.to_json()) == view


class TestDonor:
    def test_a_donor_derived_product_names_its_donor_on_the_product_and_the_timeline(self):  # seed 000
        event, at = collected()
        view = fold_all([enrolled(), (event.model_copy(update={"donor_id": "S-D0D0D0D0D0D0"}), at)])
        assert [p.donor_id for p in view.products] == ["S-D0D0D0D0D0D0"]
        assert any(f"apheresis from donor S-D0D0D0D0D0D0, COI {COI}" == t.summary for t in view.timeline)

    def test_an_autologous_one_names_none(self):
        assert [p.donor_id for p in fold_all([enrolled(), collected()]).products] == [None]


class TestQuarantineAndLegs:
    """Issue 9 item 8: open quarantines and each leg of the path, folded in any order."""

    A0 = COI + "A0"

    def events(self) -> list[tuple[EventPayload, datetime]]:
        from contracts.custody import CustodyState as S, CustodyStep as T, Disposition, StorageCondition, UnitKind

        def material(step: T, frm: S, to: S, org: str, at: datetime) -> tuple[EventPayload, datetime]:
            return ev.CustodyStepRecorded(unit_id=COI + "00", coi_id=COI, subject_id=SUBJECT,
                                          unit_kind=UnitKind.STARTING_MATERIAL, step=step, from_state=frm, to_state=to,
                                          org_id=org, role="operator", location="x", at=at, scanned_id=COI + "00"), at

        excursion_at = RELEASED_AT + timedelta(hours=20)
        return [enrolled(), collected(), released(), infused(),
                material(T.RECEIVED, S.IN_TRANSIT, S.RECEIVED, "GMP-PAVIA", COLLECTED_AT + timedelta(hours=18)),
                material(T.MANUFACTURING_STARTED, S.RECEIVED, S.IN_MANUFACTURING, "GMP-PAVIA",
                         COLLECTED_AT + timedelta(days=1)),
                (ev.ExcursionDetected(unit_id=self.A0, coi_id=COI, subject_id=SUBJECT,
                                      storage=StorageCondition.CRYOPRESERVED, low_celsius=None, high_celsius=-150,
                                      started_at=excursion_at, ended_at=excursion_at, ongoing=False, minutes=10,
                                      peak_celsius=-140, deviation=10, logger_id="L"), excursion_at),
                (ev.QaDispositionRecorded(unit_id=self.A0, coi_id=COI, subject_id=SUBJECT,
                                          decision=Disposition.ACCEPT, justification="stable", org_id="GMP-PAVIA",
                                          role="qualified_person", decided_at=excursion_at + timedelta(hours=2)),
                 excursion_at + timedelta(hours=2))]

    @given(st.permutations(list(range(8))))
    def test_a_quarantine_ends_with_the_disposition_whichever_arrives_first(self, order):
        events = self.events()
        view = fold_all([events[i] for i in order])
        assert view == fold_all(events) and view.quarantined == set()
        assert fold_all(events[:7]).quarantined == {self.A0}  # before QA decided

    @given(st.permutations(list(range(3))))
    def test_a_bag_received_back_after_its_return_is_quarantined_until_qa_decides_in_any_order(self, order):
        from contracts.custody import CustodyState as S, CustodyStep as T, Disposition, UnitKind

        back = RELEASED_AT + timedelta(days=3)
        events = [
            (ev.CustodyStepRecorded(unit_id=self.A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                    step=T.RETURNED, from_state=S.STORED, to_state=S.RETURNED, org_id=CENTRE,
                                    role="nurse", location="x", at=back - timedelta(days=1), scanned_id=self.A0,
                                    destination_org_id="GMP-PAVIA", reason="postponed"), back - timedelta(days=1)),
            (ev.CustodyStepRecorded(unit_id=self.A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                    step=T.RECEIVED, from_state=S.RETURNED, to_state=S.RECEIVED, org_id="GMP-PAVIA",
                                    role="operator", location="x", at=back, scanned_id=self.A0), back),
            (ev.QaDispositionRecorded(unit_id=self.A0, coi_id=COI, subject_id=SUBJECT, decision=Disposition.ACCEPT,
                                      justification="kept frozen", org_id="GMP-PAVIA", role="qualified_person",
                                      decided_at=back + timedelta(hours=1)), back + timedelta(hours=1))]
        assert fold_all(events[:2]).quarantined == {self.A0}
        assert fold_all([events[i] for i in order]).quarantined == set()

    def test_each_leg_in_days_for_the_first_product_infused(self):
        # collected 10 Mar 09:00, received 18 h later, started 11 Mar 09:00, released 24 Mar 12:00,
        # infused 27 Mar 10:30
        assert fold_all(self.events()).legs_days == {"collection_to_receipt": 0.8, "manufacturing": 13.1,
                                                     "release_to_infusion": 2.9}

    def test_a_leg_not_yet_known_is_none(self):
        assert fold_all([enrolled(), collected(), released()]).legs_days == {
            "collection_to_receipt": None, "manufacturing": None, "release_to_infusion": None}

    def test_feasibility_is_the_span_of_enrolment_and_the_subjects_treated(self):  # seed 001's endpoint
        from services.projection.domain.report import ProgrammeRow, feasibility

        rows = [ProgrammeRow(PROGRAMME, phase, None, None, CENTRE, enrolled_on=on)
                for phase, on in (("infused", "2025-03-03"), ("enrolled", "2025-09-30"), ("assessed", "2025-05-12"))]
        assert feasibility(rows) == {"first_enrolled_on": "2025-03-03", "last_enrolled_on": "2025-09-30",
                                     "enrolment_span_days": 211, "enrolled": 3, "treated": 2, "n": 3}
        assert feasibility([])["enrolment_span_days"] is None
        view = fold_all([enrolled(), collected(), released(), infused()])
        assert ProgrammeRow.of(view).enrolled_on == view.enrolments[0][0]
        [entry] = programme_report([ProgrammeRow.of(view)])
        assert (entry["feasibility"]["enrolled"], entry["feasibility"]["treated"]) == (1, 1)

    def test_the_report_gives_each_legs_median_and_range(self):
        rows = [ProgrammeRow(PROGRAMME, "infused", None, 17, CENTRE, {"collection_to_receipt": 0.8,
                                                                      "manufacturing": d, "release_to_infusion": None})
                for d in (13.1, 14.0, 20.5)]
        [entry] = programme_report(rows)
        assert entry["legs_days"]["manufacturing"] == {"n": 3, "median": 14.0, "minimum": 13.1, "maximum": 20.5}
        assert entry["legs_days"]["release_to_infusion"] is None

    @given(st.permutations(list(range(10))))
    def test_an_infused_bag_is_in_the_patient_whichever_topic_is_folded_first(self, order):
        infused_at = INFUSED_AT + timedelta(days=1)
        events = [enrolled(), registered(), *TestUnits().custody(),
                  (ev.ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=infused_at, infusion_number=1,
                                     unit_id=self.A0), infused_at)]
        assert len(events) == 10
        view = fold_all([events[i] for i in order])
        assert view == fold_all(events)
        assert {u.unit_id: (u.state, u.holder) for u in view.units}[self.A0] == ("infused", "patient")
