"""A centre's named time zone (issue 11 item 5): `RegisterCentre.time_zone` (IANA, validated with
zoneinfo), carried by the centre's registration and by each of its patients' registration, and
the projection showing a subject's dates and times at the site in it (daylight saving time by
the zone's rules) rather than at the offset recorded with each time; without one, at that
offset as before."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import events as ev
from contracts.commands import PublishProgramme, RegisterCentre
from contracts.observations import (
    Death,
    HospitalAdmission,
    HospitalDischarge,
    LastContact,
    LupusAssessment,
    MolecularMrd,
    Relapse,
)
from services.enrollment.application import handlers
from services.enrollment.domain.model import centre_stream, subject_stream
from services.projection.domain.subject_view import SubjectView, fold
from tests.unit.services.fakes import FakeIdentities, FakeStreams
from tests.unit.services.test_enrollment_handlers import definition, patient_cmd, wired

SUBJECT = "S-0123456789AB"
CENTRE = "IT-BG-01"
COI = "I0011250000011"
ROME = "Europe/Rome"
UTC = timezone.utc
CET, CEST = timezone(timedelta(hours=1)), timezone(timedelta(hours=2))
REGISTERED_AT = datetime(2025, 1, 2, tzinfo=UTC)  # a registration's recorded time: its date's start


def registered(time_zone: str | None = ROME) -> ev.PatientRegistered:
    return ev.PatientRegistered(subject_id=SUBJECT, centre_id=CENTRE, time_zone=time_zone)


def collected(at: datetime) -> ev.ApheresisCollected:
    return ev.ApheresisCollected(coi_id=COI, subject_id=SUBJECT, centre_id=CENTRE, collected_at=at)


def observed(at: datetime, observation, n: int = 1) -> ev.ObservationRecorded:
    return ev.ObservationRecorded(observation_id=uuid.UUID(int=n), subject_id=SUBJECT, observed_at=at,
                                  observation=observation)


def folded(*events: ev.EventPayload) -> SubjectView:
    view = SubjectView(SUBJECT)
    for e in events:
        view = fold(view, e, REGISTERED_AT if isinstance(e, ev.PatientRegistered) else datetime.now(UTC), "e")
    return view


class TestTheContract:
    def test_a_centre_may_name_its_iana_zone_and_need_not(self):
        assert RegisterCentre(centre_id=CENTRE, name="Bergamo", country="IT", time_zone=ROME).time_zone == ROME
        assert RegisterCentre(centre_id=CENTRE, name="Bergamo", country="IT").time_zone is None
        # compatible: a registration recorded before the field reads as one without a zone
        assert ev.CentreRegistered.model_validate({"centre_id": CENTRE, "name": "Bergamo", "country": "IT"}
                                                  ).time_zone is None
        assert ev.PatientRegistered.model_validate({"subject_id": SUBJECT, "centre_id": CENTRE}).time_zone is None

    @pytest.mark.parametrize("name", ["Europe/Atlantis", "Rome", "CET+1", "Europe", "../etc/passwd", "localtime", ""])
    def test_a_name_the_iana_database_does_not_know_is_refused_naming_it(self, name):
        for model, fields in ((RegisterCentre, {"name": "Bergamo", "country": "IT"}),
                              (ev.CentreRegistered, {"name": "Bergamo", "country": "IT"}),
                              (ev.PatientRegistered, {"subject_id": SUBJECT})):
            with pytest.raises(ValidationError) as refused:
                model.model_validate({"centre_id": CENTRE, **fields, "time_zone": name})
            assert "time_zone" in str(refused.value) and repr(name) in str(refused.value)

    @pytest.mark.parametrize("name", ["Europe/Rome", "Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires",
                                      "Etc/GMT-1"])
    def test_iana_names_are_accepted(self, name):
        assert RegisterCentre(centre_id=CENTRE, name="C", country="IT", time_zone=name).time_zone == name


class TestEnrollment:
    async def test_the_centres_zone_is_recorded_and_travels_with_each_patients_registration(self):
        streams = FakeStreams()
        await wired(streams).send(PublishProgramme(definition=definition()))
        await wired(streams).send(RegisterCentre(centre_id=CENTRE, name="Bergamo", country="IT", time_zone=ROME))

        subject_id, _ = await handlers.register_patient(patient_cmd(CENTRE), streams, FakeIdentities())

        assert [e.time_zone for e in streams.events(centre_stream(CENTRE))] == [ROME]
        [event] = streams.events(subject_stream(subject_id))
        assert isinstance(event, ev.PatientRegistered) and event.time_zone == ROME


class TestTheProjection:
    def test_a_collection_at_half_past_midnight_in_italy_is_on_its_own_day_whatever_clock_recorded_it(self):
        # the centre's clock recorded it in UTC: still 9 March there, 10 March in Bergamo
        view = folded(registered(), collected(datetime(2025, 3, 9, 23, 30, tzinfo=UTC)))
        entry = view.timeline[-1]
        assert (entry.at[:10], entry.on, entry.local) == ("2025-03-09", "2025-03-10", "2025-03-10T00:30:00+01:00")
        assert view.products[0].collected_on == "2025-03-10"

    def test_without_a_zone_the_offset_recorded_stands_as_before(self):
        view = folded(registered(None), collected(datetime(2025, 3, 9, 23, 30, tzinfo=UTC)))
        entry = view.timeline[-1]
        assert (entry.on, entry.local) == ("2025-03-09", "2025-03-09T23:30:00+00:00")
        assert view.time_zone is None and view.products[0].collected_on == "2025-03-09"

    @pytest.mark.parametrize("utc, local", [
        (datetime(2025, 1, 15, 23, 30, tzinfo=UTC), "2025-01-16T00:30:00+01:00"),  # winter: CET, UTC+1
        (datetime(2025, 7, 15, 22, 30, tzinfo=UTC), "2025-07-16T00:30:00+02:00"),  # summer: CEST, UTC+2
        # the night the clocks go forward (30 March 2025, 02:00 CET -> 03:00 CEST) and back
        (datetime(2025, 3, 30, 1, 30, tzinfo=UTC), "2025-03-30T03:30:00+02:00"),
        (datetime(2025, 10, 26, 0, 30, tzinfo=UTC), "2025-10-26T02:30:00+02:00"),
        (datetime(2025, 10, 26, 1, 30, tzinfo=UTC), "2025-10-26T02:30:00+01:00"),
    ])
    def test_the_zones_rules_give_the_time_at_the_site_in_summer_and_in_winter(self, utc, local):
        entry = folded(registered(), collected(utc)).timeline[-1]
        assert (entry.on, entry.local) == (local[:10], local)

    def test_an_offset_disagreeing_with_the_zone_is_kept_in_the_log_and_shown_in_the_zone(self):
        # a fixed +01:00 in July (a file's winter offset): 23:45+01:00 is 22:45 UTC, 00:45 CEST
        # on the next day in Bergamo; not refused (docs/course.md, "Times at the site")
        event = collected(datetime(2025, 7, 15, 23, 45, tzinfo=CET))
        view = folded(registered(), event)
        assert event.collected_at.isoformat() == "2025-07-15T23:45:00+01:00"
        assert (view.timeline[-1].on, view.timeline[-1].local) == ("2025-07-16", "2025-07-16T00:45:00+02:00")

    def test_the_dates_of_the_course_are_the_zones(self):
        infused = datetime(2025, 3, 10, 9, tzinfo=CET)
        view = folded(registered(), collected(datetime(2025, 2, 20, 23, 30, tzinfo=UTC)),
                      ev.ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=infused, infusion_number=1),
                      observed(datetime(2025, 3, 5, 23, 15, tzinfo=UTC), HospitalAdmission(), 1),
                      observed(datetime(2025, 3, 24, 23, 15, tzinfo=UTC), HospitalDischarge(), 2),
                      observed(datetime(2025, 9, 30, 22, 30, tzinfo=UTC), LastContact(), 3))
        assert view.products[0].collected_on == "2025-02-21"
        assert view.hospital_stay_days == 19  # 6 to 25 March at the site (5 to 24 in UTC)
        assert view.last_contact_on == "2025-10-01"
        assert view.vein_to_vein_days == 17  # 21 February to 10 March

    def test_the_zone_and_the_instants_behind_the_dates_keep_through_json(self):
        view = folded(*journey())
        again = SubjectView.from_json(view.to_json())
        assert again == view and again.time_zone == ROME


def journey() -> list[ev.EventPayload]:
    """A subject at a centre in Rome whose times were recorded in UTC, each near midnight, so
    that its date at the site is the next day's."""
    lupus = LupusAssessment(physician_global_assessment=0.5, prednisone_equivalent_mg_per_day=5)
    return [registered(),
            ev.SubjectEnrolled(subject_id=SUBJECT, programme_id="CART-BALL-RR", centre_id=CENTRE,
                               enrolled_on=date(2025, 1, 20)),
            collected(datetime(2025, 2, 2, 23, 30, tzinfo=UTC)),
            ev.ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=datetime(2025, 2, 27, 23, 10, tzinfo=UTC),
                              infusion_number=1),
            observed(datetime(2025, 2, 24, 23, 5, tzinfo=UTC), HospitalAdmission(), 1),
            observed(datetime(2025, 3, 20, 23, 5, tzinfo=UTC), HospitalDischarge(), 2),
            observed(datetime(2025, 6, 30, 22, 20, tzinfo=UTC), Relapse(site="molecular"), 3),
            observed(datetime(2025, 5, 31, 22, 20, tzinfo=UTC), lupus, 4),
            observed(datetime(2025, 6, 1, 8, 0, tzinfo=CEST), lupus, 5),  # the same day at the site as 4
            observed(datetime(2025, 8, 31, 22, 40, tzinfo=UTC), LastContact(), 6),
            observed(datetime(2025, 9, 30, 22, 40, tzinfo=UTC), Death(cause="relapse"), 7),
            observed(datetime(2025, 4, 30, 22, 30, tzinfo=UTC), MolecularMrd(  # 1 May at the site
                target="bcr_abl1_p190", specimen="bone_marrow", detected=True, quantifiable=False), 8)]


