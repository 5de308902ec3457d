"""Release (issue 9 item 4; services/manufacturing/domain/release.py): QC results judged against
the product specification held as data, the release that takes effect only with the qualified
person's signature, and the exceptional release of a product out of specification (EU GMP
Part IV 11.5), through manufacturing's bootstrap with fakes; every refusal with its code."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from contracts.commands import (
    RecordOosRiskAssessment,
    RecordQcResults,
    RecordSponsorNotified,
    RequestExceptionalRelease,
    SetProductSpecification,
)
from contracts.custody import CriterionKind, CustodyState, CustodyStep
from contracts.events import (
    ExceptionalReleaseAccepted,
    OosRiskAssessed,
    ProductSpecificationSet,
    QcResult,
    QcResultsRecorded,
    ReleaseCertified,
    SignatureMeaning,
    SpecificationCriterion,
    SponsorNotificationRaised,
    SponsorNotified,
)
from services.manufacturing.domain.model import coi_stream
from services.manufacturing.domain.release import judge, spec_stream
from tests.unit.services.test_custody import (
    A0,
    ANALYST,
    B0,
    CENTRE,
    COI,
    CRITERIA,
    FACILITY,
    FAILING,
    LOADER,
    MONZA,
    NURSE,
    OPERATOR,
    OTHER_COI,
    OTHER_FACILITY,
    PASSING,
    PHYSICIAN,
    PROGRAMME,
    QP,
    ROME,
    T0,
    Chain,
    refused,
)

VIABILITY, STERILITY, ENDOTOXIN = CRITERIA


def result(attribute: str, value: float | None = None, detected: bool | None = None) -> QcResult:
    return QcResult(attribute=attribute, value=value, detected=detected)


class TestJudgingAgainstTheSpecification:
    # The limits are the sources' own (tests/unit/services/test_custody.py CRITERIA): FDA's
    # minimum of 70 % viable cells, Ph. Eur. 2.6.27 (no growth), Ph. Eur. 5.1.10 (K = 5 IU/kg).
    @pytest.mark.parametrize("criterion, given, passed, text", [
        (VIABILITY, result("viability_percent", 70.0), True, ">= 70 %"),  # the minimum itself
        (VIABILITY, result("viability_percent", 69.9), False, ">= 70 %"),
        (VIABILITY, result("viability_percent", 96.0), True, ">= 70 %"),
        (STERILITY, result("sterility", detected=False), True, "not detected"),
        (STERILITY, result("sterility", detected=True), False, "not detected"),
        (ENDOTOXIN, result("endotoxin_iu_per_kg", 5.0), True, "<= 5 IU/kg"),
        (ENDOTOXIN, result("endotoxin_iu_per_kg", 5.01), False, "<= 5 IU/kg"),
    ])
    def test_each_criterion_kind(self, criterion, given, passed, text):
        [judged] = judge([criterion], [given])
        assert (judged.passed, judged.criterion) == (passed, text)

    @pytest.mark.parametrize("value, passed", [(0.5, True), (0.49, False), (1.0, True), (1.01, False)])
    def test_a_dose_range(self, value, passed):  # seed 003: 1 x 10^6 CAR-T cells/kg; a range as data
        dose = SpecificationCriterion(attribute="car_t_cells_per_kg_e6", kind=CriterionKind.BETWEEN, low=0.5,
                                      high=1.0, unit="10^6/kg", source="protocol (shared/seeds 003): DL1 0.5, 1.0")
        assert judge([dose], [result("car_t_cells_per_kg_e6", value)])[0].passed is passed

    def test_results_are_judged_in_the_specifications_order(self):
        judged = judge(CRITERIA, list(reversed(PASSING)))
        assert [j.attribute for j in judged] == ["viability_percent", "sterility", "endotoxin_iu_per_kg"]

    @pytest.mark.parametrize("results, code, names", [
        (PASSING[:2], "QC_RESULTS_INCOMPLETE", "endotoxin_iu_per_kg"),
        ([*PASSING, result("mycoplasma", detected=False)], "UNKNOWN_QC_ATTRIBUTE", "mycoplasma"),
        ([result("viability_percent", 90), result("sterility", 0.0), PASSING[2]], "QC_RESULT_INVALID", "sterility"),
        ([result("viability_percent", detected=False), *PASSING[1:]], "QC_RESULT_INVALID", "viability_percent"),
    ])
    def test_results_that_cannot_be_judged(self, results, code, names):
        from contracts.errors import CommandRefused

        with pytest.raises(CommandRefused) as caught:
            judge(CRITERIA, results)
        assert caught.value.code == code and names in caught.value.reason


class TestTheSpecificationAsData:
    @pytest.mark.parametrize("fields, message", [
        ({"kind": "at_least"}, "needs `low`"),
        ({"kind": "at_most"}, "needs `high`"),
        ({"kind": "at_most", "high": 1, "low": 0}, "takes no `low`"),
        ({"kind": "not_detected", "high": 1}, "takes no `high`"),
        ({"kind": "between", "low": 2, "high": 1}, "low 2.0 is above high 1.0"),
    ])
    def test_a_criterion_malformed_is_refused_naming_what_is_wrong(self, fields, message):
        with pytest.raises(ValidationError, match=message):
            SpecificationCriterion(attribute="x", source="s", **fields)

    def test_a_result_gives_a_value_or_detected(self):
        with pytest.raises(ValidationError, match="either a `value` or `detected`"):
            QcResult(attribute="x", value=1, detected=True)
        with pytest.raises(ValidationError, match="either a `value` or `detected`"):
            QcResult(attribute="x")

    def test_a_specification_names_each_attribute_once(self):
        with pytest.raises(ValidationError, match="viability_percent more than once"):
            SetProductSpecification(programme_id=PROGRAMME, org_id=FACILITY, criteria=[VIABILITY, VIABILITY],
                                    set_at=T0)

    async def test_each_change_is_a_new_version_and_results_name_the_version_in_force(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        await chain.specify()
        await chain.bus.send(SetProductSpecification(programme_id=PROGRAMME, org_id=FACILITY,
                                                     criteria=[VIABILITY, STERILITY], shelf_life_hours=72,
                                                     set_at=chain.tick()), principal=QP)
        later = chain.tick() + timedelta(days=1)
        await chain.bus.send(SetProductSpecification(programme_id=PROGRAMME, org_id=FACILITY, criteria=CRITERIA,
                                                     set_at=later), principal=QP)  # not yet in force

        await chain.qc(A0, PASSING[:2])

        versions = chain.streams.events(spec_stream(PROGRAMME, FACILITY))
        assert [v.version for v in versions] == [1, 2, 3] and all(isinstance(v, ProductSpecificationSet)
                                                                   for v in versions)
        [recorded] = [e for e in chain.streams.events(coi_stream(COI)) if isinstance(e, QcResultsRecorded)]
        assert (recorded.specification_version, recorded.programme_id) == (2, PROGRAMME)
        made = chain.chain().units[A0].made_at
        assert recorded.expires_at == made + timedelta(hours=72)  # shelf life from the end of manufacture

    @pytest.mark.parametrize("who, org, code", [
        (OPERATOR, FACILITY, "ROLE_NOT_PERMITTED"),  # only the qualified person
        (ANALYST, FACILITY, "ROLE_NOT_PERMITTED"),
        (PHYSICIAN, CENTRE, "ROLE_NOT_PERMITTED"),  # a centre has no product specification
        (ROME, FACILITY, "ROLE_NOT_PERMITTED"),  # no role at that facility
    ])
    async def test_who_may_set_it(self, who, org, code):
        await refused(code, Chain().specify(who, org))

    async def test_a_version_dated_before_the_last_is_refused(self):
        chain = Chain()
        await chain.specify()  # in force from T0 - 30 days
        await refused("STEP_BEFORE_PREVIOUS", chain.bus.send(SetProductSpecification(
            programme_id=PROGRAMME, org_id=FACILITY, criteria=CRITERIA, set_at=T0 - timedelta(days=31)), principal=QP))

    async def test_the_data_loader_submits_a_qps_specification_for_the_facility_it_names(self):
        chain = Chain()
        await chain.specify(LOADER)
        assert chain.streams.events(spec_stream(PROGRAMME, FACILITY))[0].role == "data_loader"


async def qc_ready(chain: Chain, *, specify: bool = True) -> None:
    await chain.to_manufacturing()
    await chain.label()
    if specify:
        await chain.specify(thaw_to_infusion_minutes=30, shelf_life_hours=24 * 365)


class TestQcResults:
    async def test_within_specification_the_unit_is_qc_complete(self):
        chain = Chain()
        await qc_ready(chain)
        await chain.qc(A0)
        [recorded] = [e for e in chain.streams.events(coi_stream(COI)) if isinstance(e, QcResultsRecorded)]
        assert (recorded.within_specification, recorded.failed, recorded.use_within_minutes) == (True, [], 30)
        assert [r.passed for r in recorded.results] == [True, True, True]
        assert chain.state(A0) is CustodyState.QC_COMPLETE

    async def test_one_failure_makes_the_unit_out_of_specification_naming_it(self):
        chain = Chain()
        await qc_ready(chain)
        await chain.qc(A0, FAILING)
        unit = chain.chain().units[A0]
        assert (unit.state, unit.out_of_specification, unit.failed) == (
            CustodyState.OUT_OF_SPECIFICATION, True, ["viability_percent"])

    async def test_without_a_specification_in_force_nothing_is_judged(self):
        chain = Chain()
        await qc_ready(chain, specify=False)
        refusal = await refused("NO_SPECIFICATION", chain.qc(A0))
        assert PROGRAMME in refusal.reason and "SetProductSpecification" in refusal.reason

    async def test_another_facilitys_specification_does_not_count(self):
        chain = Chain()
        await qc_ready(chain, specify=False)
        await chain.specify(LOADER, OTHER_FACILITY)
        await refused("NO_SPECIFICATION", chain.qc(A0))

    @pytest.mark.parametrize("action, code", [
        (lambda c: c.qc(A0, scanned=B0), "WRONG_IDENTIFIER"),
        (lambda c: c.qc(A0, scanned=OTHER_COI + "A0"), "CHAIN_OF_IDENTITY_MISMATCH"),
        (lambda c: c.qc(COI + "C0"), "UNKNOWN_UNIT"),
        (lambda c: c.qc(COI + "00"), "CUSTODY_OUT_OF_SEQUENCE"),  # the starting material is not tested here
        (lambda c: c.qc(A0, who=OPERATOR), "ROLE_NOT_PERMITTED"),
        (lambda c: c.qc(A0, who=NURSE), "ROLE_NOT_PERMITTED"),
        (lambda c: c.qc(A0, who=ROME), "ROLE_NOT_PERMITTED"),  # an operator, elsewhere
        (lambda c: c.qc(A0, who=LOADER, org=OTHER_FACILITY), "NOT_HOLDER"),
        (lambda c: c.qc(A0, PASSING[:1]), "QC_RESULTS_INCOMPLETE"),
    ])
    async def test_refusals(self, action, code):
        chain = Chain()
        await qc_ready(chain)
        before = len(chain.streams.appended)
        await refused(code, action(chain))
        assert len(chain.streams.appended) == before

    async def test_results_are_recorded_once(self):
        chain = Chain()
        await qc_ready(chain)
        await chain.qc(A0)
        await refused("CUSTODY_OUT_OF_SEQUENCE", chain.qc(A0, FAILING))

    async def test_results_dated_before_the_labelling(self):
        chain = Chain()
        await qc_ready(chain)
        await refused("STEP_BEFORE_PREVIOUS", chain.bus.send(RecordQcResults(
            unit_id=A0, scanned_id=A0, org_id=FACILITY, location="lab", tested_at=T0, results=PASSING),
            principal=ANALYST))


class TestTheSignedRelease:
    async def test_the_release_record_alone_releases_nothing(self):
        chain = Chain()
        await qc_ready(chain)
        for u in (A0, B0):
            await chain.qc(u)
        await chain.release(sign=None)
        assert chain.release_record().awaiting_signature
        assert (chain.state(A0), chain.state(B0)) == (CustodyState.QC_COMPLETE, CustodyState.QC_COMPLETE)
        await refused("CUSTODY_OUT_OF_SEQUENCE", chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE))

    async def test_the_qps_approval_signature_puts_it_into_effect(self):
        chain = Chain()
        await qc_ready(chain)
        for u in (A0, B0):
            await chain.qc(u)
        await chain.release(sign=None)

        [certified] = await chain.sign(QP, chain.release_record())

        assert isinstance(certified, ReleaseCertified)
        assert ([u.unit_id for u in certified.units], certified.signer, certified.printed_name) == (
            [A0, B0], "qp.p", "qp.p")
        assert all(u.use_within_minutes == 30 and u.expires_at is not None for u in certified.units)
        assert (chain.state(A0), chain.state(B0)) == (CustodyState.RELEASED, CustodyState.RELEASED)
        assert await chain.sign(QP, chain.release_record()) == []  # certified once

    @pytest.mark.parametrize("who, meaning", [
        (QP, SignatureMeaning.REVIEW),  # a review is not the certification
        (ROME, SignatureMeaning.APPROVAL),  # not the releasing facility's
        (PHYSICIAN, SignatureMeaning.APPROVAL),
    ])
    async def test_another_signature_is_a_signature_only(self, who, meaning):
        chain = Chain()
        await qc_ready(chain)
        for u in (A0, B0):
            await chain.qc(u)
        await chain.release(sign=None)
        assert await chain.sign(who, chain.release_record(), meaning) == []
        assert chain.state(A0) is CustodyState.QC_COMPLETE

    async def test_a_bag_discarded_before_the_signature_is_not_released_by_it(self):
        chain = Chain()
        await qc_ready(chain)
        for u in (A0, B0):
            await chain.qc(u)
        await chain.release(sign=None)
        await chain.step(OPERATOR, B0, CustodyStep.DISCARDED, reason="bag integrity failure")
        [certified] = await chain.sign(QP, chain.release_record())
        assert [u.unit_id for u in certified.units] == [A0]


async def out_of_specification(chain: Chain) -> None:
    await qc_ready(chain)
    await chain.qc(A0)
    await chain.qc(B0, FAILING)


async def request(chain: Chain, who=PHYSICIAN, units=(B0,), org: str | None = None) -> None:
    await chain.bus.send(RequestExceptionalRelease(
        coi_id=COI, unit_ids=list(units), org_id=org or who.memberships[0].org_id,
        justification="relapse with no alternative therapy; the benefit outweighs the risk", requested_at=chain.tick()),
        principal=who)


async def assess(chain: Chain, who=QP, org: str | None = None) -> None:
    await chain.bus.send(RecordOosRiskAssessment(
        coi_id=COI, org_id=org or who.memberships[0].org_id, deviation="viability 61 % against >= 70 %",
        risk_assessment="reduced dose of viable cells; no safety signal; sterility and endotoxin within limits",
        assessed_at=chain.tick()), principal=who)


def assessments(chain: Chain) -> list[OosRiskAssessed]:
    return [e for e in chain.streams.events(coi_stream(COI)) if isinstance(e, OosRiskAssessed)]


class TestExceptionalRelease:
    async def test_request_assessment_signed_acceptance_then_the_signed_release_flagged(self):
        chain = Chain()
        await out_of_specification(chain)
        await request(chain)
        await assess(chain)

        accepted, task = await chain.sign(PHYSICIAN, assessments(chain)[-1])
        assert isinstance(accepted, ExceptionalReleaseAccepted) and accepted.unit_ids == [B0]
        assert (accepted.signer, accepted.org_id) == ("physician.a", CENTRE)
        assert isinstance(task, SponsorNotificationRaised) and (task.unit_ids, task.failed, task.programme_id) == (
            [B0], ["viability_percent"], PROGRAMME)

        await chain.release(sign=None)
        assert chain.release_record().out_of_specification_units == [B0]
        [certified] = await chain.sign(QP, chain.release_record())
        assert [(u.unit_id, u.out_of_specification) for u in certified.units] == [(A0, False), (B0, True)]
        unit = chain.chain().units[B0]
        assert (unit.state, unit.out_of_specification) == (CustodyState.RELEASED, True)  # the flag travels

    async def test_without_the_physicians_acceptance_there_is_no_release(self):
        chain = Chain()
        await out_of_specification(chain)
        await request(chain)
        await assess(chain)
        await refused("RELEASE_BEFORE_QC", chain.release())

    async def test_the_qps_signature_is_not_the_physicians_acceptance(self):
        chain = Chain()
        await out_of_specification(chain)
        await request(chain)
        await assess(chain)
        assert await chain.sign(QP, assessments(chain)[-1]) == []
        await refused("RELEASE_BEFORE_QC", chain.release())

    async def test_a_superseded_assessment_cannot_be_accepted(self):
        chain = Chain()
        await out_of_specification(chain)
        await request(chain)
        await assess(chain)
        first = assessments(chain)[-1]
        await assess(chain)  # a revised assessment
        await refused("ASSESSMENT_SUPERSEDED", chain.sign(PHYSICIAN, first))
        assert len(await chain.sign(PHYSICIAN, assessments(chain)[-1])) == 2

    @pytest.mark.parametrize("who, units, org, code", [
        (NURSE, (B0,), None, "ROLE_NOT_PERMITTED"),  # the treating physician requests
        (MONZA, (B0,), None, "ROLE_NOT_PERMITTED"),  # another centre's nurse
        (LOADER, (B0,), "HSG-MONZA", "NOT_HOLDER"),  # for another centre than the subject's
        (PHYSICIAN, (A0,), None, "NOT_OUT_OF_SPECIFICATION"),  # within specification
        (PHYSICIAN, (COI + "C0",), None, "UNKNOWN_UNIT"),
        (QP, (B0,), None, "ROLE_NOT_PERMITTED"),  # the facility does not ask itself
    ])
    async def test_request_refusals(self, who, units, org, code):
        chain = Chain()
        await out_of_specification(chain)
        await refused(code, request(chain, who, units, org))

    @pytest.mark.parametrize("who, org, code", [
        (LOADER, OTHER_FACILITY, "NOT_HOLDER"),  # another facility than the maker
        (ROME, None, "ROLE_NOT_PERMITTED"),
        (ANALYST, None, "ROLE_NOT_PERMITTED"),  # the qualified person assesses
    ])
    async def test_assessment_refusals(self, who, org, code):
        chain = Chain()
        await out_of_specification(chain)
        await request(chain)
        await refused(code, assess(chain, who, org))

    async def test_no_assessment_without_a_request(self):
        chain = Chain()
        await out_of_specification(chain)
        await refused("NO_EXCEPTIONAL_RELEASE_REQUEST", assess(chain))

    async def test_no_request_once_released(self):
        chain = Chain()
        await out_of_specification(chain)
        await chain.step(OPERATOR, B0, CustodyStep.DISCARDED, reason="out of specification")
        await chain.release()
        await refused("PRODUCT_ALREADY_RELEASED", request(chain))

    async def test_the_qp_closes_the_sponsors_notification_once(self):
        chain = Chain()
        await out_of_specification(chain)
        notify = RecordSponsorNotified(coi_id=COI, org_id=FACILITY, reference="SPONSOR-OOS-2025-014",
                                       notified_at=T0 + timedelta(days=20))
        await refused("NO_OPEN_NOTIFICATION", chain.bus.send(notify, principal=QP))
        await request(chain)
        await assess(chain)
        await chain.sign(PHYSICIAN, assessments(chain)[-1])
        await refused("ROLE_NOT_PERMITTED", chain.bus.send(notify, principal=ANALYST))
        await refused("STEP_BEFORE_PREVIOUS", chain.bus.send(notify.model_copy(update={"notified_at": T0}),
                                                             principal=QP))

        await chain.bus.send(notify, principal=QP)

        assert isinstance(chain.streams.events(coi_stream(COI))[-1], SponsorNotified)
        await refused("NO_OPEN_NOTIFICATION", chain.bus.send(notify, principal=QP))

