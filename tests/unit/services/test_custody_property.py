"""Issue 9 item 10: random sequences of custody commands, temperature readings, QA decisions,
bedside checks and infusions, by the right and the wrong people, for two patients whose
products are split into bags, through manufacturing's and infusion's bootstraps (with
fakes), manufacturing's events handed to infusion as its consumer would. Whatever the
sequence, no bag is ever infused unless it is that patient's, was released by the qualified
person's signature (out of specification only after the treating physician's signed
acceptance, and then flagged so), is not quarantined, was prepared at the centre, and a
two-person bedside check said go for it and that patient. The oracle that judges each infusion reads the event log, not the services'
code."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from contracts import isbt128
from contracts.commands import (
    RecordApheresisCollection,
    RecordCustodyStep,
    RecordInfusion,
    RecordProductRelease,
    RecordOosRiskAssessment,
    RecordQaDisposition,
    RecordQcResults,
    RegisterProductUnits,
    RequestExceptionalRelease,
)
from contracts.custody import CustodyStep, Disposition
from contracts.errors import CommandRefused
from contracts.events import (
    ApheresisCollected,
    BedsideCheckRecorded,
    CustodyStepRecorded,
    ExceptionalReleaseAccepted,
    ExcursionDetected,
    NoGoReason,
    OosRiskAssessed,
    ProductInfused,
    ProductReleased,
    QaDispositionRecorded,
    QcResultsRecorded,
    ReleaseCertified,
    TemperatureReading,
)
from services.infusion import bootstrap as infusion
from services.infusion.domain.bedside import bedside_stream, judge
from services.manufacturing import bootstrap as manufacturing
from services.manufacturing.application.handlers import record_readings
from tests.unit.services.fakes import (
    FakePolicies,
    FakeTreatments,
    FakePersons,
    Bus,
    FakeEnrolments,
    FakeOrganisations,
    FakeReleasedProducts,
    FakeStreams,
    FakeSubjectCentres,
    FakeUnits,
)
from tests.unit.services.test_custody import (
    ANALYST,
    CENTRE,
    COURIER,
    FACILITY,
    KINDS,
    MONZA,
    NURSE,
    OPERATOR,
    FAILING,
    OTHER_CENTRE,
    PASSING,
    PHYSICIAN,
    PROGRAMME,
    QP,
    ROME,
    signature,
)
from tests.unit.services.test_custody import CRITERIA
from contracts.commands import SetProductSpecification
from services.manufacturing.application.signatures import on_record_signed

SUBJECTS = ("S-0000000000A1", "S-0000000000B2")
COIS = {s: str(isbt128.issue("W0001", 2025, 700 + n)) for n, s in enumerate(SUBJECTS)}
UNITS = [coi + d for coi in COIS.values() for d in ("00", "A0", "B0")]
PEOPLE = [NURSE, COURIER, OPERATOR, ANALYST, QP, ROME, MONZA, PHYSICIAN]
T0 = datetime(2025, 5, 1, 8, tzinfo=timezone.utc)


class Network:
    """Manufacturing and infusion with fakes; manufacturing's events reach infusion in order."""

    def __init__(self) -> None:
        self.made, self.ward = FakeStreams(), FakeStreams()
        self.units = FakeUnits()
        self.products = FakeReleasedProducts()
        self.manufacturing = Bus(manufacturing.spec, streams=self.made, organisations=FakeOrganisations(KINDS), persons=FakePersons(),
                                 enrolments=FakeEnrolments({s: CENTRE for s in SUBJECTS}))
        self.infusion = Bus(infusion.spec, policies=FakePolicies(), treatments=FakeTreatments(), streams=self.ward, units=self.units, products=self.products,
                            subject_centres=FakeSubjectCentres({s: CENTRE for s in SUBJECTS}))
        self.forwarded = 0
        self.clock = T0
        asyncio.run(self.manufacturing.send(SetProductSpecification(
            programme_id=PROGRAMME, org_id=FACILITY, criteria=CRITERIA, set_at=T0), principal=QP))

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=30)
        return self.clock

    def run(self, coro) -> None:
        try:
            asyncio.run(coro)
        except CommandRefused:
            pass
        asyncio.run(self.forward())

    async def forward(self) -> None:
        """Manufacturing's new events to infusion's handlers, as its consumer applies them."""
        new = self.made.appended[self.forwarded:]
        self.forwarded = len(self.made.appended)
        for a in new:
            if a.event.event_type in self.infusion.spec.event_handlers:
                await self.infusion.send(a.event)

    def log(self) -> list:
        return [a.event for a in self.made.appended]


