"""The bedside gate (issue 9 items 4 and 5; services/infusion/domain/bedside.py): every reason
for a no-go, as a table, expiry and the exceptional release of a unit out of specification
among them; and an infusion of a labelled product only on a go for that bag and that patient,
through infusion's bootstrap with fakes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from contracts import isbt128
from contracts.commands import RecordInfusion
from contracts.custody import CustodyState as S
from contracts.custody import CustodyStep, UnitKind
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import BedsideCheckRecorded, CertifiedUnit, CustodyStepRecorded, JudgedResult, NoGoReason, \
    ProductInfused, ProductReleased, ProductUnitsRegistered, QcResultsRecorded, ReleaseCertified
from services.infusion import bootstrap
from services.infusion.adapters.fhir import dispense
from services.infusion.domain.bedside import UnitView, bedside_stream, flagged, judge
from services.infusion.domain.model import ReleasedProduct, infusion_stream
from tests.unit.services.fakes import Bus, FakePolicies, FakeReleasedProducts, FakeStreams, FakeSubjectCentres, FakeTreatments, FakeUnits

SUBJECT, OTHER, CENTRE, FACILITY = "S-0123456789AB", "S-BA9876543210", "OSR-MILANO", "GMP-PAVIA"
COI = "W0001250000011"
A0, B0 = COI + "A0", COI + "B0"
T0 = datetime(2025, 4, 1, 9, tzinfo=timezone.utc)


def unit(state: S = S.PREPARED, *, subject: str = SUBJECT, holder: str = CENTRE, oos: bool = False,
         unit_id: str = A0, expires_at: datetime | None = None, use_within: int | None = None,
         prepared_at: datetime | None = None, released_oos: bool = False) -> UnitView:
    return UnitView(unit_id, COI, subject, state, holder, oos, expires_at=expires_at, use_within_minutes=use_within,
                    prepared_at=prepared_at, released_out_of_specification=released_oos)


def codes(unit_view: UnitView | None, *, subject: str = SUBJECT, infused: bool = False,
          at: datetime = T0) -> list[str]:
    return [r.code for r in judge(unit_view, unit_id=A0, subject_id=subject, subject_centre=CENTRE, infused=infused,
                                  at=at)]


MINUTE = timedelta(minutes=1)


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

    # Limits of use, judged at the check's time T0 (FACT-JACIE 8th ed. D7, D8: expiry verified
    # before administration; the limits are the specification's shelf life and thaw-to-infusion
    # time, on the label: EU GMP Part IV 11.5, the product labelling).
    @pytest.mark.parametrize("view, expected", [
        (unit(expires_at=T0 - MINUTE), ["EXPIRED"]),  # its shelf life has ended
        (unit(expires_at=T0), []),  # exactly at the end of its shelf life: still within it
        (unit(expires_at=T0 + MINUTE), []),
        (unit(prepared_at=T0 - 61 * MINUTE, use_within=60), ["EXPIRED"]),  # thawed too long ago
        (unit(prepared_at=T0 - 60 * MINUTE, use_within=60), []),  # exactly at the thaw limit: still a go
        (unit(prepared_at=T0 - 600 * MINUTE), []),  # no thaw-to-infusion limit given
        (unit(S.STORED, use_within=60), ["NOT_PREPARED"]),  # not thawed yet: its clock has not started
        (unit(expires_at=T0 - MINUTE, prepared_at=T0 - 61 * MINUTE, use_within=60), ["EXPIRED", "EXPIRED"]),
        (unit(S.RELEASED, holder=FACILITY, expires_at=T0 - MINUTE), ["NOT_PREPARED", "EXPIRED", "NOT_AT_THE_CENTRE"]),
    ])
    def test_a_unit_past_its_shelf_life_or_its_thaw_to_infusion_limit_is_expired(self, view, expected):
        assert codes(view) == expected

    def test_each_limit_passed_says_which_in_its_own_words(self):
        view = unit(expires_at=T0 - MINUTE, prepared_at=T0 - 61 * MINUTE, use_within=60)
        shelf, thaw = judge(view, unit_id=A0, subject_id=SUBJECT, subject_centre=CENTRE, infused=False, at=T0)
        assert "shelf life ended" in shelf.reason and "within 60 minutes" in thaw.reason

    # Out of specification (EU GMP Part IV 11.5): infused only when released on the
    # exceptional-release path, and then flagged.
    @pytest.mark.parametrize("view, expected, flag", [
        (unit(oos=True, released_oos=True), [], True),  # released out of specification: a go, flagged
        (unit(S.STORED, oos=True, released_oos=True), ["NOT_PREPARED"], True),
        (unit(S.OUT_OF_SPECIFICATION, holder=FACILITY, oos=True), ["NOT_RELEASED", "OUT_OF_SPECIFICATION"], False),
        (unit(oos=True), ["OUT_OF_SPECIFICATION"], False),  # out of specification, never so released
        (unit(), [], False),
    ])
    def test_a_unit_out_of_specification_is_a_go_only_when_released_so_and_then_flagged(self, view, expected, flag):
        assert (codes(view), flagged(view)) == (expected, flag)


def check(go: bool = True, *, subject: str = SUBJECT, at: datetime = T0, unit_id: str = A0,
          oos: bool = False) -> BedsideCheckRecorded:
    return BedsideCheckRecorded(check_id=uuid.uuid4(), unit_id=unit_id, coi_id=COI, subject_id=subject,
                                centre_id=CENTRE, verified_by=["nurse.a", "physician.a"], go=go,
                                reasons=[] if go else [NoGoReason(code="NOT_PREPARED", reason="stored")],
                                checked_at=at, out_of_specification=oos)


class Ward:
    """Infusion with fakes: a released product of two bags, A0 prepared at the centre."""

    def __init__(self, *checks: BedsideCheckRecorded, a0: UnitView | None = None) -> None:
        self.streams = FakeStreams({bedside_stream(A0): list(checks)})
        self.units = FakeUnits(a0 or unit(), unit(S.RELEASED, holder=FACILITY, unit_id=B0))
        self.bus = Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=self.streams, units=self.units,
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

    async def test_a_bag_past_its_thaw_to_infusion_limit_at_its_infusion_though_within_it_at_its_go(self):
        go = check()
        ward = Ward(go, a0=unit(prepared_at=T0 - 55 * MINUTE, use_within=60))
        assert "EXPIRED" in await refused("BEDSIDE_NO_GO", ward.infuse(check_id=go.check_id, at=T0 + 6 * MINUTE))

    async def test_a_bag_infused_exactly_at_its_thaw_to_infusion_limit_is_infused(self):
        go = check()
        ward = Ward(go, a0=unit(prepared_at=T0 - 55 * MINUTE, use_within=60))
        await ward.infuse(check_id=go.check_id, at=T0 + 5 * MINUTE)
        assert [e.unit_id for e in ward.infused()] == [A0]

    async def test_a_bag_past_its_shelf_life_at_its_infusion(self):
        go = check()
        ward = Ward(go, a0=unit(expires_at=T0 + MINUTE))
        assert "EXPIRED" in await refused("BEDSIDE_NO_GO", ward.infuse(check_id=go.check_id, at=T0 + 2 * MINUTE))

    async def test_a_bag_released_out_of_specification_is_infused_flagged_as_its_go_was(self):
        go = check(oos=True)
        ward = Ward(go, a0=unit(oos=True, released_oos=True))
        await ward.infuse(check_id=go.check_id)
        [infused] = ward.infused()
        assert (infused.unit_id, infused.out_of_specification) == (A0, True)

    async def test_a_bag_within_specification_is_infused_unflagged(self):
        go = check()
        ward = Ward(go)
        await ward.infuse(check_id=go.check_id)
        assert not ward.infused()[0].out_of_specification

    async def test_a_bag_out_of_specification_never_released_so(self):
        go = check()
        ward = Ward(go, a0=unit(oos=True))
        assert "OUT_OF_SPECIFICATION" in await refused("BEDSIDE_NO_GO", ward.infuse(check_id=go.check_id))

    async def test_the_fhir_dispense_of_a_bag_released_out_of_specification_says_so(self):
        go = check(oos=True)
        infused = ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=T0 + 5 * MINUTE, infusion_number=1,
                                 unit_id=A0, bedside_check_id=go.check_id, out_of_specification=True)
        notes = [n["text"] for n in dispense(infused, event_id=str(uuid.uuid4()), actor="nurse.a", centre_id=CENTRE,
                                             check=go)["note"]]
        assert any("released out of specification" in n and "11.5" in n for n in notes)

    async def test_the_fhir_dispense_of_a_bag_within_specification_says_nothing_of_it(self):
        infused = ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=T0, infusion_number=1, unit_id=A0)
        notes = [n["text"] for n in dispense(infused, event_id=str(uuid.uuid4()), actor="nurse.a", centre_id=CENTRE,
                                             check=None)["note"]]
        assert not any("specification" in n for n in notes)

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
        bus = Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=FakeStreams(), units=units, products=FakeReleasedProducts(),
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
        bus = Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=FakeStreams(), units=units, products=FakeReleasedProducts(),
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

    async def test_a_bag_received_back_after_its_return_is_quarantined(self):
        units = FakeUnits(unit(S.RETURNED))
        bus = Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=FakeStreams(), units=units, products=FakeReleasedProducts(),
                  subject_centres=FakeSubjectCentres())
        await bus.send(CustodyStepRecorded(unit_id=A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                           step=CustodyStep.RECEIVED, from_state=S.RETURNED, to_state=S.RECEIVED,
                                           org_id=FACILITY, role="operator", location="goods-in", at=T0,
                                           scanned_id=A0))
        [back] = await units.of_coi(COI)
        assert (back.state, back.holder, back.quarantined) == (S.RECEIVED, FACILITY, True)


def qc(unit_id: str, within: bool, *, expires_at: datetime | None = None,
       use_within: int | None = None) -> QcResultsRecorded:
    return QcResultsRecorded(unit_id=unit_id, coi_id=COI, subject_id=SUBJECT, programme_id="CARCIK-01",
                             specification_version=1,
                             results=[JudgedResult(attribute="viability", value=82 if within else 61,
                                                   criterion=">= 70 %", passed=within)],
                             within_specification=within, failed=[] if within else ["viability"], org_id=FACILITY,
                             role="qc_analyst", location="lab", scanned_id=unit_id, tested_at=T0,
                             expires_at=expires_at, use_within_minutes=use_within)


def released(*, awaiting_signature: bool, oos_units: list[str] | None = None) -> ProductReleased:
    return ProductReleased(coi_id=COI, subject_id=SUBJECT, lot_number="L", released_at=T0, released_by="QP",
                           viable_cells_per_ml=1e6, volume_ml=50, facility_id=FACILITY,
                           awaiting_signature=awaiting_signature, out_of_specification_units=oos_units or [])


def certified(*units: CertifiedUnit) -> ReleaseCertified:
    return ReleaseCertified(coi_id=COI, subject_id=SUBJECT, facility_id=FACILITY, release_event_id=uuid.uuid4(),
                            units=list(units), signer="qp.a", printed_name="Anna Qp", signed_at=T0 + MINUTE,
                            record_hash="0" * 64)


class TestTheUnitsViewOfSignedReleases:
    """Manufacturing's QC results, release records and the qualified person's certification
    (issue 9 item 4), as infusion folds them into its view of the units."""

    EXPIRES = T0 + timedelta(days=180)

    def setup_method(self) -> None:
        self.units = FakeUnits()
        self.products = FakeReleasedProducts()
        self.bus = Bus(bootstrap.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=FakeStreams(), units=self.units, products=self.products,
                       subject_centres=FakeSubjectCentres())

    async def labelled_and_tested(self) -> None:
        await self.bus.send(ProductUnitsRegistered(coi_id=COI, subject_id=SUBJECT, facility_id=FACILITY,
                                                   lot_number="L", unit_ids=[A0, B0], location="suite",
                                                   registered_at=T0, role="operator", storage="cryopreserved"))
        await self.bus.send(qc(A0, True, expires_at=self.EXPIRES, use_within=60))
        await self.bus.send(qc(B0, False, expires_at=self.EXPIRES, use_within=60))

    async def states(self) -> list[tuple]:
        return [(u.state, u.out_of_specification, u.released_out_of_specification)
                for u in await self.units.of_coi(COI)]

    async def test_qc_results_complete_a_units_qc_or_flag_it_out_of_specification_with_its_limits(self):
        await self.labelled_and_tested()
        assert [(u.state, u.out_of_specification, u.expires_at, u.use_within_minutes)
                for u in await self.units.of_coi(COI)] == [(S.QC_COMPLETE, False, self.EXPIRES, 60),
                                                           (S.OUT_OF_SPECIFICATION, True, self.EXPIRES, 60)]

    async def test_a_release_record_awaiting_the_qps_signature_releases_no_unit_but_makes_the_product_known(self):
        await self.labelled_and_tested()
        await self.bus.send(released(awaiting_signature=True))
        assert await self.states() == [(S.QC_COMPLETE, False, False), (S.OUT_OF_SPECIFICATION, True, False)]
        assert (await self.products.get(COI)).released_at == T0

    async def test_the_qps_signature_releases_the_units_it_certifies(self):
        await self.labelled_and_tested()
        await self.bus.send(released(awaiting_signature=True))
        await self.bus.send(certified(CertifiedUnit(unit_id=A0, expires_at=self.EXPIRES, use_within_minutes=60)))
        assert await self.states() == [(S.RELEASED, False, False), (S.OUT_OF_SPECIFICATION, True, False)]

    async def test_a_unit_certified_out_of_specification_is_released_flagged(self):
        await self.labelled_and_tested()
        await self.bus.send(released(awaiting_signature=True, oos_units=[B0]))
        await self.bus.send(certified(CertifiedUnit(unit_id=A0), CertifiedUnit(unit_id=B0, out_of_specification=True,
                                                                                 expires_at=self.EXPIRES)))
        assert await self.states() == [(S.RELEASED, False, False), (S.RELEASED, True, True)]
        assert (await self.units.get(B0)).expires_at == self.EXPIRES

    async def test_a_release_recorded_before_signatures_releases_the_units_that_passed_qc_at_once(self):
        await self.labelled_and_tested()
        await self.bus.send(released(awaiting_signature=False))
        assert await self.states() == [(S.RELEASED, False, False), (S.OUT_OF_SPECIFICATION, True, False)]

    async def test_qc_recorded_as_a_custody_step_in_an_older_log_still_moves_and_flags_the_unit(self):
        await self.bus.send(ProductUnitsRegistered(coi_id=COI, subject_id=SUBJECT, facility_id=FACILITY,
                                                   lot_number="L", unit_ids=[A0], location="suite",
                                                   registered_at=T0, role="operator", storage="cryopreserved"))
        await self.bus.send(CustodyStepRecorded(unit_id=A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                                step=CustodyStep.OUT_OF_SPECIFICATION, from_state=S.AWAITING_QC,
                                                to_state=S.OUT_OF_SPECIFICATION, org_id=FACILITY, role="qc_analyst",
                                                location="lab", at=T0, scanned_id=A0))
        assert await self.states() == [(S.OUT_OF_SPECIFICATION, True, False)]

    async def test_the_preparation_step_starts_the_thaw_to_infusion_clock(self):
        self.units.units[A0] = unit(S.STORED, use_within=60)
        prepared_at = T0 + timedelta(days=3)
        await self.bus.send(CustodyStepRecorded(unit_id=A0, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.PRODUCT,
                                                step=CustodyStep.PREPARED, from_state=S.STORED, to_state=S.PREPARED,
                                                org_id=CENTRE, role="nurse", location="ward", at=prepared_at,
                                                scanned_id=A0))
        view = await self.units.get(A0)
        assert (view.state, view.prepared_at) == (S.PREPARED, prepared_at)
        assert (codes(view, at=prepared_at + 60 * MINUTE), codes(view, at=prepared_at + 61 * MINUTE)) == (
            [], ["EXPIRED"])