class TestWhicheverArrivesFirst:
    """The registration carrying the zone may be folded after the facts it dates (events come
    from four topics): what was dated at the recorded offsets is dated again in the zone."""

    @settings(max_examples=60, deadline=None)
    @given(st.permutations(journey()))
    def test_any_arrival_order_gives_the_same_view(self, order):
        assert folded(*order) == folded(*journey())

    def test_the_zone_learnt_last_dates_everything_at_the_site(self):
        events = journey()
        view = folded(*events[1:], events[0])
        assert view == folded(*events)
        assert view.products[0].collected_on == "2025-02-03" and view.products[0].infused_on == "2025-02-28"
        assert (view.admissions[0][1], view.discharges[0][1]) == ("2025-02-25", "2025-03-21")
        assert view.relapses == ("2025-07-01",)
        assert [(x[0], x[4]) for x in view.lupus] == [("2025-06-01", str(uuid.UUID(int=5)))]
        assert [(x[0], x[1]) for x in view.molecular] == [("2025-05-01", "positive_not_quantifiable")]
        assert (view.last_contact_on, view.died_on) == ("2025-09-01", "2025-10-01")
        assert [t.on for t in view.timeline] == sorted(t.on for t in view.timeline)
        assert all(t.local is None or t.local.endswith(("+01:00", "+02:00")) for t in view.timeline)

    def test_a_registration_without_a_zone_changes_nothing_already_dated(self):
        events = journey()[1:]
        view = folded(*events, registered(None))
        assert view == folded(registered(None), *events) and view.time_zone is None
        assert view.products[0].collected_on == "2025-02-02"  # at the offset recorded: UTC
