"""Projection, issue 9 item 4: QC results judged against the specification, the release the
qualified person signs, the exceptional release of units out of specification (EU GMP Part IV
11.5) and the sponsor's notification, in each subject's view (folded in any order), in the
`GET /units` listing and in the programme report."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import events as ev
from contracts.base import EventPayload
from contracts.custody import CustodyState as S
from contracts.custody import CustodyStep as T
from contracts.custody import UnitKind
from services.projection.domain.deidentify import deidentified
from services.projection.domain.report import ProgrammeRow, programme_report
from services.projection.domain.subject_view import SubjectView, fold
from services.projection.entrypoints.http import UNIT_FIELDS, unit_wanted
from tests.unit.services.test_projection import (
    CENTRE,
    COI,
    COLLECTED_AT,
    INFUSED_AT,
    PROGRAMME,
    RELEASED_AT,
    SUBJECT,
    collected,
    enrolled,
    fold_all,
    registered,
)

FACILITY = "GMP-PAVIA"
A0, B0 = COI + "A0", COI + "B0"
LABELLED_AT = RELEASED_AT - timedelta(days=3)  # 21 Mar 12:00
TESTED_AT = LABELLED_AT + timedelta(hours=2)
EXPIRES_AT = LABELLED_AT + timedelta(days=365)
REQUESTED_AT = LABELLED_AT + timedelta(days=1)
ASSESSED_AT = REQUESTED_AT + timedelta(hours=4)
ACCEPTED_AT = LABELLED_AT + timedelta(days=2)
SIGNED_AT = RELEASED_AT + timedelta(hours=1)  # the QP certifies the release record an hour after it
NOTIFIED_AT = RELEASED_AT + timedelta(hours=2)
RELEASE_ID = uuid.UUID("8a2f1e34-5b6c-4d7e-8f90-a1b2c3d4e5f6")
Event = tuple[EventPayload, datetime]


def labelled() -> Event:
    return (ev.ProductUnitsRegistered(coi_id=COI, subject_id=SUBJECT, facility_id=FACILITY, lot_number="LOT-24-017",
                                      unit_ids=[A0, B0], location="suite", registered_at=LABELLED_AT, role="operator",
                                      storage="cryopreserved"), LABELLED_AT)


def qc(unit: str = A0, *, within: bool = True, at: datetime = TESTED_AT, version: int = 2) -> Event:
    viability = ev.JudgedResult(attribute="viability_percent", value=92.5 if within else 61.0, criterion=">= 70 %",
                                passed=within)
    sterility = ev.JudgedResult(attribute="sterility", detected=False, criterion="not detected", passed=True)
    return (ev.QcResultsRecorded(unit_id=unit, coi_id=COI, subject_id=SUBJECT, programme_id=PROGRAMME,
                                 specification_version=version, results=[viability, sterility],
                                 within_specification=within, failed=[] if within else ["viability_percent"],
                                 org_id=FACILITY, role="qc_analyst", location="QC lab", scanned_id=unit, tested_at=at,
                                 expires_at=EXPIRES_AT, use_within_minutes=60), at)


def release_record(oos: list[str] = ()) -> Event:
    return (ev.ProductReleased(coi_id=COI, subject_id=SUBJECT, lot_number="LOT-24-017", released_at=RELEASED_AT,
                               released_by="QP J. Smith", viable_cells_per_ml=2.5e6, volume_ml=50.0,
                               facility_id=FACILITY, awaiting_signature=True, out_of_specification_units=list(oos)),
            RELEASED_AT)


def certification(*units: tuple[str, bool], at: datetime = SIGNED_AT, expires_at: datetime = EXPIRES_AT) -> Event:
    return (ev.ReleaseCertified(coi_id=COI, subject_id=SUBJECT, facility_id=FACILITY, release_event_id=RELEASE_ID,
                                units=[ev.CertifiedUnit(unit_id=u, out_of_specification=oos, expires_at=expires_at,
                                                        use_within_minutes=60) for u, oos in units],
                                signer="qp.bianchi", printed_name="Giulia Bianchi", signed_at=at, record_hash="ab" * 32),
            at)


def requested(at: datetime = REQUESTED_AT) -> Event:
    return (ev.ExceptionalReleaseRequested(coi_id=COI, subject_id=SUBJECT, unit_ids=[B0], org_id=CENTRE,
                                           role="physician", justification="no alternative therapy", requested_at=at),
            at)


def assessed(at: datetime = ASSESSED_AT) -> Event:
    return (ev.OosRiskAssessed(assessment_id=uuid.uuid4(), coi_id=COI, subject_id=SUBJECT, unit_ids=[B0],
                               facility_id=FACILITY, role="qualified_person", deviation="viability 61 %",
                               risk_assessment="dose still within range", assessed_at=at), at)


def accepted(at: datetime = ACCEPTED_AT) -> Event:
    return (ev.ExceptionalReleaseAccepted(coi_id=COI, subject_id=SUBJECT, unit_ids=[B0], assessment_id=uuid.uuid4(),
                                          signer="physician.a", printed_name="Marco Rossi", org_id=CENTRE,
                                          signed_at=at, record_hash="cd" * 32), at)


def raised(at: datetime = ACCEPTED_AT) -> Event:
    return (ev.SponsorNotificationRaised(coi_id=COI, subject_id=SUBJECT, programme_id=PROGRAMME, unit_ids=[B0],
                                         failed=["viability_percent"], facility_id=FACILITY, raised_at=at), at)


def notified(at: datetime = NOTIFIED_AT) -> Event:
    return (ev.SponsorNotified(coi_id=COI, subject_id=SUBJECT, org_id=FACILITY, role="qualified_person",
                               reference="SPONSOR-NOTE-7", notified_at=at), at)


def shipped(unit: str, at: datetime) -> Event:
    return (ev.CustodyStepRecorded(unit_id=unit, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                   step=T.SHIPPED, from_state=S.RELEASED, to_state=S.IN_TRANSIT, org_id=FACILITY,
                                   role="operator", location="dispatch", at=at, scanned_id=unit,
                                   destination_org_id=CENTRE), at)


def infused(unit: str = B0, *, oos: bool = True, number: int = 1, at: datetime = INFUSED_AT) -> Event:
    return (ev.ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=at, infusion_number=number, unit_id=unit,
                              out_of_specification=oos), at)


def exceptional_journey() -> list[Event]:
    """Two bags: A0 within specification, B0 out of it and released on the exceptional-release
    path; the sponsor notified; B0 infused with its flag."""
    return [registered(), enrolled(), collected(), labelled(), qc(A0), qc(B0, within=False), requested(), assessed(),
            accepted(), raised(), release_record([B0]), certification((A0, False), (B0, True)), notified(),
            shipped(B0, SIGNED_AT + timedelta(hours=3)), infused(B0)]


def unit(view: SubjectView, unit_id: str) -> dict:
    return next(u for u in view.to_json()["units"] if u["unit_id"] == unit_id)


def summaries(view: SubjectView, event_type: str) -> list[str]:
    return [e.summary for e in view.timeline if e.event_type == event_type]


class TestQcResults:
    def test_a_unit_within_specification_is_qc_complete_awaiting_release_with_its_expiry(self):
        a0 = unit(fold_all([labelled(), qc(A0)]), A0)

        assert (a0["state"], a0["holder"], a0["since"]) == ("qc_complete", FACILITY, TESTED_AT.isoformat())
        assert (a0["out_of_specification"], a0["failed"], a0["specification_version"]) == (False, [], 2)
        assert (a0["expires_at"], a0["use_within_minutes"]) == (EXPIRES_AT.isoformat(), 60)
        assert (a0["awaiting_release"], a0["awaiting_release_signature"], a0["release"]) == (
            True, False, "awaiting release")

    def test_a_unit_out_of_specification_shows_its_failed_attributes_and_awaits_no_release(self):
        b0 = unit(fold_all([labelled(), qc(B0, within=False)]), B0)

        assert (b0["state"], b0["out_of_specification"], b0["failed"]) == (
            "out_of_specification", True, ["viability_percent"])
        assert (b0["awaiting_release"], b0["release"]) == (False, "out of specification")

    def test_the_results_are_on_the_timeline_when_tested_with_what_failed(self):
        view = fold_all([qc(B0, within=False)])

        [entry] = [e for e in view.timeline if e.event_type == "manufacturing.QcResultsRecorded"]
        assert entry.at == TESTED_AT.isoformat()
        assert entry.summary == (f"QC results of unit {B0} by {FACILITY} (qc_analyst), specification v2: out of "
                                 "specification: viability_percent 61 (>= 70 %)")

    def test_of_two_results_of_a_unit_the_later_test_stands_whichever_arrives_first(self):
        later = qc(A0, within=False, at=TESTED_AT + timedelta(hours=1), version=3)

        assert fold_all([qc(A0), later]) == fold_all([later, qc(A0)])
        assert unit(fold_all([labelled(), later, qc(A0)]), A0)["specification_version"] == 3

    def test_a_qc_step_of_an_old_log_still_makes_its_unit_qc_complete_awaiting_release(self):
        step = ev.CustodyStepRecorded(unit_id=A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                      step=T.QC_RESULTS_RECORDED, from_state=S.AWAITING_QC, to_state=S.QC_COMPLETE,
                                      org_id=FACILITY, role="qc_analyst", location="QC lab", at=TESTED_AT,
                                      scanned_id=A0)
        a0 = unit(fold_all([labelled(), (step, TESTED_AT)]), A0)

        assert (a0["state"], a0["awaiting_release"], a0["out_of_specification"]) == ("qc_complete", True, False)


class TestSignedRelease:
    def test_a_release_record_awaiting_signature_releases_nothing_yet(self):
        view = fold_all([collected(), labelled(), qc(A0), qc(B0), release_record()])

        assert view.phase == "collected" and view.products[0].released_at is None
        assert [(u["state"], u["release"], u["awaiting_release_signature"]) for u in view.to_json()["units"]] == [
            ("qc_complete", "awaiting release signature", True)] * 2
        assert view.to_json()["products"][0]["awaiting_release_signature"] is True
        assert summaries(view, "manufacturing.ProductReleased") == [
            f"release record of product lot LOT-24-017, COI {COI}: awaiting the qualified person's signature"]

    @pytest.mark.parametrize("certification_first", [False, True])
    def test_the_certification_releases_the_units_it_names_at_the_signature(self, certification_first):
        events = [collected(), labelled(), qc(A0), qc(B0), release_record(), certification((A0, False))]
        view = fold_all(events[::-1] if certification_first else events)

        assert view.phase == "released"
        assert (view.products[0].released_at, view.products[0].certified_at) == (SIGNED_AT.isoformat(),) * 2
        assert [(u["unit_id"], u["state"], u["since"], u["release"]) for u in view.to_json()["units"]] == [
            (A0, "released", SIGNED_AT.isoformat(), "released"), (B0, "qc_complete", TESTED_AT.isoformat(),
                                                                  "awaiting release")]
        assert summaries(view, "manufacturing.ReleaseCertified") == [
            f"release of COI {COI} certified by Giulia Bianchi (qp.bianchi): unit(s) {A0} released"]

    def test_the_legs_of_the_path_turn_at_the_certification_not_at_the_release_record(self):
        view = fold_all([collected(), labelled(), qc(A0), release_record(), certification((A0, False)),
                         infused(A0, oos=False, at=SIGNED_AT + timedelta(days=2))])

        assert view.legs_days["release_to_infusion"] == 2.0

    def test_a_release_recorded_before_units_keeps_its_meaning_released_at_once(self):
        from tests.unit.services.test_projection import released

        view = fold_all([collected(), released()])

        assert view.phase == "released" and view.products[0].released_at == RELEASED_AT.isoformat()
        assert view.products[0].awaiting_release_signature is False


class TestExceptionalRelease:
    @pytest.mark.parametrize("steps, status", [
        ([], "out of specification"),
        ([requested()], "exceptional release requested"),
        ([requested(), assessed()], "exceptional release assessed"),
        ([requested(), assessed(), accepted()], "awaiting release"),
        ([requested(), assessed(), accepted(), release_record([B0])], "awaiting release signature"),
        ([requested(), assessed(), accepted(), release_record([B0]), certification((B0, True))],
         "released out of specification"),
    ])
    def test_the_unit_follows_request_assessment_acceptance_and_release(self, steps, status):
        assert unit(fold_all([collected(), labelled(), qc(B0, within=False), *steps]), B0)["release"] == status

    def test_a_new_request_after_an_acceptance_starts_again_whichever_arrives_first(self):
        again = requested(ACCEPTED_AT + timedelta(hours=1))
        events = [labelled(), qc(B0, within=False), requested(), assessed(), accepted(), again]

        assert fold_all(events) == fold_all(events[::-1])
        assert unit(fold_all(events), B0)["exceptional_release"] == "requested"

    def test_each_step_is_on_the_timeline_at_its_clinical_time(self):
        view = fold_all(exceptional_journey())

        assert [(e.event_type, e.at) for e in view.timeline if e.event_type in (
            "manufacturing.ExceptionalReleaseRequested", "manufacturing.OosRiskAssessed",
            "manufacturing.ExceptionalReleaseAccepted", "manufacturing.SponsorNotificationRaised",
            "manufacturing.ReleaseCertified", "manufacturing.SponsorNotified")] == [
            ("manufacturing.ExceptionalReleaseRequested", REQUESTED_AT.isoformat()),
            ("manufacturing.OosRiskAssessed", ASSESSED_AT.isoformat()),
            ("manufacturing.ExceptionalReleaseAccepted", ACCEPTED_AT.isoformat()),
            ("manufacturing.SponsorNotificationRaised", ACCEPTED_AT.isoformat()),
            ("manufacturing.ReleaseCertified", SIGNED_AT.isoformat()),
            ("manufacturing.SponsorNotified", NOTIFIED_AT.isoformat())]

    def test_a_unit_released_out_of_specification_keeps_its_flag_after_it_left_the_facility(self):
        b0 = unit(fold_all(exceptional_journey()), B0)

        assert (b0["state"], b0["holder"]) == ("infused", "patient")
        assert (b0["out_of_specification"], b0["released_out_of_specification"], b0["failed"]) == (
            True, True, ["viability_percent"])
        assert b0["release"] == "released out of specification" and b0["awaiting_release"] is False

    def test_the_certification_says_which_units_are_released_out_of_specification(self):
        view = fold_all(exceptional_journey())

        assert summaries(view, "manufacturing.ReleaseCertified") == [
            f"release of COI {COI} certified by Giulia Bianchi (qp.bianchi): unit(s) {A0}, {B0} released, "
            f"{B0} out of specification"]

    def test_the_infusion_and_the_bedside_check_say_the_bag_was_released_out_of_specification(self):
        check = ev.BedsideCheckRecorded(check_id=uuid.uuid4(), unit_id=B0, coi_id=COI, subject_id=SUBJECT,
                                        centre_id=CENTRE, verified_by=["nurse.a", "physician.a"], go=True,
                                        checked_at=INFUSED_AT - timedelta(minutes=20), out_of_specification=True)
        view = fold_all([(check, check.checked_at), infused(B0)])

        assert summaries(view, "infusion.BedsideCheckRecorded") == [
            f"bedside check of unit {B0} (released out of specification): go, by nurse.a and physician.a"]
        assert summaries(view, "infusion.ProductInfused") == [
            f"infusion 1, COI {COI}, unit {B0}, released out of specification"]
        assert view.oos_infusions == ((INFUSED_AT.isoformat(), COI, 1, B0),)


class TestSponsorNotifications:
    def test_a_raised_notification_is_open_until_the_sponsor_is_notified(self):
        open_ = fold_all([raised()]).to_json()
        closed = fold_all([raised(), notified()]).to_json()

        assert [(n["coi_id"], n["unit_ids"], n["failed"], n["facility_id"]) for n in open_["open_sponsor_notifications"]
                ] == [(COI, [B0], ["viability_percent"], FACILITY)]
        assert closed["open_sponsor_notifications"] == []
        [task] = closed["sponsor_notifications"]
        assert (task["open"], task["notified_at"], task["reference"]) == (False, NOTIFIED_AT.isoformat(),
                                                                          "SPONSOR-NOTE-7")

    def test_the_notification_closes_the_task_whichever_arrives_first(self):
        assert fold_all([notified(), raised()]) == fold_all([raised(), notified()])
        assert fold_all([notified(), raised()]).open_sponsor_notifications == []

    def test_a_notification_at_the_instant_the_task_is_raised_closes_it(self):
        assert fold_all([raised(), notified(ACCEPTED_AT)]).open_sponsor_notifications == []

    def test_the_task_shows_the_first_notification_made_after_it(self):
        again = ev.SponsorNotified(coi_id=COI, subject_id=SUBJECT, org_id=FACILITY, role="qualified_person",
                                   reference="FOLLOW-UP", notified_at=NOTIFIED_AT + timedelta(days=1))
        [task] = fold_all([(again, again.notified_at), raised(), notified()]).to_json()["sponsor_notifications"]

        assert (task["notified_at"], task["reference"]) == (NOTIFIED_AT.isoformat(), "SPONSOR-NOTE-7")

    def test_a_task_raised_after_the_last_notification_stays_open(self):
        later = raised(NOTIFIED_AT + timedelta(days=1))
        view = fold_all([later, notified(), raised()])

        assert [t.raised_at for t in view.open_sponsor_notifications] == [later[1].isoformat()]


class TestOrderInsensitive:
    @settings(max_examples=150, deadline=None)
    @given(st.permutations(list(range(15))))
    def test_any_arrival_order_of_an_exceptional_release_gives_the_same_view(self, order):
        events = exceptional_journey()
        assert len(events) == 15
        view = fold_all([events[i] for i in order])

        assert view == fold_all(events)
        assert {u.unit_id: (u.state, u.holder) for u in view.units} == {
            A0: ("released", FACILITY), B0: ("infused", "patient")}

    @pytest.mark.parametrize("certification_first", [False, True])
    def test_a_certification_folded_before_the_qc_results_ends_in_the_same_view(self, certification_first):
        events = [labelled(), qc(A0), release_record(), certification((A0, False))]
        view = fold_all(events[::-1] if certification_first else events)

        assert view == fold_all(events)
        assert (unit(view, A0)["state"], unit(view, A0)["expires_at"]) == ("released", EXPIRES_AT.isoformat())

    def test_the_certifications_limits_of_use_stand_over_the_results_whichever_comes_first(self):
        other = certification((A0, False), expires_at=EXPIRES_AT - timedelta(days=30))  # what the release certified

        assert unit(fold_all([qc(A0), other]), A0)["expires_at"] == (EXPIRES_AT - timedelta(days=30)).isoformat()
        assert fold_all([qc(A0), other]) == fold_all([other, qc(A0)])

    def test_the_view_keeps_everything_through_json(self):
        view = fold_all(exceptional_journey())

        assert SubjectView.from_json(view.to_json()) == view

    def test_a_view_stored_before_these_fields_reads_back_without_them(self):
        stored = fold_all([registered(), collected()]).to_json()
        for key in ("unit_quality", "sponsor_notifications", "open_sponsor_notifications", "sponsor_notified",
                    "out_of_specification_infusions"):
            del stored[key]
        for p in stored["products"]:
            del p["release_recorded_at"], p["certified_at"], p["awaiting_release_signature"]

        assert SubjectView.from_json(stored) == fold_all([registered(), collected()])


def listed(view: SubjectView) -> list[dict]:
    """Each unit as `GET /units` answers it (entrypoints/http.py)."""
    return [{"unit_id": u.unit_id, **{k: v for k, v in view.unit_json(u).items() if k in UNIT_FIELDS}}
            for u in view.units]


class TestUnitsListing:
    def items(self) -> list[dict]:
        awaiting = fold_all([collected(), labelled(), qc(A0), qc(B0, within=False)])
        signing = fold_all([collected(), labelled(), qc(A0), qc(B0, within=False), requested(), assessed(),
                            accepted(), release_record([B0])])
        return [*listed(awaiting), *[{**i, "unit_id": i["unit_id"] + "-signing"} for i in listed(signing)],
                *[{**i, "unit_id": i["unit_id"] + "-done"} for i in listed(fold_all(exceptional_journey()))]]

    @pytest.mark.parametrize("query, units", [
        ({"awaiting_release": "true"}, [A0, A0 + "-signing", B0 + "-signing"]),
        ({"awaiting_release_signature": "true"}, [A0 + "-signing", B0 + "-signing"]),
        ({"released_out_of_specification": "true"}, [B0 + "-done"]),
        ({"out_of_specification": "true"}, [B0, B0 + "-signing", B0 + "-done"]),
        ({"out_of_specification": "true", "awaiting_release": "false"}, [B0, B0 + "-done"]),
        ({"state": "released"}, [A0 + "-done"]),
    ])
    def test_units_are_filtered_by_where_their_release_stands(self, query, units):
        assert [i["unit_id"] for i in self.items() if unit_wanted(i, query)] == units

    def test_each_unit_shows_its_flag_failed_attributes_and_expiry(self):
        b0 = next(i for i in listed(fold_all(exceptional_journey())) if i["unit_id"] == B0)

        assert {k: b0[k] for k in ("out_of_specification", "failed", "expires_at", "use_within_minutes")} == {
            "out_of_specification": True, "failed": ["viability_percent"], "expires_at": EXPIRES_AT.isoformat(),
            "use_within_minutes": 60}


class TestReport:
    def rows(self) -> list[ProgrammeRow]:
        oos = fold_all(exceptional_journey())  # one infusion out of specification, its sponsor notified
        pending = fold_all([enrolled(), collected(), raised(), infused(B0), infused(B0, number=2,
                                                                               at=INFUSED_AT + timedelta(days=30))])
        clean = fold_all([enrolled(), collected(), infused(A0, oos=False)])
        return [ProgrammeRow.of(v) for v in (oos, pending, clean)]

    def test_infusions_of_units_released_out_of_specification_are_counted_with_their_subjects(self):
        [entry] = programme_report(self.rows())

        assert entry["out_of_specification_infusions"] == {"infusions": 3, "n": 2}

    def test_open_sponsor_notifications_are_counted_with_their_subjects(self):
        [entry] = programme_report(self.rows())

        assert entry["open_sponsor_notifications"] == {"notifications": 1, "n": 1}

    def test_a_programme_with_none_reports_zero_over_no_subject(self):
        [entry] = programme_report([ProgrammeRow(PROGRAMME, "enrolled", None, None)])

        assert entry["out_of_specification_infusions"] == {"infusions": 0, "n": 0}
        assert entry["open_sponsor_notifications"] == {"notifications": 0, "n": 0}

    def test_the_release_to_infusion_leg_starts_at_the_certification(self):
        view = fold_all([enrolled(), collected(), labelled(), qc(A0), release_record(), certification((A0, False)),
                         infused(A0, oos=False, at=SIGNED_AT + timedelta(days=3))])
        [entry] = programme_report([ProgrammeRow.of(view)])

        assert entry["legs_days"]["release_to_infusion"] == {"n": 1, "median": 3.0, "minimum": 3.0, "maximum": 3.0}
        # the manufacturing leg ends there too: no start recorded here, so unknown
        assert entry["legs_days"]["manufacturing"] is None


class TestDeidentified:
    def test_no_unit_id_coi_or_date_finer_than_the_year_is_left_in_the_new_fields(self):
        import json
        import re

        view = fold_all(exceptional_journey()).to_json()
        assert COI in json.dumps(view["units"]) and EXPIRES_AT.isoformat() in json.dumps(view["unit_quality"])
        shown = json.dumps(deidentified(view))

        assert COI not in shown and not re.search(r"\d{4}-\d{2}", shown), shown
        assert {u["unit_id"] for u in deidentified(view)["units"]} == {"[removed]A0", "[removed]B0"}

    def test_what_the_network_reports_on_is_kept(self):
        view = fold_all(exceptional_journey()).to_json()
        shown = deidentified(view)

        assert [(u["state"], u["release"], u["failed"]) for u in shown["units"]] == [
            (u["state"], u["release"], u["failed"]) for u in view["units"]]
        assert len(shown["sponsor_notifications"]) == 1 and shown["legs_days"] == view["legs_days"]


def test_an_event_of_no_subject_such_as_a_specification_shapes_no_view():
    spec = ev.ProductSpecificationSet(
        programme_id=PROGRAMME, org_id=FACILITY, version=2, role="qualified_person", set_at=COLLECTED_AT,
        criteria=[ev.SpecificationCriterion(attribute="viability_percent", kind="at_least", low=70, source="FDA")])

    assert fold(SubjectView(SUBJECT), spec, COLLECTED_AT) == SubjectView(SUBJECT)


# --- dosing at infusion (issue 10 item 4) ---------------------------------------------------
LD_ID, DOSE_ID = uuid.UUID("11111111-2222-4333-8444-555555555555"), uuid.UUID("66666666-7777-4888-9999-000000000000")


def dosing_journey() -> list[Event]:
    from datetime import date
    prescribed = ev.LymphodepletionPrescribed(
        prescription_id=LD_ID, subject_id=SUBJECT, programme_id=PROGRAMME, programme_version=1,
        regimen="Flu/Cy 30/500", height_cm=170.0, weight_kg=65.0, bsa_formula="mosteller", bsa_m2=1.752,
        planned_infusion_on=INFUSED_AT.date(),
        doses=[ev.ScheduledDose(on=INFUSED_AT.date() - timedelta(days=n), study_day=-n, agent="fludarabine",
                                mg_per_m2=30.0, dose_mg=53.0) for n in (5, 4, 3)],
        prescribed_at=INFUSED_AT - timedelta(days=7))
    given = [ev.LymphodepletionAdministered(
        prescription_id=LD_ID, subject_id=SUBJECT, agent="fludarabine", study_day=-n,
        on=INFUSED_AT.date() - timedelta(days=n), dose_mg=53.0 if n != 3 else 45.0, prescribed_mg=53.0,
        administered_at=INFUSED_AT - timedelta(days=n), deviation_reason="renal function" if n == 3 else None)
        for n in (5, 4, 3)]
    completed = ev.LymphodepletionCompleted(
        prescription_id=LD_ID, subject_id=SUBJECT, completed_on=INFUSED_AT.date() - timedelta(days=3),
        window=ev.InfusionWindow(earliest=INFUSED_AT.date(), latest=date(2099, 1, 1)))
    dose = ev.CellDosePrescribed(
        prescription_id=DOSE_ID, subject_id=SUBJECT, unit_id=A0, programme_id=PROGRAMME, programme_version=1,
        dose_level=1, weight_kg=65.0, cells_per_kg=1e6, target_cells=6.5e7, viable_cells_per_ml=2.5e6,
        bag_volume_ml=68.0, volume_ml=26.0, planned_cells=6.5e7, deviation_fraction=0.0, tolerance_fraction=0.2,
        prescribed_at=INFUSED_AT - timedelta(days=1))
    infused = ev.ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=INFUSED_AT, infusion_number=1, unit_id=A0,
                                cell_dose_prescription_id=DOSE_ID, volume_ml=20.0, cells_infused=5e7,
                                dose_deviation_reason="stopped for a reaction")
    return [(prescribed, prescribed.prescribed_at), *((g, g.administered_at) for g in given),
            (completed, given[-1].administered_at), (dose, dose.prescribed_at), (infused, INFUSED_AT)]


class TestDosingOnTheTimeline:
    def test_each_step_is_on_the_timeline_in_clinical_order(self):
        summaries = [e.summary for e in fold_all([enrolled(), *dosing_journey()]).timeline][1:]
        assert summaries[0].startswith("lymphodepletion prescribed (Flu/Cy 30/500): BSA 1.75 m2 (mosteller, 170 cm, "
                                       "65 kg)") and summaries[0].endswith(": fludarabine 53 mg x 3")
        assert summaries[1:4] == ["lymphodepletion: fludarabine 53 mg (day -5)",
                                  "lymphodepletion: fludarabine 53 mg (day -4)",
                                  "lymphodepletion: fludarabine 45 mg (day -3), prescribed 53 mg: renal function"]
        assert summaries[4].startswith("lymphodepletion complete; infusion from ")
        assert summaries[5] == (f"cell dose prescribed from unit {A0} (level 1): 1e+06 cells/kg x 65 kg = 6.5e+07 "
                                "cells, 26 mL at 2.5e+06 cells/mL (+0.0%, tolerance 20%)")
        assert summaries[6].endswith(", 20 mL, 5e+07 cells (dose deviation: stopped for a reaction)")

    @given(st.permutations(dosing_journey()))
    @settings(max_examples=30)
    def test_in_any_order(self, arrival_order):
        assert fold_all(arrival_order) == fold_all(dosing_journey())
