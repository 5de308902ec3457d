"""Enrollment handlers: centres, pseudonymous patient registration, enrolment."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timezone

import pytest

from contracts.errors import CommandRefused

from contracts.commands import EnrollSubject, EraseIdentity, PublishProgramme, RegisterCentre, RegisterPatient
from contracts.programmes import ProgrammeDefinition
from infra.tooling.programmes import bundled
from contracts.events import CentreRegistered, IdentityErased, PatientRegistered, SubjectEnrolled
from infra.runtime.eventstore import ConcurrencyConflictError
from services.enrollment import bootstrap
from services.enrollment.application import handlers
from services.enrollment.domain.model import (
    AlreadyEnrolled,
    CentreAlreadyRegistered,
    DateOfBirthInFuture,
    IdentityAlreadyErased,
    IdentityConflict,
    UnknownCentre,
    UnknownProgramme,
    UnknownSubject,
    WrongCentre,
    centre_stream,
    subject_stream,
)
from services.enrollment.application.ports import Identity
from tests.unit.services.fakes import IMPORTER, Bus, FakeIdentities, FakeStreams

CENTRE = "OSR-MILANO"
OTHER_CENTRE = "HSG-MONZA"
PROGRAMME = "CARCIK-CD19-P2"


def wired(streams: FakeStreams) -> Bus:
    """Enrollment, its commands as an import of records made elsewhere (the data loader),
    which enrols without a screening CellTrail holds; screened enrolment: test_programmes."""
    return Bus(bootstrap.spec, acting=IMPORTER, streams=streams, identities=FakeIdentities())


def centre_cmd(centre_id: str = CENTRE) -> RegisterCentre:
    return RegisterCentre(centre_id=centre_id, name="Ospedale San Raffaele", country="IT")


def patient_cmd(centre_id: str = CENTRE, record: str = "MRN-0042") -> RegisterPatient:
    return RegisterPatient(centre_id=centre_id, hospital_record_number=record, family_name="Rossi",
                           given_name="Maria", date_of_birth=date(1980, 5, 17), registered_on=date(2024, 3, 1))


def enrol_cmd(subject_id: str, centre_id: str = CENTRE, programme_id: str = PROGRAMME) -> EnrollSubject:
    return EnrollSubject(subject_id=subject_id, programme_id=programme_id, centre_id=centre_id,
                         enrolled_on=date(2024, 3, 4))


def definition(programme_id: str = PROGRAMME) -> ProgrammeDefinition:
    """The bundled definition of a seed programme (infra/tooling/programmes/)."""
    return next(d for d in bundled() if d.programme_id == programme_id)


async def registered_centres(*centre_ids: str) -> FakeStreams:
    """The centres, in a network that published the programme's definition."""
    streams = FakeStreams()
    await wired(streams).send(PublishProgramme(definition=definition()))
    for centre_id in centre_ids:
        await wired(streams).send(centre_cmd(centre_id))
    return streams


async def registered_subject(streams: FakeStreams, centre_id: str = CENTRE) -> str:
    subject_id, _ = await handlers.register_patient(patient_cmd(centre_id), streams, FakeIdentities())
    return subject_id


class TestRegisterCentre:
    async def test_a_new_centre_is_registered(self):
        streams = FakeStreams()

        await wired(streams).send(centre_cmd())

        assert streams.events(centre_stream(CENTRE)) == [
            CentreRegistered(centre_id=CENTRE, name="Ospedale San Raffaele", country="IT")]

    async def test_a_centre_cannot_be_registered_twice(self):
        streams = await registered_centres(CENTRE)

        with pytest.raises(CentreAlreadyRegistered) as refused:
            await wired(streams).send(centre_cmd())

        assert refused.value.code == "CENTRE_ALREADY_REGISTERED"

    async def test_two_concurrent_registrations_of_one_centre_record_it_once(self):
        streams = FakeStreams()

        results = await asyncio.gather(wired(streams).send(centre_cmd()),
                                       wired(streams).send(centre_cmd()), return_exceptions=True)

        assert [type(r) for r in results] == [type(None), ConcurrencyConflictError]
        assert len(streams.events(centre_stream(CENTRE))) == 1


