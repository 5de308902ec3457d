"""Infusion handlers: only the subject's own released product may be infused (chain of
identity, FACT-JACIE Immune Effector Cell standards)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.commands import RecordInfusion
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import ProductInfused, ProductReleased
from services.infusion import bootstrap
from services.infusion.domain.model import (
    InfusionBeforeRelease,
    ProductAlreadyInfused,
    ProductNotReleased,
    ReleasedProduct,
    infusion_stream,
)
from tests.unit.services.fakes import (
    IMPORTER,
    Bus,
    FakePolicies,
    FakeTreatments,
    FakeReleasedProducts,
    FakeStreams,
    FakeSubjectCentres,
    FakeUnits,
)

SUBJECT = "S-0123456789AB"
OTHER_SUBJECT = "S-BA9876543210"
COI, SECOND_COI = "W0001250000011", "W000125000002*"
RELEASED_AT = datetime(2024, 3, 24, 12, 0, tzinfo=timezone.utc)
INFUSED_AT = datetime(2024, 3, 27, 10, 30, tzinfo=timezone.utc)



def wired(streams: FakeStreams, products: FakeReleasedProducts) -> Bus:
    return Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), acting=IMPORTER, streams=streams, products=products,
               subject_centres=FakeSubjectCentres(), units=FakeUnits())


subject_ids = st.from_regex(r"S-[0-9A-F]{12}", fullmatch=True)


def infusion(subject_id: str = SUBJECT, coi_id: str = COI, infused_at: datetime = INFUSED_AT) -> RecordInfusion:
    return RecordInfusion(subject_id=subject_id, coi_id=coi_id, infused_at=infused_at)


def released(subject_id: str = SUBJECT, coi_id: str = COI) -> ReleasedProduct:
    return ReleasedProduct(coi_id=coi_id, subject_id=subject_id, released_at=RELEASED_AT)


class TestRecordInfusion:
    async def test_an_infusion_of_the_subjects_own_released_product_is_recorded(self):
        streams = FakeStreams()

        await wired(streams, FakeReleasedProducts(released())).send(infusion())

        assert streams.events(infusion_stream(SUBJECT)) == [
            ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=INFUSED_AT, infusion_number=1)]

    async def test_an_infusion_is_refused_when_no_released_product_is_known(self):
        with pytest.raises(ProductNotReleased) as refused:
            await wired(FakeStreams(), FakeReleasedProducts()).send(infusion())

        assert refused.value.code == "PRODUCT_NOT_RELEASED"

    async def test_an_infusion_is_refused_when_the_coi_belongs_to_another_subject(self):
        with pytest.raises(ChainOfIdentityMismatch) as refused:
            await wired(FakeStreams(), FakeReleasedProducts(released(OTHER_SUBJECT))).send(infusion())

        assert refused.value.code == "CHAIN_OF_IDENTITY_MISMATCH"

    @given(st.lists(subject_ids, min_size=2, max_size=2, unique=True))
    async def test_a_product_is_never_infused_into_a_subject_it_was_not_made_for(self, two_subjects):
        owner, recipient = two_subjects
        streams = FakeStreams()

        with pytest.raises(ChainOfIdentityMismatch):
            await wired(streams, FakeReleasedProducts(released(owner))).send(infusion(recipient))

        assert streams.appended == []

    async def test_an_infusion_dated_before_the_release_is_refused(self):
        with pytest.raises(InfusionBeforeRelease) as refused:
            await wired(FakeStreams(), FakeReleasedProducts(released())).send(
                infusion(infused_at=RELEASED_AT - timedelta(minutes=1)))

        assert refused.value.code == "INFUSION_BEFORE_RELEASE"

    async def test_the_same_product_cannot_be_infused_twice(self):
        streams, products = FakeStreams(), FakeReleasedProducts(released())
        await wired(streams, products).send(infusion())

        with pytest.raises(ProductAlreadyInfused) as refused:
            await wired(streams, products).send(infusion(infused_at=INFUSED_AT + timedelta(days=1)))

        assert refused.value.code == "PRODUCT_ALREADY_INFUSED"

    async def test_a_second_product_is_numbered_as_the_second_infusion(self):
        streams = FakeStreams()
        products = FakeReleasedProducts(released(), released(coi_id=SECOND_COI))
        infusion_service = wired(streams, products)
        await infusion_service.send(infusion())

        await infusion_service.send(infusion(coi_id=SECOND_COI, infused_at=INFUSED_AT + timedelta(days=60)))

        assert [e.infusion_number for e in streams.events(infusion_stream(SUBJECT))] == [1, 2]


class TestOnlyAnImportNamesACoiAlone:
    """FACT-JACIE D7/D8: no infusion without a two-person check of the bag. A product without
    labelled units is infused by its COI only in an import of records made elsewhere."""

    async def test_a_nurse_infusing_a_product_by_its_coi_alone_is_refused(self):
        from infra.runtime.access.principals import Membership, Principal
        from contracts.access import OrgKind, PrincipalKind, Role

        nurse = Principal("nurse.a", PrincipalKind.PERSON, "Nurse A", (Membership("OSR-MILANO", OrgKind.CENTRE, Role.NURSE),))
        streams = FakeStreams()
        with pytest.raises(CommandRefused) as refused:
            await wired(streams, FakeReleasedProducts(released())).send(infusion(), principal=nurse)
        assert refused.value.code == "BEDSIDE_CHECK_REQUIRED" and "no labelled units" in refused.value.reason
        assert streams.appended == []

    async def test_a_command_admitted_for_no_one_is_no_import(self):
        bus = Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=FakeStreams(), products=FakeReleasedProducts(released()),
                  subject_centres=FakeSubjectCentres(), units=FakeUnits())
        with pytest.raises(CommandRefused, match="no labelled units"):
            await bus.send(infusion())


class TestOnProductReleased:
    async def test_a_release_learnt_from_manufacturing_makes_the_product_infusable(self):
        streams, products = FakeStreams(), FakeReleasedProducts()
        event = ProductReleased(coi_id=COI, subject_id=SUBJECT, lot_number="LOT-24-017", released_at=RELEASED_AT,
                                released_by="QP J. Smith", viable_cells_per_ml=2.5e6, volume_ml=50.0)

        infusion_service = wired(streams, products)

        await infusion_service.send(event)
        await infusion_service.send(infusion())

        assert len(streams.events(infusion_stream(SUBJECT))) == 1