def oracle(log: list, checks: list[BedsideCheckRecorded], infused: ProductInfused) -> list[str]:
    """What is wrong with `infused`, judged from the event logs alone."""
    unit, subject = infused.unit_id, infused.subject_id
    wrong = []
    owner = next((e.subject_id for e in log if isinstance(e, ApheresisCollected) and e.coi_id == unit[:14]), None)
    if owner != subject:
        wrong.append(f"{unit} is {owner}'s, infused into {subject}")
    state, released, quarantined, oos, accepted = None, False, False, False, False
    for e in log:
        if isinstance(e, CustodyStepRecorded) and e.unit_id == unit:
            state = e.to_state.value
        elif isinstance(e, QcResultsRecorded) and e.unit_id == unit:
            state = "qc_complete" if e.within_specification else "out_of_specification"
            oos = not e.within_specification
        elif isinstance(e, ExceptionalReleaseAccepted) and unit in e.unit_ids:
            accepted = True
        elif isinstance(e, ReleaseCertified) and any(u.unit_id == unit for u in e.units):
            if state not in ("qc_complete", "out_of_specification"):
                wrong.append(f"{unit} was certified while {state}")
            state, released = "released", True
        elif isinstance(e, ExcursionDetected) and e.unit_id == unit:
            quarantined = True
        elif isinstance(e, QaDispositionRecorded) and e.unit_id == unit:
            quarantined = False
            state = "discarded" if e.decision is Disposition.DISCARD else state
    if not released:
        wrong.append(f"{unit} was never released")
    if state != "prepared":
        wrong.append(f"{unit} is {state}, not prepared")
    if quarantined:
        wrong.append(f"{unit} is quarantined")
    if oos and not accepted:
        wrong.append(f"{unit} is out of specification, never accepted by the physician's signature")
    if infused.out_of_specification != oos:
        wrong.append(f"{unit}'s infusion says out_of_specification={infused.out_of_specification}, its QC {oos}")
    mine = [c for c in checks if c.unit_id == unit]
    if not mine or mine[-1].check_id != infused.bedside_check_id or not mine[-1].go or mine[-1].subject_id != subject:
        wrong.append(f"{unit} had no standing go for {subject}")
    if len(set(mine[-1].verified_by if mine else [])) != 2:
        wrong.append(f"{unit}'s check was not by two people")
    return wrong