class TestRegisterPatient:
    async def test_registration_issues_a_pseudonymous_subject_id(self):
        streams = await registered_centres(CENTRE)

        subject_id, created = await handlers.register_patient(patient_cmd(), streams, FakeIdentities())

        assert created is True
        assert re.fullmatch(r"^S-[0-9A-F]{12}$", subject_id)

    async def test_two_patients_get_different_subject_ids(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()

        first, _ = await handlers.register_patient(patient_cmd(record="MRN-1"), streams, identities)
        second, _ = await handlers.register_patient(patient_cmd(record="MRN-2"), streams, identities)

        assert first != second

    async def test_patient_registered_carries_only_the_pseudonym_and_centre(self):
        streams = await registered_centres(CENTRE)

        subject_id, _ = await handlers.register_patient(patient_cmd(), streams, FakeIdentities())

        [event] = streams.events(subject_stream(subject_id))
        assert isinstance(event, PatientRegistered)
        # and the centre's time zone (none here): the centre's, nothing of the person
        assert event.model_dump(mode="json") == {"subject_id": subject_id, "centre_id": CENTRE, "time_zone": None}

    async def test_no_direct_identifier_reaches_the_event_stream(self):
        streams = await registered_centres(CENTRE)

        await handlers.register_patient(patient_cmd(), streams, FakeIdentities())

        stored = repr([(a.event.model_dump(mode="json"), a.subject_id, a.centre_id) for a in streams.appended])
        for identifier in ("MRN-0042", "Rossi", "Maria", "1980-05-17"):
            assert identifier not in stored

    async def test_the_identifiers_are_kept_by_the_identities_port(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()

        subject_id, _ = await handlers.register_patient(patient_cmd(), streams, identities)

        assert await identities.get(subject_id) == Identity(
            centre_id=CENTRE, hospital_record_number="MRN-0042", family_name="Rossi", given_name="Maria",
            date_of_birth=date(1980, 5, 17))

    async def test_the_same_record_number_at_the_same_centre_returns_the_existing_subject(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        first, _ = await handlers.register_patient(patient_cmd(), streams, identities)

        again, created = await handlers.register_patient(patient_cmd(), streams, identities)

        assert (again, created) == (first, False)
        assert len(streams.events(subject_stream(first))) == 1

    async def test_the_same_record_number_at_another_centre_is_another_patient(self):
        streams, identities = await registered_centres(CENTRE, OTHER_CENTRE), FakeIdentities()
        first, _ = await handlers.register_patient(patient_cmd(CENTRE), streams, identities)

        second, created = await handlers.register_patient(patient_cmd(OTHER_CENTRE), streams, identities)

        assert created is True and second != first

    async def test_registration_at_an_unknown_centre_is_refused(self):
        with pytest.raises(UnknownCentre) as refused:
            await handlers.register_patient(patient_cmd(), FakeStreams(), FakeIdentities())

        assert refused.value.code == "UNKNOWN_CENTRE"

    async def test_a_refused_registration_stores_no_identifiers(self):
        identities = FakeIdentities()

        with pytest.raises(UnknownCentre):
            await handlers.register_patient(patient_cmd(), FakeStreams(), identities)

        assert identities.records == {}


class TestPlausibleRegistrations:
    """Issue 12 item 5: a date of birth in the future is refused; a record number the centre
    already registered, sent with another name or date of birth, is an identity conflict,
    never matched to the subject kept. No refusal repeats an identifier."""

    NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)

    @pytest.mark.parametrize("born", [date(2025, 3, 3), date(2030, 1, 1)])
    async def test_a_date_of_birth_in_the_future_is_refused(self, born):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        cmd = patient_cmd().model_copy(update={"date_of_birth": born, "registered_on": date(2025, 3, 1)})

        with pytest.raises(DateOfBirthInFuture) as refused:
            await handlers.register_patient(cmd, streams, identities, now=self.NOW)

        assert refused.value.code == "DATE_OF_BIRTH_IN_FUTURE"
        assert "future" in refused.value.reason and born.isoformat() not in refused.value.reason
        assert identities.records == {} and not any(isinstance(e, PatientRegistered) for e in streams.all_events())

    @pytest.mark.parametrize("born", [date(2025, 3, 1), date(2025, 3, 2)])
    async def test_a_date_of_birth_today_somewhere_is_accepted(self, born):
        # at noon UTC on 1 March it is already 2 March at UTC+14
        streams = await registered_centres(CENTRE)
        cmd = patient_cmd().model_copy(update={"date_of_birth": born})

        _, created = await handlers.register_patient(cmd, streams, FakeIdentities(), now=self.NOW)

        assert created is True

    @pytest.mark.parametrize(("change", "differing"), [
        ({"family_name": "Bianchi"}, "another family name"),
        ({"given_name": "Marta"}, "another given name"),
        ({"date_of_birth": date(1980, 5, 18)}, "another date of birth"),
        ({"family_name": "Bianchi", "date_of_birth": date(1981, 5, 17)}, "another family name and date of birth"),
    ])
    async def test_a_known_record_number_with_another_identity_is_a_conflict_not_a_match(self, change, differing):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        first, _ = await handlers.register_patient(patient_cmd(), streams, identities)

        with pytest.raises(IdentityConflict) as refused:
            await handlers.register_patient(patient_cmd().model_copy(update=change), streams, identities)

        assert refused.value.code == "IDENTITY_CONFLICT"
        assert differing in refused.value.reason and first in refused.value.reason
        for identifier in ("MRN-0042", "Rossi", "Maria", "Bianchi", "Marta", "1980", "1981"):
            assert identifier not in refused.value.reason
        assert list(identities.records) == [first] and len(streams.events(subject_stream(first))) == 1

    async def test_the_same_person_is_matched_whatever_the_letter_case_and_spacing_of_the_names(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        first, _ = await handlers.register_patient(patient_cmd(), streams, identities)

        again, created = await handlers.register_patient(
            patient_cmd(record="mrn-0042").model_copy(update={"family_name": "ROSSI", "given_name": "  maria "}),
            streams, identities)

        assert (again, created) == (first, False)


class TestTheAgeAtEnrolment:
    """The age in completed years on the day of enrolment travels with it (ICANS grading reads
    it), from the date of birth enrollment keeps; 90 stands for 90 or older (HIPAA Safe
    Harbor, 45 CFR 164.514(b)(2)(i)(C))."""

    @pytest.mark.parametrize(("born", "age"), [
        (date(1980, 5, 17), 43),  # enrolled 4 March 2024, before the birthday
        (date(1980, 3, 4), 44),  # on the birthday
        (date(2014, 3, 5), 9),
        (date(1930, 1, 1), 90),  # 94: published as 90 or older
    ])
    async def test_the_age_on_the_day(self, born, age):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        subject_id, _ = await handlers.register_patient(
            patient_cmd().model_copy(update={"date_of_birth": born}), streams, identities)
        await Bus(bootstrap.spec, acting=IMPORTER, streams=streams, identities=identities).send(enrol_cmd(subject_id))
        assert streams.events(subject_stream(subject_id))[-1].age_years == age

    async def test_an_enrolment_before_the_date_of_birth_is_refused(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        subject_id, _ = await handlers.register_patient(
            patient_cmd().model_copy(update={"date_of_birth": date(2024, 3, 5)}), streams, identities)
        with pytest.raises(CommandRefused) as refused:
            await Bus(bootstrap.spec, acting=IMPORTER, streams=streams, identities=identities).send(
                enrol_cmd(subject_id))
        assert refused.value.code == "ENROLLED_BEFORE_BIRTH"


class TestEnrollSubject:
    async def test_an_accepted_enrolment_emits_subject_enrolled(self):
        streams = await registered_centres(CENTRE)
        subject_id = await registered_subject(streams)

        await wired(streams).send(enrol_cmd(subject_id))

        assert streams.events(subject_stream(subject_id))[-1] == SubjectEnrolled(
            subject_id=subject_id, programme_id=PROGRAMME, centre_id=CENTRE, enrolled_on=date(2024, 3, 4),
            programme_version=1, second_infusion=definition().second_infusion,  # the policy travels with it
            dosing=definition().dosing(),  # and the dosing sections infusion obeys
            response=definition().response)  # and how it defines response (issue 11 item 3)

    async def test_enrolment_of_an_unknown_subject_is_refused(self):
        streams = await registered_centres(CENTRE)

        with pytest.raises(UnknownSubject) as refused:
            await wired(streams).send(enrol_cmd("S-000000000000"))

        assert refused.value.code == "UNKNOWN_SUBJECT"

    async def test_enrolment_into_an_unknown_programme_is_refused(self):
        streams = await registered_centres(CENTRE)
        subject_id = await registered_subject(streams)

        with pytest.raises(UnknownProgramme) as refused:
            await wired(streams).send(enrol_cmd(subject_id, programme_id="NO-SUCH-TRIAL"))

        assert refused.value.code == "UNKNOWN_PROGRAMME"

    async def test_enrolment_at_a_centre_other_than_the_registering_one_is_refused(self):
        streams = await registered_centres(CENTRE, OTHER_CENTRE)
        subject_id = await registered_subject(streams, CENTRE)

        with pytest.raises(WrongCentre) as refused:
            await wired(streams).send(enrol_cmd(subject_id, centre_id=OTHER_CENTRE))

        assert refused.value.code == "SUBJECT_REGISTERED_AT_ANOTHER_CENTRE"

    async def test_enrolment_at_an_unregistered_centre_is_refused(self):
        streams = await registered_centres(CENTRE)
        subject_id = await registered_subject(streams, CENTRE)

        with pytest.raises(UnknownCentre):
            await wired(streams).send(enrol_cmd(subject_id, centre_id=OTHER_CENTRE))

    async def test_a_subject_cannot_be_enrolled_twice_in_one_programme(self):
        streams = await registered_centres(CENTRE)
        subject_id = await registered_subject(streams)
        await wired(streams).send(enrol_cmd(subject_id))

        with pytest.raises(AlreadyEnrolled) as refused:
            await wired(streams).send(enrol_cmd(subject_id))

        assert refused.value.code == "ALREADY_ENROLLED"

    async def test_a_refused_enrolment_appends_nothing(self):
        streams = await registered_centres(CENTRE)
        subject_id = await registered_subject(streams)

        with pytest.raises(UnknownProgramme):
            await wired(streams).send(enrol_cmd(subject_id, programme_id="NO-SUCH-TRIAL"))

        assert streams.events(subject_stream(subject_id)) == [
            PatientRegistered(subject_id=subject_id, centre_id=CENTRE)]


def erase_cmd(subject_id: str, reason: str = "the patient withdrew consent (GDPR art. 17 request)") -> EraseIdentity:
    return EraseIdentity(subject_id=subject_id, reason=reason)


class TestEraseIdentity:
    async def test_erasure_removes_the_identity_and_records_an_event_without_identifiers(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        subject_id, _ = await handlers.register_patient(patient_cmd(), streams, identities)

        erased_at = await handlers.erase_identity(erase_cmd(subject_id), streams, identities)

        assert await identities.get(subject_id) is None
        assert streams.events(subject_stream(subject_id))[-1] == IdentityErased(
            subject_id=subject_id, reason=erase_cmd(subject_id).reason, erased_at=erased_at)

    async def test_erasure_keeps_every_earlier_event_of_the_subject(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        subject_id, _ = await handlers.register_patient(patient_cmd(), streams, identities)
        await wired(streams).send(enrol_cmd(subject_id))
        before = streams.events(subject_stream(subject_id))

        await handlers.erase_identity(erase_cmd(subject_id), streams, identities)

        assert streams.events(subject_stream(subject_id))[:-1] == before

    async def test_the_same_person_registered_after_erasure_gets_a_new_subject_id(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        first, _ = await handlers.register_patient(patient_cmd(), streams, identities)
        await handlers.erase_identity(erase_cmd(first), streams, identities)

        again, created = await handlers.register_patient(patient_cmd(), streams, identities)

        assert created is True and again != first

    async def test_a_subject_erased_keeps_being_enrollable_under_its_pseudonym(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        subject_id, _ = await handlers.register_patient(patient_cmd(), streams, identities)
        await handlers.erase_identity(erase_cmd(subject_id), streams, identities)

        await wired(streams).send(enrol_cmd(subject_id))

        assert isinstance(streams.events(subject_stream(subject_id))[-1], SubjectEnrolled)

    async def test_erasure_of_an_unknown_subject_is_refused(self):
        with pytest.raises(UnknownSubject) as refused:
            await handlers.erase_identity(erase_cmd("S-000000000000"), FakeStreams(), FakeIdentities())

        assert refused.value.code == "UNKNOWN_SUBJECT"

    async def test_a_second_erasure_is_refused_and_appends_nothing(self):
        streams, identities = await registered_centres(CENTRE), FakeIdentities()
        subject_id, _ = await handlers.register_patient(patient_cmd(), streams, identities)
        await handlers.erase_identity(erase_cmd(subject_id), streams, identities)

        with pytest.raises(IdentityAlreadyErased) as refused:
            await handlers.erase_identity(erase_cmd(subject_id), streams, identities)

        assert refused.value.code == "IDENTITY_ALREADY_ERASED"
        assert len(streams.events(subject_stream(subject_id))) == 2
