"""Custody as a state machine per unit (issue 9, item 2; services/manufacturing/domain/custody.py),
driven through manufacturing's bootstrap with fakes and real principals: the whole vein-to-vein
path of an autologous cryopreserved product split into two bags (seed 002, and the second
infusion of seed 000), and every refusal with its reason code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from contracts import isbt128
from contracts.access import OrgKind, PrincipalKind, Role
import uuid

from contracts.commands import (
    RecordApheresisCollection,
    RecordCustodyStep,
    RecordProductRelease,
    RecordQcResults,
    RegisterProductUnits,
    SetProductSpecification,
)
from contracts.custody import CustodyState, CustodyStep, UnitKind
from contracts.errors import ChainOfIdentityMismatch, CommandRefused, Unauthenticated
from contracts.events import (
    CustodyStepRecorded,
    ProductReleased,
    ProductUnitsRegistered,
    QcResult,
    RecordSigned,
    SignatureMeaning,
)
from infra.runtime.access.principals import Membership, Principal
from services.kernel.aggregate import rebuild
from services.manufacturing import bootstrap
from services.manufacturing.application.signatures import on_record_signed
from services.manufacturing.domain import custody
from services.manufacturing.domain.model import ChainOfIdentity, coi_stream
from tests.release import CRITERIA, FAILING, PASSING
from tests.unit.services.fakes import Bus, FakeEnrolments, FakeOrganisations, FakePersons, FakeStreams

__all__ = ["CRITERIA", "FAILING", "PASSING"]  # the specification the tests release against, re-exported

SUBJECT, CENTRE, OTHER_CENTRE = "S-0123456789AB", "OSR-MILANO", "HSG-MONZA"
FACILITY, OTHER_FACILITY = "GMP-PAVIA", "GMP-ROMA"
COI = "W0001250000011"
OTHER_COI = str(isbt128.issue("W0001", 2025, 2))
MATERIAL, A0, B0 = COI + "00", COI + "A0", COI + "B0"
T0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
KINDS = {CENTRE: OrgKind.CENTRE, OTHER_CENTRE: OrgKind.CENTRE, FACILITY: OrgKind.FACILITY,
         OTHER_FACILITY: OrgKind.FACILITY, "NETWORK": OrgKind.NETWORK}


def person(principal_id: str, org_id: str, *roles: Role) -> Principal:
    return Principal(principal_id, PrincipalKind.PERSON, principal_id,
                     tuple(Membership(org_id, KINDS[org_id], r) for r in roles))


NURSE = person("nurse.a", CENTRE, Role.NURSE)
COURIER = person("courier.a", CENTRE, Role.COURIER)
OPERATOR = person("operator.p", FACILITY, Role.OPERATOR)
ANALYST = person("analyst.p", FACILITY, Role.QC_ANALYST)
QP = person("qp.p", FACILITY, Role.QUALIFIED_PERSON)
PHYSICIAN = person("physician.a", CENTRE, Role.PHYSICIAN)
ROME = person("operator.r", OTHER_FACILITY, Role.OPERATOR)
MONZA = person("nurse.m", OTHER_CENTRE, Role.NURSE)
LOADER = Principal("cli", PrincipalKind.SYSTEM, "CLI", (Membership("NETWORK", OrgKind.NETWORK, Role.DATA_LOADER),))


PROGRAMME = "CARCIK-CD19-P2"  # FakeEnrolments enrols its subjects here
def signature(who: Principal, record: object, meaning: SignatureMeaning = SignatureMeaning.APPROVAL,
              at: datetime | None = None) -> RecordSigned:
    """A signature as infra/runtime/signing.py makes it (the signing table allowed it)."""
    m = who.memberships[0]
    return RecordSigned(signer=who.principal_id, printed_name=who.printed_name, signed_at=at or T0,
                        meaning=meaning, role=m.role.value, org_id=m.org_id, record_event_id=uuid.uuid4(),
                        record_event_type=record.event_type, record_hash="ab" * 32)


class Chain:
    """Manufacturing with fakes, one COI, and a clock that moves an hour per step."""

    def __init__(self) -> None:
        self.streams = FakeStreams()
        self.bus = Bus(bootstrap.spec, streams=self.streams, enrolments=FakeEnrolments({SUBJECT: CENTRE}), persons=FakePersons(),
                       organisations=FakeOrganisations(KINDS))
        self.now = T0

    def tick(self) -> datetime:
        self.now += timedelta(hours=1)
        return self.now

    async def collect(self) -> None:
        await self.bus.send(RecordApheresisCollection(coi_id=COI, subject_id=SUBJECT, centre_id=CENTRE,
                                                      collected_at=self.now))

    async def step(self, who: Principal, unit: str, step: CustodyStep, org: str | None = None, *,
                   scanned: str | None = None, to: str | None = None, reason: str | None = None,
                   at: datetime | None = None) -> None:
        org = org or who.memberships[0].org_id
        await self.bus.send(RecordCustodyStep(unit_id=unit, scanned_id=scanned or unit, step=step, org_id=org,
                                              location=f"{org} store 1", at=at or self.tick(),
                                              destination_org_id=to, reason=reason), principal=who)

    async def label(self, who: Principal = OPERATOR, divisions: tuple[str, ...] = ("A0", "B0"),
                    org: str = FACILITY) -> None:
        await self.bus.send(RegisterProductUnits(coi_id=COI, org_id=org, lot_number="LOT-25-001",
                                                 divisions=list(divisions), location="GMP-PAVIA clean room B", storage="cryopreserved",
                                                 registered_at=self.tick()), principal=who)

    async def specify(self, who: Principal = QP, org: str = FACILITY, **limits: object) -> None:
        await self.bus.send(SetProductSpecification(programme_id=PROGRAMME, org_id=org, criteria=CRITERIA,
                                                    set_at=T0 - timedelta(days=30), **limits), principal=who)

    async def qc(self, unit: str, results: list[QcResult] = PASSING, who: Principal | None = None, *,
                 scanned: str | None = None, org: str | None = None) -> None:
        who = who or ANALYST
        await self.bus.send(RecordQcResults(unit_id=unit, scanned_id=scanned or unit,
                                            org_id=org or who.memberships[0].org_id, location="GMP-PAVIA QC lab",
                                            tested_at=self.tick(), results=results), principal=who)

    async def release(self, facility: str | None = FACILITY, *, sign: Principal | None = QP) -> None:
        """The release record, and (if `sign`) its signature by that person, as the signing
        route applies it (entrypoints/http.py)."""
        await self.bus.send(RecordProductRelease(coi_id=COI, subject_id=SUBJECT, lot_number="LOT-25-001",
                                                 released_at=self.tick(), released_by="QP J. Smith",
                                                 viable_cells_per_ml=2.5e6, volume_ml=50.0, facility_id=facility))
        if sign is not None:
            await self.sign(sign, self.release_record())

    def release_record(self) -> ProductReleased:
        return next(e for e in self.streams.events(coi_stream(COI)) if isinstance(e, ProductReleased))

    async def sign(self, who: Principal, record: object, meaning: SignatureMeaning = SignatureMeaning.APPROVAL,
                   record_event_id: uuid.UUID | None = None) -> list:
        return await on_record_signed(record.event_type, record.model_dump(mode="json"),
                                      record_event_id or uuid.uuid4(), signature(who, record, meaning, self.tick()),
                                      self.streams)

    async def to_manufacturing(self) -> None:
        await self.collect()
        await self.step(COURIER, MATERIAL, CustodyStep.SHIPPED, to=FACILITY)
        await self.step(OPERATOR, MATERIAL, CustodyStep.RECEIVED)
        await self.step(OPERATOR, MATERIAL, CustodyStep.MANUFACTURING_STARTED)

    async def released(self) -> None:
        await self.to_manufacturing()
        await self.label()
        await self.specify()
        for unit in (A0, B0):
            await self.qc(unit)
        await self.release()

    def chain(self) -> ChainOfIdentity:
        return rebuild(ChainOfIdentity(COI), self.streams.events(coi_stream(COI)))

    def state(self, unit: str) -> CustodyState:
        return self.chain().units[unit].state

    def steps(self) -> list[CustodyStepRecorded]:
        return [e for e in self.streams.events(coi_stream(COI)) if isinstance(e, CustodyStepRecorded)]


async def refused(code: str, action) -> CommandRefused:
    with pytest.raises(CommandRefused) as caught:
        await action
    assert caught.value.code == code, caught.value
    return caught.value


class TestTheWholePath:
    async def test_two_bags_go_vein_to_vein_apart(self):
        chain = Chain()
        await chain.released()
        assert (chain.state(A0), chain.state(B0)) == (CustodyState.RELEASED, CustodyState.RELEASED)

        await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)
        await chain.step(NURSE, A0, CustodyStep.STORED)
        await chain.step(NURSE, A0, CustodyStep.PREPARED)

        assert chain.state(MATERIAL) is CustodyState.IN_MANUFACTURING
        assert chain.state(A0) is CustodyState.PREPARED and chain.chain().units[A0].holder == CENTRE
        assert chain.state(B0) is CustodyState.RELEASED and chain.chain().units[B0].holder == FACILITY  # kept apart
        assert [(s.unit_id, s.step, s.from_state, s.to_state) for s in chain.steps()] == [
            (MATERIAL, "shipped", "collected", "in_transit"),
            (MATERIAL, "received", "in_transit", "received"),
            (MATERIAL, "manufacturing_started", "received", "in_manufacturing"),
            (A0, "shipped", "released", "in_transit"),
            (A0, "received", "in_transit", "received"),
            (A0, "stored", "received", "stored"),
            (A0, "prepared", "stored", "prepared"),
        ]

    async def test_a_step_names_who_in_which_role_for_whom_where_when_and_what_was_scanned(self):
        chain = Chain()
        await chain.collect()

        await chain.step(COURIER, MATERIAL, CustodyStep.SHIPPED, scanned="W0001 25 000001 1 00", to=FACILITY)

        [appended] = [a for a in chain.streams.appended if isinstance(a.event, CustodyStepRecorded)]
        assert appended.event == CustodyStepRecorded(
            unit_id=MATERIAL, coi_id=COI, subject_id=SUBJECT, unit_kind=UnitKind.STARTING_MATERIAL,
            step=CustodyStep.SHIPPED, from_state=CustodyState.COLLECTED, to_state=CustodyState.IN_TRANSIT,
            org_id=CENTRE, role="courier", location="OSR-MILANO store 1", at=T0 + timedelta(hours=1),
            scanned_id=MATERIAL, destination_org_id=FACILITY)
        assert appended.subject_id == SUBJECT and appended.occurred_at == T0 + timedelta(hours=1)

    async def test_labelling_binds_each_unit_to_the_coi_and_the_facility(self):
        chain = Chain()
        await chain.to_manufacturing()

        await chain.label()

        [registered] = [e for e in chain.streams.events(coi_stream(COI)) if isinstance(e, ProductUnitsRegistered)]
        assert (registered.unit_ids, registered.facility_id, registered.subject_id, registered.role) == (
            [A0, B0], FACILITY, SUBJECT, "operator")
        assert chain.state(A0) is CustodyState.AWAITING_QC

    async def test_the_release_names_the_facility_that_labelled_the_units(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        await chain.specify()
        for unit in (A0, B0):
            await chain.qc(unit)

        await chain.release(facility=None, sign=None)

        released = chain.streams.events(coi_stream(COI))[-1]
        assert isinstance(released, ProductReleased) and released.facility_id == FACILITY

    async def test_a_discarded_bag_does_not_hold_up_the_release_of_the_others(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        await chain.specify()
        await chain.qc(A0)
        await chain.step(OPERATOR, B0, CustodyStep.DISCARDED, reason="bag integrity failure at fill")

        await chain.release()

        assert (chain.state(A0), chain.state(B0)) == (CustodyState.RELEASED, CustodyState.DISCARDED)

    async def test_the_data_loader_records_for_the_organisation_it_names(self):
        chain = Chain()
        await chain.collect()

        await chain.step(LOADER, MATERIAL, CustodyStep.SHIPPED, CENTRE, to=FACILITY)

        assert chain.steps()[-1].role == "data_loader" and chain.steps()[-1].org_id == CENTRE

    async def test_a_fresh_product_is_prepared_on_receipt_without_storage(self):  # seed 003, fresh to fresh
        chain = Chain()
        await chain.released()
        await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)

        await chain.step(NURSE, A0, CustodyStep.PREPARED)

        assert chain.state(A0) is CustodyState.PREPARED

    async def test_a_centre_returns_a_bag_to_a_facility_with_the_reason(self):
        chain = Chain()
        await chain.released()
        await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)

        await chain.step(NURSE, A0, CustodyStep.RETURNED, to=FACILITY, reason="infusion cancelled: patient relapsed")

        assert chain.state(A0) is CustodyState.RETURNED

    async def test_a_returned_bag_is_received_back_quarantined_until_quality_assurance_decides(self):
        from contracts.commands import RecordQaDisposition

        chain = Chain()
        await chain.released()
        await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)
        await chain.step(NURSE, A0, CustodyStep.RETURNED, to=FACILITY, reason="infusion postponed: infection")
        await refused("NOT_HOLDER", chain.step(LOADER, A0, CustodyStep.RECEIVED, OTHER_FACILITY))  # not where sent

        await chain.step(OPERATOR, A0, CustodyStep.RECEIVED)

        unit = chain.chain().units[A0]
        assert (unit.state, unit.holder, unit.quarantined) == (CustodyState.RECEIVED, FACILITY, True)
        await chain.step(OPERATOR, A0, CustodyStep.STORED)  # kept, apart
        await refused("QUARANTINED", chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE))
        await chain.bus.send(RecordQaDisposition(unit_id=A0, org_id=FACILITY, decision="accept",
                                                 justification="kept below -150 C throughout; seal intact",
                                                 decided_at=chain.tick()), principal=QP)
        await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)  # to its patient again
        assert chain.state(A0) is CustodyState.IN_TRANSIT


class TestRefusals:
    async def test_a_label_scanned_that_is_not_the_unit_named(self):
        chain = Chain()
        await chain.released()
        refusal = await refused("WRONG_IDENTIFIER",
                                chain.step(OPERATOR, A0, CustodyStep.SHIPPED, scanned=B0, to=CENTRE))
        assert B0 in refusal.reason and A0 in refusal.reason

    async def test_a_label_of_another_coi_is_a_chain_of_identity_mismatch(self):
        chain = Chain()
        await chain.released()
        with pytest.raises(ChainOfIdentityMismatch, match="belongs to another chain of identity"):
            await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, scanned=OTHER_COI + "A0", to=CENTRE)

    async def test_a_mistyped_label_is_refused_at_the_door_naming_the_check_character(self):
        with pytest.raises(ValueError, match="check character"):
            RecordCustodyStep(unit_id=A0, scanned_id=A0[:13] + "K" + "A0", step=CustodyStep.SHIPPED,
                              org_id=FACILITY, location="x", at=T0)

    async def test_a_unit_never_labelled(self):
        chain = Chain()
        await chain.released()
        await refused("UNKNOWN_UNIT", chain.step(OPERATOR, COI + "C0", CustodyStep.SHIPPED, to=CENTRE))

    @pytest.mark.parametrize("who, unit, step", [
        (NURSE, A0, CustodyStep.RECEIVED),  # never shipped
        (OPERATOR, MATERIAL, CustodyStep.MANUFACTURING_STARTED),  # still in manufacturing
        (NURSE, A0, CustodyStep.PREPARED),  # released, still at the facility
        (OPERATOR, MATERIAL, CustodyStep.SHIPPED),  # consumed by manufacturing: terminal
    ])
    async def test_a_step_out_of_sequence(self, who, unit, step):
        chain = Chain()
        await chain.released()
        await refused("CUSTODY_OUT_OF_SEQUENCE", chain.step(who, unit, step, to=CENTRE if step == "shipped" else None))

    async def test_a_step_that_is_not_one_of_its_kind(self):
        chain = Chain()
        await chain.collect()
        refusal = await refused("CUSTODY_OUT_OF_SEQUENCE", chain.step(NURSE, MATERIAL, CustodyStep.PREPARED))
        assert "not a step of a starting_material unit" in refusal.reason

    async def test_an_organisation_that_does_not_hold_the_unit(self):
        chain = Chain()
        await chain.released()
        refusal = await refused("NOT_HOLDER", chain.step(ROME, A0, CustodyStep.SHIPPED, to=CENTRE))
        assert "held by GMP-PAVIA, not by GMP-ROMA" in refusal.reason

    async def test_a_receipt_by_an_organisation_it_was_not_shipped_to(self):
        chain = Chain()
        await chain.collect()
        await chain.step(COURIER, MATERIAL, CustodyStep.SHIPPED, to=FACILITY)
        refusal = await refused("NOT_HOLDER", chain.step(ROME, MATERIAL, CustodyStep.RECEIVED))
        assert "shipped to GMP-PAVIA, not to GMP-ROMA" in refusal.reason

    async def test_a_role_that_may_not_take_the_step(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        refusal = await refused("ROLE_NOT_PERMITTED", chain.step(ANALYST, A0, CustodyStep.SHIPPED, to=CENTRE))
        assert "qc_analyst" in refusal.reason and "operator" in refusal.reason

    async def test_a_principal_acting_for_an_organisation_it_has_no_role_at(self):
        chain = Chain()
        await chain.collect()
        refusal = await refused("ROLE_NOT_PERMITTED",
                                chain.step(MONZA, MATERIAL, CustodyStep.SHIPPED, CENTRE, to=FACILITY))
        assert "holds no role for OSR-MILANO" in refusal.reason

    async def test_an_organisation_the_network_does_not_know(self):
        chain = Chain()
        await chain.collect()
        await refused("ROLE_NOT_PERMITTED", chain.step(LOADER, MATERIAL, CustodyStep.SHIPPED, "CTR-NOWHERE",
                                                       to=FACILITY))

    @pytest.mark.parametrize("unit_state, to, why", [
        ("collected", None, "only to a named organisation"),
        ("collected", OTHER_CENTRE, "goes to a manufacturing facility"),  # starting material to a centre
        ("collected", "GMP-NOWHERE", "not an organisation of the network"),
        ("released", OTHER_CENTRE, "may not be shipped to HSG-MONZA"),  # the wrong patient's centre
        ("released", FACILITY, "already held by GMP-PAVIA"),
    ])
    async def test_a_destination_a_unit_may_not_go_to(self, unit_state, to, why):
        chain = Chain()
        if unit_state == "collected":
            await chain.collect()
            action = chain.step(COURIER, MATERIAL, CustodyStep.SHIPPED, to=to)
        else:
            await chain.released()
            action = chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=to)
        refusal = await refused("INVALID_DESTINATION", action)
        assert why in refusal.reason

    async def test_a_destination_on_a_step_that_has_none(self):
        chain = Chain()
        await chain.collect()
        await refused("INVALID_DESTINATION", chain.step(NURSE, MATERIAL, CustodyStep.STORED, to=FACILITY))

    async def test_a_discard_without_its_reason(self):
        chain = Chain()
        await chain.released()
        await refused("REASON_REQUIRED", chain.step(QP, A0, CustodyStep.DISCARDED))

    async def test_a_step_dated_before_the_last(self):
        chain = Chain()
        await chain.collect()
        await chain.step(COURIER, MATERIAL, CustodyStep.SHIPPED, to=FACILITY)
        await refused("STEP_BEFORE_PREVIOUS", chain.step(OPERATOR, MATERIAL, CustodyStep.RECEIVED, at=T0))

    async def test_a_step_without_an_authenticated_principal(self):
        chain = Chain()
        await chain.collect()
        with pytest.raises(Unauthenticated):
            await chain.bus.send(RecordCustodyStep(unit_id=MATERIAL, scanned_id=MATERIAL, step=CustodyStep.SHIPPED,
                                                   org_id=CENTRE, location="x", at=T0, destination_org_id=FACILITY))

    async def test_a_step_of_a_coi_never_collected(self):
        await refused("UNKNOWN_COI", Chain().step(NURSE, MATERIAL, CustodyStep.STORED))

    async def test_a_refused_step_appends_nothing(self):
        chain = Chain()
        await chain.collect()
        before = len(chain.streams.appended)
        await refused("NOT_HOLDER", chain.step(OPERATOR, MATERIAL, CustodyStep.STORED))
        assert len(chain.streams.appended) == before


class TestLabellingAndRelease:
    async def test_units_are_labelled_only_once_the_material_is_in_manufacturing(self):
        chain = Chain()
        await chain.collect()
        await chain.step(COURIER, MATERIAL, CustodyStep.SHIPPED, to=FACILITY)
        await chain.step(OPERATOR, MATERIAL, CustodyStep.RECEIVED)
        await refused("CUSTODY_OUT_OF_SEQUENCE", chain.label())

    async def test_units_are_labelled_by_the_facility_holding_the_material(self):
        chain = Chain()
        await chain.to_manufacturing()
        await refused("NOT_HOLDER", chain.label(ROME, org=OTHER_FACILITY))

    async def test_units_are_labelled_by_facility_staff(self):
        chain = Chain()
        await chain.to_manufacturing()
        await refused("ROLE_NOT_PERMITTED", chain.label(ANALYST))

    async def test_a_division_is_labelled_once(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label(divisions=("A0",))
        await refused("UNIT_ALREADY_REGISTERED", chain.label(divisions=("B0", "A0")))
        await refused("UNIT_ALREADY_REGISTERED", chain.label(divisions=("C0", "C0")))

    async def test_no_release_before_every_unit_passed_qc(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        await chain.specify()
        await chain.qc(A0)
        refusal = await refused("RELEASE_BEFORE_QC", chain.release())
        assert B0 in refusal.reason

    async def test_no_release_of_a_product_out_of_specification(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label(divisions=("A0",))
        await chain.specify()
        await chain.qc(A0, FAILING)
        refusal = await refused("RELEASE_BEFORE_QC", chain.release())
        assert chain.state(A0) is CustodyState.OUT_OF_SPECIFICATION and "exceptional-release path" in refusal.reason

    async def test_no_release_by_another_facility(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label(divisions=("A0",))
        await chain.specify()
        await chain.qc(A0)
        await refused("NOT_HOLDER", chain.release(OTHER_FACILITY))


class TestTheTable:
    def test_every_state_but_the_ends_has_a_way_on(self):
        leaving = {s for t in custody.TRANSITIONS for s in t.sources} | {
            s for _, sources, _ in (custody.QC, custody.QC_FAILED, custody.RELEASE, custody.EXCEPTIONAL_RELEASE,
                                    custody.INFUSION) for s in sources}
        assert set(CustodyState) - custody.TERMINAL - leaving == set()
        assert not custody.TERMINAL & leaving  # and the ends lead nowhere

    def test_every_state_is_reached(self):
        reached = {t.target for t in custody.TRANSITIONS} | {s for _, s in custody.ENTRY.values()} | {
            t[2] for t in (custody.QC, custody.QC_FAILED, custody.RELEASE, custody.INFUSION)}
        assert reached == set(CustodyState)

    def test_every_step_has_one_transition_or_a_command_of_its_own(self):
        assert sorted([*custody.BY_STEP, *custody.OWN_COMMAND]) == sorted(CustodyStep)
        assert len(custody.TRANSITIONS) == len(CustodyStep) - len(custody.OWN_COMMAND)

    @pytest.mark.parametrize("step", sorted(custody.OWN_COMMAND))
    async def test_a_step_with_a_command_of_its_own_is_not_a_bare_custody_step(self, step):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        refusal = await refused("STEP_HAS_ITS_OWN_COMMAND", chain.step(ANALYST, A0, step))
        assert "RecordQcResults" in refusal.reason

    def test_docs_custody_md_draws_the_table_as_it_is(self):
        doc = (Path(__file__).parents[3] / "docs" / "custody.md").read_text(encoding="utf-8")
        assert custody.mermaid() in doc and custody.table_markdown() in doc, (
            "docs/custody.md is stale: paste `python -m services.manufacturing.domain.custody`")


class TestTheInfusionEndsCustody:
    async def test_an_infused_bag_takes_no_further_step(self):
        import uuid as _uuid

        from contracts.events import ProductInfused

        chain = Chain()
        await chain.released()
        await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)
        await chain.step(NURSE, A0, CustodyStep.PREPARED)
        infused = ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=chain.tick(), infusion_number=1,
                                 unit_id=A0, bedside_check_id=_uuid.uuid4())
        await chain.bus.send(infused)
        await chain.bus.send(infused)  # delivered again: recorded once
        assert chain.state(A0) is CustodyState.INFUSED
        assert sum(type(e).__name__ == "UnitInfusionRecorded" for e in chain.streams.events(coi_stream(COI))) == 1
        await refused("CUSTODY_OUT_OF_SEQUENCE", chain.step(NURSE, A0, CustodyStep.DISCARDED, reason="x"))
        await refused("CUSTODY_OUT_OF_SEQUENCE", chain.step(NURSE, A0, CustodyStep.RETURNED, to=FACILITY, reason="x"))
