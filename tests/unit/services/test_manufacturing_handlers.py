"""Manufacturing handlers: the chain of identity from apheresis collection to release
(FACT-JACIE Immune Effector Cell standards: a COI mismatch is refused, never corrected)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import RecordApheresisCollection, RecordProductRelease
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import ApheresisCollected, CoiIssued, PatientRegistered, ProductReleased, SubjectEnrolled
from services.manufacturing import bootstrap
from services.manufacturing.domain.model import (
    AlreadyReleased,
    ChainOfIdentity,
    CoiAlreadyIssued,
    CollectionBeforeEnrolment,
    ReleaseBeforeCollection,
    SubjectNotEnrolled,
    UnknownCoi,
    coi_stream,
)
from tests.unit.services.fakes import IMPORTER, Bus, FakeEnrolments, FakeOrganisations, FakePersons, FakeStreams

SUBJECT = "S-0123456789AB"
OTHER_SUBJECT = "S-BA9876543210"
CENTRE = "OSR-MILANO"
COI = "W0001250000011"
COLLECTED_AT = datetime(2024, 3, 10, 9, 0, tzinfo=timezone.utc)


def wired(streams: FakeStreams | None = None, enrolments: FakeEnrolments | None = None,
          persons: FakePersons | None = None) -> Bus:
    return Bus(bootstrap.spec, acting=IMPORTER, streams=streams or FakeStreams(), enrolments=enrolments or FakeEnrolments(),
               organisations=FakeOrganisations(), persons=persons or FakePersons())


def collection(subject_id: str = SUBJECT, centre_id: str = CENTRE, coi_id: str = COI) -> RecordApheresisCollection:
    return RecordApheresisCollection(coi_id=coi_id, subject_id=subject_id, centre_id=centre_id,
                                     collected_at=COLLECTED_AT)


def release(subject_id: str = SUBJECT, coi_id: str = COI,
            released_at: datetime = COLLECTED_AT + timedelta(days=14)) -> RecordProductRelease:
    return RecordProductRelease(coi_id=coi_id, subject_id=subject_id, lot_number="LOT-24-017",
                                released_at=released_at, released_by="QP J. Smith",
                                viable_cells_per_ml=2.5e6, volume_ml=50.0)


def collected() -> FakeStreams:
    return FakeStreams({coi_stream(COI): [ApheresisCollected(
        coi_id=COI, subject_id=SUBJECT, centre_id=CENTRE, collected_at=COLLECTED_AT)]})


def issued(subject_id: str) -> FakeStreams:
    return FakeStreams({coi_stream(COI): [CoiIssued(coi_id=COI, subject_id=subject_id, centre_id=CENTRE,
                                                    issued_at=COLLECTED_AT - timedelta(days=1))]})


class TestIssuedCois:
    """Issue 9 item 1: a COI CellTrail issued binds its subject from the start."""

    async def test_the_subject_it_was_issued_for_is_collected_under_it(self):
        streams = issued(SUBJECT)

        await wired(streams, FakeEnrolments({SUBJECT: CENTRE})).send(collection())

        assert [type(e).__name__ for e in streams.events(coi_stream(COI))] == ["CoiIssued", "ApheresisCollected"]

    async def test_another_subject_is_refused_as_a_chain_of_identity_mismatch(self):
        with pytest.raises(ChainOfIdentityMismatch, match=f"was issued for subject {SUBJECT}, not {OTHER_SUBJECT}"):
            await wired(issued(SUBJECT), FakeEnrolments({OTHER_SUBJECT: CENTRE})).send(
                collection(subject_id=OTHER_SUBJECT))

    def test_a_coi_is_issued_once(self):
        chain = ChainOfIdentity(COI)
        chain.apply(*chain.issue(SUBJECT, CENTRE, COLLECTED_AT))
        with pytest.raises(CoiAlreadyIssued):
            chain.issue(OTHER_SUBJECT, CENTRE, COLLECTED_AT)


class TestRecordCollection:
    async def test_a_collection_for_an_enrolled_subject_binds_the_coi_to_them(self):
        streams = FakeStreams()

        await wired(streams, FakeEnrolments({SUBJECT: CENTRE})).send(collection())

        assert streams.events(coi_stream(COI)) == [ApheresisCollected(
            coi_id=COI, subject_id=SUBJECT, centre_id=CENTRE, collected_at=COLLECTED_AT)]

    async def test_a_collection_for_a_subject_not_enrolled_is_refused(self):
        with pytest.raises(SubjectNotEnrolled) as refused:
            await wired(FakeStreams(), FakeEnrolments()).send(collection())

        assert refused.value.code == "SUBJECT_NOT_ENROLLED"

    async def test_a_collection_at_a_centre_other_than_the_enrolling_one_is_refused(self):
        with pytest.raises(SubjectNotEnrolled):
            await wired(FakeStreams(), FakeEnrolments({SUBJECT: "HSG-MONZA"})).send(collection())

    async def test_a_coi_cannot_be_issued_to_a_second_collection(self):
        streams = collected()
        enrolments = FakeEnrolments({SUBJECT: CENTRE, OTHER_SUBJECT: CENTRE})

        with pytest.raises(CoiAlreadyIssued) as refused:
            await wired(streams, enrolments).send(collection(OTHER_SUBJECT))

        assert refused.value.code == "COI_ALREADY_ISSUED"

    async def test_a_refused_collection_appends_nothing(self):
        streams = FakeStreams()

        with pytest.raises(SubjectNotEnrolled):
            await wired(streams, FakeEnrolments()).send(collection())

        assert streams.appended == []

    async def test_an_enrolment_learnt_from_enrollment_events_allows_collection(self):
        streams, enrolments = FakeStreams(), FakeEnrolments()
        enrolled = SubjectEnrolled(subject_id=SUBJECT, programme_id="CARCIK-CD19-P2", centre_id=CENTRE,
                                   enrolled_on=date(2024, 3, 4))

        manufacturing = wired(streams, enrolments)

        await manufacturing.send(enrolled)
        await manufacturing.send(collection())

        assert len(streams.events(coi_stream(COI))) == 1


class TestCollectionAfterEnrolment:
    """Issue 12 item 5: starting material is collected from an enrolled subject; an apheresis
    dated before the subject's first enrolment is refused, naming both dates. The collection's
    day is its clinical date, at the offset recorded with its time."""

    @staticmethod
    def enrolled_on(day: date, *more: tuple[str, date]) -> FakeEnrolments:
        enrolments = FakeEnrolments()
        enrolments.rows[(SUBJECT, "CARCIK-CD19-P2")] = (CENTRE, day)
        for programme, on in more:
            enrolments.rows[(SUBJECT, programme)] = (CENTRE, on)
        return enrolments

    async def test_an_apheresis_dated_before_the_enrolment_is_refused(self):
        streams = FakeStreams()

        with pytest.raises(CollectionBeforeEnrolment) as refused:
            await wired(streams, self.enrolled_on(date(2024, 3, 11))).send(collection())

        assert refused.value.code == "COLLECTION_BEFORE_ENROLMENT"
        assert "2024-03-10" in refused.value.reason and "2024-03-11" in refused.value.reason
        assert streams.appended == []

    async def test_an_apheresis_on_the_day_of_enrolment_is_accepted(self):
        streams = FakeStreams()

        await wired(streams, self.enrolled_on(date(2024, 3, 10))).send(collection())

        assert len(streams.events(coi_stream(COI))) == 1

    async def test_the_day_is_the_local_one_where_it_was_collected(self):
        # 00:30 on 11 March in Milan is still 10 March in UTC: collected on the day of enrolment
        at = datetime(2024, 3, 11, 0, 30, tzinfo=timezone(timedelta(hours=1)))
        streams = FakeStreams()

        await wired(streams, self.enrolled_on(date(2024, 3, 11))).send(
            collection().model_copy(update={"collected_at": at}))

        assert len(streams.events(coi_stream(COI))) == 1

    async def test_the_first_enrolment_counts(self):
        streams = FakeStreams()

        await wired(streams, self.enrolled_on(date(2024, 3, 1), ("NK-PHALL-P1", date(2024, 6, 1)))).send(
            collection())

        assert len(streams.events(coi_stream(COI))) == 1


DONOR = "S-D0D0D0D0D0D0"


class TestDonorDerivedCollection:
    """Issue 9 item 1 (seed 000, donor-derived CAR-CIK): one COI binds the donor the starting
    material was collected from and the recipient, for life."""

    async def test_the_coi_binds_the_donor_and_the_recipient(self):
        streams, persons = FakeStreams(), FakePersons()
        manufacturing = wired(streams, FakeEnrolments({SUBJECT: CENTRE}), persons)
        await manufacturing.send(PatientRegistered(subject_id=DONOR, centre_id=CENTRE))  # learnt from enrollment

        await manufacturing.send(collection().model_copy(update={"donor_id": DONOR}))

        assert streams.events(coi_stream(COI)) == [ApheresisCollected(
            coi_id=COI, subject_id=SUBJECT, centre_id=CENTRE, collected_at=COLLECTED_AT, donor_id=DONOR)]

    async def test_a_donor_not_registered_in_the_network_is_refused(self):
        streams = FakeStreams()
        with pytest.raises(CommandRefused) as refused:
            await wired(streams, FakeEnrolments({SUBJECT: CENTRE})).send(
                collection().model_copy(update={"donor_id": DONOR}))
        assert refused.value.code == "UNKNOWN_DONOR" and streams.appended == []

    async def test_the_recipient_is_not_their_own_donor(self):
        with pytest.raises(CommandRefused) as refused:
            await wired(FakeStreams(), FakeEnrolments({SUBJECT: CENTRE}), FakePersons({SUBJECT: CENTRE})).send(
                collection().model_copy(update={"donor_id": SUBJECT}))
        assert refused.value.code == "DONOR_IS_RECIPIENT"


class TestRecordRelease:
    async def test_an_accepted_release_emits_product_released_with_the_same_fields(self):
        streams, cmd = collected(), release()

        await wired(streams).send(cmd)

        event = streams.events(coi_stream(COI))[-1]
        assert isinstance(event, ProductReleased)
        # a product not labelled as units: in effect at once, nothing out of specification
        assert event.model_dump() == {**cmd.model_dump(), "awaiting_signature": False, "out_of_specification_units": []}

    async def test_a_qp_releasing_a_product_without_labelled_units_is_refused(self):
        from contracts.access import OrgKind, PrincipalKind, Role
        from infra.runtime.access.principals import Membership, Principal

        qp = Principal("qp.p", PrincipalKind.PERSON, "QP", (Membership("GMP-PAVIA", OrgKind.FACILITY,
                                                                       Role.QUALIFIED_PERSON),))
        streams = collected()
        with pytest.raises(CommandRefused) as refused:
            await wired(streams).send(release(), principal=qp)
        assert refused.value.code == "RELEASE_BEFORE_QC" and "no labelled units" in refused.value.reason

    async def test_a_release_for_an_unknown_coi_is_refused(self):
        with pytest.raises(UnknownCoi) as refused:
            await wired(FakeStreams()).send(release())

        assert refused.value.code == "UNKNOWN_COI"

    async def test_a_release_naming_another_subject_is_a_chain_of_identity_mismatch(self):
        with pytest.raises(ChainOfIdentityMismatch) as refused:
            await wired(collected()).send(release(OTHER_SUBJECT))

        assert refused.value.code == "CHAIN_OF_IDENTITY_MISMATCH"

    async def test_a_mismatched_release_appends_nothing(self):
        streams = collected()

        with pytest.raises(ChainOfIdentityMismatch):
            await wired(streams).send(release(OTHER_SUBJECT))

        assert streams.appended == []

    async def test_a_product_cannot_be_released_twice(self):
        streams = collected()
        await wired(streams).send(release())

        with pytest.raises(AlreadyReleased) as refused:
            await wired(streams).send(release())

        assert refused.value.code == "PRODUCT_ALREADY_RELEASED"

    async def test_a_release_dated_before_the_collection_is_refused(self):
        with pytest.raises(ReleaseBeforeCollection) as refused:
            await wired(collected()).send(release(released_at=COLLECTED_AT - timedelta(hours=1)))

        assert refused.value.code == "RELEASE_BEFORE_COLLECTION"