@settings(max_examples=100, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
class CustodyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = Network()
        self.infused: list[ProductInfused] = []
        self.violations: list[str] = []

    # -- manufacturing ----------------------------------------------------------------------
    @rule(subject=st.sampled_from(SUBJECTS))
    def collect(self, subject):
        self.net.run(self.net.manufacturing.send(RecordApheresisCollection(
            coi_id=COIS[subject], subject_id=subject, centre_id=CENTRE, collected_at=self.net.tick())))

    @rule(who=st.sampled_from(PEOPLE), unit=st.sampled_from(UNITS), step=st.sampled_from(list(CustodyStep)),
          to=st.sampled_from([None, CENTRE, OTHER_CENTRE, FACILITY, "GMP-ROMA"]),
          scanned=st.sampled_from([None, *UNITS]), reason=st.sampled_from([None, "damaged"]))
    def step(self, who, unit, step, to, scanned, reason):
        org = who.memberships[0].org_id
        self.net.run(self.net.manufacturing.send(RecordCustodyStep(
            unit_id=unit, scanned_id=scanned or unit, step=step, org_id=org, location="somewhere",
            at=self.net.tick(), destination_org_id=to, reason=reason), principal=who))

    @rule(subject=st.sampled_from(SUBJECTS), who=st.sampled_from([OPERATOR, ROME, NURSE]))
    def label(self, subject, who):
        self.net.run(self.net.manufacturing.send(RegisterProductUnits(
            coi_id=COIS[subject], org_id=who.memberships[0].org_id, lot_number="LOT", divisions=["A0", "B0"],
            location="suite", storage="cryopreserved", registered_at=self.net.tick()), principal=who))

    @rule(subject=st.sampled_from(SUBJECTS), facility=st.sampled_from([None, FACILITY, "GMP-ROMA"]))
    def release(self, subject, facility):
        self.net.run(self.net.manufacturing.send(RecordProductRelease(
            coi_id=COIS[subject], subject_id=subject, lot_number="LOT", released_at=self.net.tick(),
            released_by="QP", viable_cells_per_ml=2e6, volume_ml=50, facility_id=facility)))

    @rule(who=st.sampled_from([ANALYST, QP, OPERATOR, ROME]), unit=st.sampled_from(UNITS), passing=st.booleans())
    def qc(self, who, unit, passing):
        self.net.run(self.net.manufacturing.send(RecordQcResults(
            unit_id=unit, scanned_id=unit, org_id=who.memberships[0].org_id, location="lab", tested_at=self.net.tick(),
            results=PASSING if passing else FAILING), principal=who))

    def sign(self, who, subject, record_type) -> None:
        """What POST /signatures does once the signing table allowed it: the signature's
        effect on the chain (services/manufacturing/application/signatures.py)."""
        record = next((e for e in self.net.made.events(f"coi-{COIS[subject]}") if isinstance(e, record_type)), None)
        if record is not None:
            self.net.run(on_record_signed(record.event_type, record.model_dump(mode="json"), uuid.uuid4(),
                                          signature(who, record, at=self.net.tick()), self.net.made))

    @rule(subject=st.sampled_from(SUBJECTS), who=st.sampled_from([QP, PHYSICIAN]))
    def sign_release(self, subject, who):
        self.sign(who, subject, ProductReleased)

    @rule(subject=st.sampled_from(SUBJECTS), who=st.sampled_from([PHYSICIAN, NURSE, MONZA]),
          bags=st.sampled_from([["A0"], ["B0"], ["A0", "B0"]]))
    def request_exceptional_release(self, subject, who, bags):
        self.net.run(self.net.manufacturing.send(RequestExceptionalRelease(
            coi_id=COIS[subject], unit_ids=[COIS[subject] + b for b in bags], org_id=who.memberships[0].org_id,
            justification="no alternative therapy", requested_at=self.net.tick()), principal=who))

    @rule(subject=st.sampled_from(SUBJECTS), who=st.sampled_from([QP, ROME, ANALYST]))
    def assess_risk(self, subject, who):
        self.net.run(self.net.manufacturing.send(RecordOosRiskAssessment(
            coi_id=COIS[subject], org_id=who.memberships[0].org_id, deviation="viability 61 %",
            risk_assessment="low risk", assessed_at=self.net.tick()), principal=who))

    @rule(subject=st.sampled_from(SUBJECTS), who=st.sampled_from([PHYSICIAN, QP]))
    def accept_risk(self, subject, who):
        records = [e for e in self.net.made.events(f"coi-{COIS[subject]}") if isinstance(e, OosRiskAssessed)]
        if records:
            self.net.run(on_record_signed(records[-1].event_type, records[-1].model_dump(mode="json"), uuid.uuid4(),
                                          signature(who, records[-1], at=self.net.tick()), self.net.made))

    @rule(who=st.sampled_from(PEOPLE), unit=st.sampled_from(UNITS), warm=st.booleans())
    def readings(self, who, unit, warm):
        start = self.net.tick()
        series = [TemperatureReading(at=start + timedelta(minutes=i), celsius=c)
                  for i, c in enumerate((-190, -120 if warm else -185, -190))]
        self.net.run(record_readings([unit], "L", who.memberships[0].org_id, "box", series, self.net.made, who,
                                     FakeOrganisations(KINDS)))

    @rule(who=st.sampled_from([QP, OPERATOR, NURSE]), unit=st.sampled_from(UNITS),
          decision=st.sampled_from(list(Disposition)))
    def disposition(self, who, unit, decision):
        self.net.run(self.net.manufacturing.send(RecordQaDisposition(
            unit_id=unit, org_id=who.memberships[0].org_id, decision=decision, justification="assessed",
            decided_at=self.net.tick()), principal=who))

    # -- the ward ---------------------------------------------------------------------------
    @rule(unit=st.sampled_from(UNITS), subject=st.sampled_from(SUBJECTS))
    def bedside_check(self, unit, subject):
        """What POST /bedside-checks does (services/infusion/entrypoints/http.py), two nurses."""
        async def check():
            view = await self.net.units.get(unit)
            infused = any(e.unit_id == unit for e in self.infused)
            at = self.net.tick()
            reasons = judge(view, unit_id=unit, subject_id=subject, subject_centre=CENTRE, infused=infused, at=at)
            stream = bedside_stream(unit)
            _, version = await self.net.ward.load(stream)
            await self.net.ward.append(stream, version, [BedsideCheckRecorded(
                check_id=uuid.uuid4(), unit_id=unit, coi_id=unit[:14], subject_id=subject, centre_id=CENTRE,
                verified_by=["nurse.a", "physician.a"], go=not reasons,
                reasons=[NoGoReason(code=r.code, reason=r.reason) for r in reasons], checked_at=at,
                out_of_specification=bool(view and view.released_out_of_specification and not reasons))],
                occurred_at=self.net.clock, subject_id=subject)
        self.net.run(check())

    @rule(unit=st.sampled_from(UNITS), subject=st.sampled_from(SUBJECTS), which=st.sampled_from(["last", "first"]))
    def infuse(self, unit, subject, which):
        checks = self.net.ward.events(bedside_stream(unit))
        check = (checks[-1] if which == "last" else checks[0]).check_id if checks else None
        self.attempt_infusion(unit, subject, check)

    def attempt_infusion(self, unit: str, subject: str, check: uuid.UUID | None) -> None:
        before = len(self.infused)
        self.net.run(self.net.infusion.send(RecordInfusion(
            subject_id=subject, coi_id=unit[:14], infused_at=self.net.tick(), unit_id=unit, bedside_check_id=check)))
        self.infused = [a.event for a in self.net.ward.appended if isinstance(a.event, ProductInfused)]
        checks = [a.event for a in self.net.ward.appended if isinstance(a.event, BedsideCheckRecorded)]
        for infused in self.infused[before:]:  # judged as things stood when it was infused
            self.violations += oracle(self.net.log(), checks, infused)

    @rule(subject=st.sampled_from(SUBJECTS), bag=st.sampled_from(["A0", "B0"]), steps=st.integers(1, 15))
    def advance_by(self, subject, bag, steps):
        """Up to `steps` right steps of the subject's chain, by the right people: so that
        sequences reach the ward, with the wrong steps of the other rules in between."""
        for _ in range(steps):
            self.advance(subject, bag)

    def advance(self, subject, bag):
        """The next right step of the subject's chain, by the right person."""
        from services.kernel.aggregate import rebuild
        from services.manufacturing.domain.model import ChainOfIdentity, coi_stream

        coi = COIS[subject]
        chain = rebuild(ChainOfIdentity(coi), self.net.made.events(coi_stream(coi)))
        material, unit = chain.units.get(coi + "00"), chain.units.get(coi + bag)
        S = CustodyStep
        if material is None:
            return self.collect(subject)
        if material.state == "collected":
            return self.step(COURIER, coi + "00", S.SHIPPED, FACILITY, None, None)
        if material.state == "in_transit":
            return self.step(OPERATOR, coi + "00", S.RECEIVED, None, None, None)
        if material.state == "received":
            return self.step(OPERATOR, coi + "00", S.MANUFACTURING_STARTED, None, None, None)
        if unit is None:
            return self.label(subject, OPERATOR)
        if unit.quarantined:
            return self.disposition(QP, unit.unit_id, Disposition.ACCEPT)
        if unit.state == "awaiting_qc":
            return self.qc(ANALYST, unit.unit_id, bag == "A0")  # B0 fails its QC: the exceptional path
        if unit.state == "out_of_specification" and unit.unit_id not in chain.requested:
            return self.request_exceptional_release(subject, PHYSICIAN, [bag])
        if unit.state == "out_of_specification" and chain.assessment is None:
            return self.assess_risk(subject, QP)
        if unit.state == "out_of_specification" and unit.unit_id not in chain.accepted:
            return self.accept_risk(subject, PHYSICIAN)
        if unit.state in ("qc_complete", "out_of_specification") and not chain.released:
            return self.release(subject, FACILITY)
        if unit.state in ("qc_complete", "out_of_specification") and chain.release_pending:
            return self.sign_release(subject, QP)
        if unit.state == "released":
            return self.step(OPERATOR, unit.unit_id, S.SHIPPED, CENTRE, None, None)
        if unit.state == "in_transit":
            return self.step(NURSE, unit.unit_id, S.RECEIVED, None, None, None)
        if unit.state in ("received", "stored"):
            return self.step(NURSE, unit.unit_id, S.PREPARED, None, None, None)
        if unit.state == "prepared":
            self.bedside_check(unit.unit_id, subject)
            return self.infuse(unit.unit_id, subject, "last")

    # -- what must always hold ------------------------------------------------------------------
    @invariant()
    def no_bag_is_infused_unless_it_should_be(self):
        assert self.violations == []
        event(f"infusions so far: {min(len(self.infused), 3)}{'+' if len(self.infused) > 3 else ''}")
        assert all(i.unit_id is not None and i.bedside_check_id is not None for i in self.infused)


TestCustodyMachine = CustodyMachine.TestCase


def test_the_right_steps_alone_take_both_patients_bags_to_infusion():
    """The harness reaches the ward (else the property above would hold vacuously)."""
    machine = CustodyMachine()
    for _ in range(40):
        for subject in SUBJECTS:
            for bag in ("A0", "B0"):
                machine.advance(subject, bag)
    assert sorted((i.subject_id, i.unit_id[-2:]) for i in machine.infused) == [
        (s, b) for s in SUBJECTS for b in ("A0", "B0")]
    assert machine.violations == []
