"""The second infusion (issue 10 item 5; seed 000): at the day-28 assessment the programme's
policy decides from the three readings whether a second infusion is indicated, recorded with
every reason; a second infusion the latest decision did not indicate is refused (before, a
subject in MRD-negative complete remission at day 28 was infused again without objection).
Thresholds are seed 000's: morphology and flow < 5 %, molecular < 0.01 % is a response."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import RecordInfusion
from contracts.errors import CommandRefused
from contracts.events import (
    ResponseAssessed,
    ResponseAssessmentCorrected,
    MrdStatus,
    ResponseCategory,
    SecondInfusionDecided,
    SubjectEnrolled,
)
from infra.tooling.programmes import bundled
from services.infusion import bootstrap
from services.infusion.domain.model import ReleasedProduct, infusion_stream
from services.infusion.domain.second_infusion import decide
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

SUBJECT, CENTRE = "S-0123456789AB", "OSR-MILANO"
FIRST, SECOND = "W0001250000011", "W000125000002*"
POLICY = next(d for d in bundled() if d.programme_id == "CARCIK-CD19-P2").second_infusion
INFUSED = datetime(2025, 3, 27, 10, tzinfo=timezone.utc)


def day28(morphology: float, flow: float | None, molecular: float | None, *, day: int = 28,
          corrected: bool = False) -> ResponseAssessed:
    cls = ResponseAssessmentCorrected if corrected else ResponseAssessed
    extra = {"reason": "flow cytometry re-read"} if corrected else {}
    return cls(subject_id=SUBJECT, assessed_on=date(2025, 4, 24), study_day=day, marrow_blasts_percent=morphology,
               flow_mrd_percent=flow, molecular_mrd_percent=molecular,
               response_category=ResponseCategory.CR, mrd_status=MrdStatus.NEGATIVE, morphologic_response=True,
               **extra)


class TestTheDecision:
    @pytest.mark.parametrize("readings, indicated, says", [
        ((2.0, 0.0, 0.0), False, "no residual disease by molecular MRD: 0% < 0.01%"),  # MRD-negative CR
        ((12.0, 10.0, 1.0), True, "residual disease by morphology: 12% >= 5%"),
        ((2.0, 0.5, 0.05), True, "residual disease by molecular MRD: 0.05% >= 0.01%"),  # molecular only
        ((2.0, 4.99, 0.0), False, "no residual disease by flow cytometry: 4.99% < 5%"),
        ((5.0, None, None), True, "residual disease by morphology: 5% >= 5%"),  # at the threshold: residual
    ])
    def test_from_the_three_readings_of_seed_000(self, readings, indicated, says):
        decided = decide(day28(*readings), "CARCIK-CD19-P2", 1, POLICY)
        assert decided.indicated is indicated and says in decided.reasons
        assert any("not yet recorded" in r for r in decided.reasons)  # toxicity: honest about what is missing

    def test_an_assessment_of_another_day_decides_nothing(self):
        assert decide(day28(12.0, 10.0, 1.0, day=14), "CARCIK-CD19-P2", 1, POLICY) is None


def enrolled(policy: dict | None = POLICY) -> SubjectEnrolled:
    return SubjectEnrolled(subject_id=SUBJECT, programme_id="CARCIK-CD19-P2" if policy else "NK-PHALL-P1",
                           centre_id=CENTRE, enrolled_on=date(2025, 3, 3), programme_version=1,
                           second_infusion=policy)


class Ward:
    def __init__(self) -> None:
        self.streams = FakeStreams()
        self.bus = Bus(bootstrap.spec, acting=IMPORTER, streams=self.streams, policies=FakePolicies(), treatments=FakeTreatments(),
                       products=FakeReleasedProducts(*(ReleasedProduct(c, SUBJECT, INFUSED - timedelta(days=3))
                                                       for c in (FIRST, SECOND))),
                       subject_centres=FakeSubjectCentres(), units=FakeUnits())

    async def infuse(self, coi: str, days: int = 0) -> None:
        await self.bus.send(RecordInfusion(subject_id=SUBJECT, coi_id=coi, infused_at=INFUSED + timedelta(days=days)))

    def decisions(self) -> list[SecondInfusionDecided]:
        return [e for e in self.streams.events(infusion_stream(SUBJECT)) if isinstance(e, SecondInfusionDecided)]


class TestTheGate:
    async def test_a_second_infusion_after_an_mrd_negative_remission_is_refused(self):
        ward = Ward()
        await ward.bus.send(enrolled())
        await ward.infuse(FIRST)
        await ward.bus.send(day28(2.0, 0.0, 0.0))
        with pytest.raises(CommandRefused) as refused:
            await ward.infuse(SECOND, days=35)
        assert refused.value.code == "SECOND_INFUSION_NOT_INDICATED" and "no residual disease" in refused.value.reason
        assert [d.indicated for d in ward.decisions()] == [False]

    async def test_residual_disease_at_day_28_indicates_it_and_a_correction_decides_again(self):
        ward = Ward()
        await ward.bus.send(enrolled())
        await ward.infuse(FIRST)
        await ward.bus.send(day28(2.0, 0.0, 0.0))
        await ward.bus.send(day28(2.0, 0.0, 0.3, corrected=True))  # the molecular reading corrected
        await ward.infuse(SECOND, days=35)
        assert [d.indicated for d in ward.decisions()] == [False, True]
        assert [e.infusion_number for e in ward.streams.events(infusion_stream(SUBJECT))
                if type(e).__name__ == "ProductInfused"] == [1, 2]

    async def test_before_day_28_is_decided_no_second_infusion(self):
        ward = Ward()
        await ward.bus.send(enrolled())
        await ward.infuse(FIRST)
        with pytest.raises(CommandRefused) as refused:
            await ward.infuse(SECOND, days=10)
        assert refused.value.code == "SECOND_INFUSION_NOT_DECIDED"

    async def test_a_programme_without_the_policy_is_not_gated(self):  # seed 001: several infusions
        ward = Ward()
        await ward.bus.send(enrolled(policy=None))
        await ward.infuse(FIRST)
        await ward.bus.send(day28(2.0, 0.0, 0.0))
        await ward.infuse(SECOND, days=35)
        assert ward.decisions() == []


def test_the_decision_is_on_the_subjects_timeline():
    from tests.unit.services.test_projection import fold_all

    decided = decide(day28(2.0, 0.0, 0.0), "CARCIK-CD19-P2", 1, POLICY)
    view = fold_all([(decided, datetime(2025, 4, 24, tzinfo=timezone.utc))])
    assert any(t.summary.startswith("second infusion not indicated at day 28: no residual disease by morphology")
               for t in view.timeline)
