"""The bedside gate (issue 9 item 5; services/infusion/domain/bedside.py): every reason for a
no-go, as a table; and an infusion of a labelled product only on a go for that bag and that
patient, through infusion's bootstrap with fakes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from contracts import isbt128
from contracts.commands import RecordInfusion
from contracts.custody import CustodyState as S
from contracts.custody import CustodyStep, UnitKind
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import BedsideCheckRecorded, CustodyStepRecorded, NoGoReason, ProductInfused, \
    ProductReleased, ProductUnitsRegistered
from services.infusion import bootstrap
from services.infusion.domain.bedside import UnitView, bedside_stream, judge
from services.infusion.domain.model import ReleasedProduct, infusion_stream
from tests.unit.services.fakes import Bus, FakeReleasedProducts, FakeStreams, FakeSubjectCentres, FakeUnits

SUBJECT, OTHER, CENTRE, FACILITY = "S-0123456789AB", "S-BA9876543210", "OSR-MILANO", "GMP-PAVIA"
COI = "W0001250000011"
A0, B0 = COI + "A0", COI + "B0"
T0 = datetime(2025, 4, 1, 9, tzinfo=timezone.utc)


def unit(state: S = S.PREPARED, *, subject: str = SUBJECT, holder: str = CENTRE, oos: bool = False,
         unit_id: str = A0) -> UnitView:
    return UnitView(unit_id, COI, subject, state, holder, oos)


def codes(unit_view: UnitView | None, *, subject: str = SUBJECT, infused: bool = False) -> list[str]:
    return [r.code for r in judge(unit_view, unit_id=A0, subject_id=subject, subject_centre=CENTRE, infused=infused)]


class TestJudge:
    @pytest.mark.parametrize("view, subject, infused, expected", [
        (unit(), SUBJECT, False, []),  # go
        (None, SUBJECT, False, ["UNKNOWN_UNIT"]),
        (unit(), OTHER, False, ["WRONG_PATIENT"]),
        (unit(), SUBJECT, True, ["ALREADY_INFUSED"]),
        (unit(S.AWAITING_QC, holder=FACILITY), SUBJECT, False, ["NOT_RELEASED"]),
        (unit(S.QC_COMPLETE, holder=FACILITY), SUBJECT, False, ["NOT_RELEASED"]),
        (unit(S.OUT_OF_SPECIFICATION, holder=FACILITY, oos=True), SUBJECT, False,
         ["NOT_RELEASED", "OUT_OF_SPECIFICATION"]),
        (unit(S.RELEASED, holder=FACILITY), SUBJECT, False, ["NOT_PREPARED", "NOT_AT_THE_CENTRE"]),
        (unit(S.IN_TRANSIT, holder=FACILITY), SUBJECT, False, ["NOT_PREPARED", "NOT_AT_THE_CENTRE"]),
        (unit(S.STORED), SUBJECT, False, ["NOT_PREPARED"]),
        (unit(S.DISCARDED), SUBJECT, False, ["UNIT_DISCARDED"]),
        (unit(S.RETURNED), SUBJECT, False, ["UNIT_RETURNED"]),
        # every reason at once, never only the first
        (unit(S.STORED, subject=OTHER), SUBJECT, True, ["WRONG_PATIENT", "ALREADY_INFUSED", "NOT_PREPARED"]),
    ])
    def test_every_reason_for_a_no_go(self, view, subject, infused, expected):
        assert codes(view, subject=subject, infused=infused) == expected


def check(go: bool = True, *, subject: str = SUBJECT, at: datetime = T0, unit_id: str = A0) -> BedsideCheckRecorded:
    return BedsideCheckRecorded(check_id=uuid.uuid4(), unit_id=unit_id, coi_id=COI, subject_id=subject,
                                centre_id=CENTRE, verified_by=["nurse.a", "physician.a"], go=go,
                                reasons=[] if go else [NoGoReason(code="NOT_PREPARED", reason="stored")],
                                checked_at=at)


class Ward:
    """Infusion with fakes: a released product of two bags, A0 prepared at the centre."""

    def __init__(self, *checks: BedsideCheckRecorded, a0: UnitView | None = None) -> None:
        self.streams = FakeStreams({bedside_stream(A0): list(checks)})
        self.units = FakeUnits(a0 or unit(), unit(S.RELEASED, holder=FACILITY, unit_id=B0))
        self.bus = Bus(bootstrap.spec, streams=self.streams, units=self.units,
                       products=FakeReleasedProducts(ReleasedProduct(COI, SUBJECT, T0 - timedelta(days=2))),
                       subject_centres=FakeSubjectCentres({SUBJECT: CENTRE, OTHER: CENTRE}))

    async def infuse(self, unit_id: str | None = A0, check_id: uuid.UUID | None = None, *, subject: str = SUBJECT,
                     at: datetime = T0 + timedelta(minutes=5)) -> None:
        await self.bus.send(RecordInfusion(subject_id=subject, coi_id=COI, infused_at=at, unit_id=unit_id,
                                           bedside_check_id=check_id))

    def infused(self) -> list[ProductInfused]:
        return self.streams.events(infusion_stream(SUBJECT))


async def refused(code: str, action) -> str:
    with pytest.raises(CommandRefused) as caught:
        await action
    assert caught.value.code == code, caught.value
    return caught.value.reason


class TestInfusionOfALabelledProduct:
    async def test_a_go_for_the_bag_and_the_patient_lets_the_infusion_be_recorded_naming_both(self):
        go = check()
        ward = Ward(go)
        await ward.infuse(check_id=go.check_id)
        [infused] = ward.infused()
        assert (infused.unit_id, infused.bedside_check_id, infused.infusion_number) == (A0, go.check_id, 1)

    async def test_no_unit_named_for_a_labelled_product(self):
        assert "labelled as units" in await refused("BEDSIDE_CHECK_REQUIRED", Ward(check()).infuse(None))

    async def test_no_check_named(self):
        await refused("BEDSIDE_CHECK_REQUIRED", Ward(check()).infuse())

    async def test_a_check_of_another_bag(self):
        other = check(unit_id=B0)
        await refused("BEDSIDE_CHECK_REQUIRED", Ward(check()).infuse(check_id=other.check_id))

    async def test_a_no_go(self):
        no = check(go=False)
        assert "NOT_PREPARED" in await refused("BEDSIDE_NO_GO", Ward(no).infuse(check_id=no.check_id))

    async def test_a_go_superseded_by_a_later_no_go(self):
        go = check()
        await refused("BEDSIDE_NO_GO", Ward(go, check(go=False)).infuse(check_id=go.check_id))

    async def test_a_go_for_another_patient(self):
        go = check(subject=OTHER)
        with pytest.raises(ChainOfIdentityMismatch):
            await Ward(go).infuse(check_id=go.check_id)

    async def test_an_infusion_dated_before_its_check(self):
        go = check()
        await refused("BEDSIDE_CHECK_REQUIRED", Ward(go).infuse(check_id=go.check_id, at=T0 - timedelta(minutes=1)))

    async def test_a_bag_discarded_after_its_go(self):
        go = check()
        ward = Ward(go, a0=unit(S.DISCARDED))
        assert "UNIT_DISCARDED" in await refused("BEDSIDE_NO_GO", ward.infuse(check_id=go.check_id))

    async def test_a_bag_infused_once_only(self):
        go = check()
        ward = Ward(go)
        await ward.infuse(check_id=go.check_id)
        assert "ALREADY_INFUSED" in await refused("BEDSIDE_NO_GO", ward.infuse(check_id=go.check_id))

    async def test_a_unit_of_another_coi(self):
        go = check()
        with pytest.raises(ChainOfIdentityMismatch):
            await Ward(go).bus.send(RecordInfusion(subject_id=SUBJECT, coi_id=str(isbt128.issue("W0001", 2025, 2)),
                                                   infused_at=T0, unit_id=A0, bedside_check_id=go.check_id))

    async def test_two_bags_of_one_coi_are_two_infusions(self):  # a split dose, or seed 000's second infusion
        first, second = check(), check(unit_id=B0, at=T0 + timedelta(days=1))
        ward = Ward(first)
        ward.streams.streams[bedside_stream(B0)] = [second]
        ward.units.units[B0] = unit(unit_id=B0)
        await ward.infuse(check_id=first.check_id)
        await ward.infuse(B0, second.check_id, at=T0 + timedelta(days=1, minutes=5))
        assert [(e.unit_id, e.infusion_number) for e in ward.infused()] == [(A0, 1), (B0, 2)]


class TestTheUnitsView:
    async def test_infusion_learns_units_their_steps_and_their_release_from_manufacturing(self):
        units = FakeUnits()
        bus = Bus(bootstrap.spec, streams=FakeStreams(), units=units, products=FakeReleasedProducts(),
                  subject_centres=FakeSubjectCentres())
        await bus.send(ProductUnitsRegistered(coi_id=COI, subject_id=SUBJECT, facility_id=FACILITY, lot_number="L",
                                              unit_ids=[A0, B0], location="suite", registered_at=T0, role="operator",
                                              storage="cryopreserved"))
        for u in (A0, B0):
            await bus.send(CustodyStepRecorded(unit_id=u, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                               step=CustodyStep.QC_RESULTS_RECORDED, from_state=S.AWAITING_QC,
                                               to_state=S.QC_COMPLETE, org_id=FACILITY, role="qc_analyst",
                                               location="lab", at=T0, scanned_id=u))
        await bus.send(ProductReleased(coi_id=COI, subject_id=SUBJECT, lot_number="L", released_at=T0,
                                       released_by="QP", viable_cells_per_ml=1e6, volume_ml=50))
        await bus.send(CustodyStepRecorded(unit_id=A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                           step=CustodyStep.SHIPPED, from_state=S.RELEASED, to_state=S.IN_TRANSIT,
                                           org_id=FACILITY, role="operator", location="dock", at=T0,
                                           scanned_id=A0, destination_org_id=CENTRE))
        await bus.send(CustodyStepRecorded(unit_id=A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                           step=CustodyStep.RECEIVED, from_state=S.IN_TRANSIT, to_state=S.RECEIVED,
                                           org_id=CENTRE, role="nurse", location="ward", at=T0, scanned_id=A0))
        assert [(u.unit_id, u.state, u.holder) for u in await units.of_coi(COI)] == [
            (A0, S.RECEIVED, CENTRE), (B0, S.RELEASED, FACILITY)]

    async def test_an_excursion_quarantines_the_bag_until_quality_assurance_decides(self):
        from contracts.custody import Disposition, StorageCondition
        from contracts.events import ExcursionDetected, QaDispositionRecorded

        units = FakeUnits(unit(S.IN_TRANSIT), unit(S.IN_TRANSIT, unit_id=B0))
        bus = Bus(bootstrap.spec, streams=FakeStreams(), units=units, products=FakeReleasedProducts(),
                  subject_centres=FakeSubjectCentres())
        for u in (A0, B0):
            await bus.send(ExcursionDetected(unit_id=u, coi_id=COI, subject_id=SUBJECT,
                                             storage=StorageCondition.CRYOPRESERVED, low_celsius=None,
                                             high_celsius=-150, started_at=T0, ended_at=T0, ongoing=True, minutes=0,
                                             peak_celsius=-100, deviation=50, logger_id="L"))
        for u, decision in ((A0, Disposition.ACCEPT), (B0, Disposition.DISCARD)):
            await bus.send(QaDispositionRecorded(unit_id=u, coi_id=COI, subject_id=SUBJECT, decision=decision,
                                                 justification="assessed", org_id=FACILITY, role="qualified_person",
                                                 decided_at=T0))
        assert [(u.state, u.quarantined) for u in await units.of_coi(COI)] == [
            (S.IN_TRANSIT, False), (S.DISCARDED, False)]
