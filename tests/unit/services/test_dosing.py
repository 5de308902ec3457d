"""Lymphodepletion and the cell dose at infusion (issue 10 item 4; services/infusion/domain/dosing.py),
through infusion's bootstrap with fakes, by the bundled programme definitions of the seeds:
seed 003's regimen (fludarabine 30 mg/m2/day D-5/-4/-3, cyclophosphamide 500 mg/m2/day D-4/-3)
and dose (1 x 10^6 CAR T cells/kg); seed 002's (fludarabine 25 mg/m2 x 3 days and
cyclophosphamide 900 mg/m2; no dose stated); seed 001's (no conditioning, two dose levels).
Doses are worked by hand below: BSA by Mosteller, daily doses rounded half-up to 1 mg."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from contracts.commands import PrescribeCellDose, PrescribeLymphodepletion, RecordInfusion, RecordLymphodepletionDose
from contracts.custody import CustodyState as S
from contracts.events import (
    BedsideCheckRecorded,
    CellDosePrescribed,
    LymphodepletionAdministered,
    LymphodepletionCompleted,
    LymphodepletionPrescribed,
    ProductInfused,
)
from infra.tooling.programmes import bundled
from services.infusion import bootstrap
from services.infusion.domain.bedside import UnitView, bedside_stream
from services.infusion.domain.dosing import Treatment, readiness
from services.infusion.domain.model import InfusionHistory, ReleasedProduct, infusion_stream
from services.kernel.aggregate import rebuild
from tests.unit.services.fakes import (
    IMPORTER,
    Bus,
    FakePolicies,
    FakeReleasedProducts,
    FakeStreams,
    FakeSubjectCentres,
    FakeTreatments,
    FakeUnits,
)
from tests.unit.services.test_bedside import refused

DEFINITIONS = {d.programme_id: d for d in bundled()}
SUBJECT, OTHER, CENTRE = "S-0123456789AB", "S-BA9876543210", "DE-ER-01"
COI = "W0001250000011"
A0, B0 = COI + "A0", COI + "B0"
CET = timezone(timedelta(hours=1))
DAY0 = date(2025, 4, 1)  # the planned infusion
PRESCRIBED = datetime(2025, 3, 25, 10, tzinfo=CET)


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CET)


def treatment(programme_id: str, subject: str = SUBJECT) -> Treatment:
    return Treatment(subject, programme_id, 1, DEFINITIONS[programme_id].dosing())


class Ward:
    """Infusion with fakes: the subject enrolled under `programme_id`, a released product of
    two bags (2.5 x 10^6 viable cells/mL, 68 mL), A0 prepared at the centre."""

    def __init__(self, programme_id: str = "CART-CD19-AUTOIMMUNE", *, content: bool = True) -> None:
        self.streams = FakeStreams()
        self.units = FakeUnits(UnitView(A0, COI, SUBJECT, S.PREPARED, CENTRE),
                               UnitView(B0, COI, SUBJECT, S.PREPARED, CENTRE))
        product = ReleasedProduct(COI, SUBJECT, at(DAY0 - timedelta(days=10)), *((2.5e6, 68.0) if content else ()))
        self.bus = Bus(bootstrap.spec, acting=IMPORTER, policies=FakePolicies(),
                       treatments=FakeTreatments(treatment(programme_id)), streams=self.streams, units=self.units,
                       products=FakeReleasedProducts(product), subject_centres=FakeSubjectCentres({SUBJECT: CENTRE}))

    async def prescribe(self, **changes) -> LymphodepletionPrescribed:
        await self.bus.send(PrescribeLymphodepletion(**{
            "subject_id": SUBJECT, "height_cm": 170.0, "weight_kg": 65.0, "planned_infusion_on": DAY0,
            "prescribed_at": PRESCRIBED, **changes}))
        return self.events(LymphodepletionPrescribed)[-1]

    async def give(self, agent: str, day: date, dose_mg: float, **changes) -> None:
        await self.bus.send(RecordLymphodepletionDose(subject_id=SUBJECT, agent=agent, dose_mg=dose_mg,
                                                      administered_at=at(day), **changes))

    async def give_all(self, prescription: LymphodepletionPrescribed) -> None:
        for d in prescription.doses:
            await self.give(d.agent, d.on, d.dose_mg)

    async def dose(self, **changes) -> CellDosePrescribed:
        await self.bus.send(PrescribeCellDose(**{"subject_id": SUBJECT, "unit_id": A0, "weight_kg": 65.0,
                                                 "tolerance_fraction": 0.2, "prescribed_at": PRESCRIBED, **changes}))
        return self.events(CellDosePrescribed)[-1]

    def events(self, kind: type) -> list:
        return [e for e in self.streams.events(infusion_stream(SUBJECT)) if isinstance(e, kind)]

    def history(self) -> InfusionHistory:
        return rebuild(InfusionHistory(SUBJECT), self.streams.events(infusion_stream(SUBJECT)))

    def reasons(self, when: datetime, volume_ml: float | None = None,
                programme_id: str = "CART-CD19-AUTOIMMUNE") -> list[str]:
        return [r.code for r in readiness(self.history(), treatment(programme_id), A0, when, volume_ml)]


class TestLymphodepletionPrescription:
    async def test_seed_003_regimen_for_170_cm_and_65_kg(self):
        # BSA = sqrt(170 x 65 / 3600) = 1.7520 m2; fludarabine 30 x 1.752 = 52.56 -> 53 mg on days -5, -4, -3;
        # cyclophosphamide 500 x 1.752 = 876.0 -> 876 mg on days -4, -3; day 0 = 1 April 2025
        p = await Ward().prescribe()
        assert p.bsa_m2 == pytest.approx(1.7520, abs=1e-4) and p.bsa_formula == "mosteller"
        assert [(d.on, d.study_day, d.agent, d.dose_mg) for d in p.doses] == [
            (date(2025, 3, 27), -5, "fludarabine", 53.0),
            (date(2025, 3, 28), -4, "fludarabine", 53.0),
            (date(2025, 3, 28), -4, "cyclophosphamide", 876.0),
            (date(2025, 3, 29), -3, "fludarabine", 53.0),
            (date(2025, 3, 29), -3, "cyclophosphamide", 876.0),
        ]
        assert (p.programme_id, p.programme_version, p.infusion_window_days) == ("CART-CD19-AUTOIMMUNE", 1, (3, 14))

    async def test_seed_002_regimen_by_du_bois(self):
        # BSA = 0.007184 x 65^0.425 x 170^0.725 = 1.7536 m2; fludarabine 25 x 1.7536 = 43.84 -> 44 mg on
        # days -4, -3, -2; cyclophosphamide 900 x 1.7536 = 1578.24 -> 1578 mg on day -2
        p = await Ward("CART-BALL-RR").prescribe(bsa_formula="dubois")
        assert [(d.study_day, d.agent, d.dose_mg) for d in p.doses] == [
            (-4, "fludarabine", 44.0), (-3, "fludarabine", 44.0), (-2, "fludarabine", 44.0),
            (-2, "cyclophosphamide", 1578.0)]

    async def test_a_programme_without_conditioning_refuses_it(self):
        # seed 001: "No conditioning therapies will be administered before the infusion"
        assert "NK-PHALL-P1" in await refused("NO_LYMPHODEPLETION", Ward("NK-PHALL-P1").prescribe())

    async def test_a_subject_enrolled_before_programmes(self):
        await refused("TREATMENT_UNKNOWN", Ward().prescribe(subject_id=OTHER))

    async def test_a_schedule_that_starts_before_the_prescription(self):
        reason = await refused("SCHEDULE_IN_THE_PAST", Ward().prescribe(planned_infusion_on=date(2025, 3, 29)))
        assert "2025-03-24" in reason

    async def test_a_height_the_rule_cannot_take(self):
        assert "height_cm" in await refused("INVALID_PRESCRIPTION", Ward().prescribe(height_cm=20.0))


class TestAdministrations:
    async def test_the_last_administration_completes_the_regimen_with_the_infusion_window(self):
        ward = Ward()
        p = await ward.prescribe()
        await ward.give_all(p)
        assert len(ward.events(LymphodepletionAdministered)) == 5
        [done] = ward.events(LymphodepletionCompleted)
        # seed 003's window: 3 to 14 days after the last administration (29 March)
        assert (done.completed_on, done.window.earliest, done.window.latest) == (
            date(2025, 3, 29), date(2025, 4, 1), date(2025, 4, 12))

    async def test_an_agent_on_a_day_it_is_not_scheduled(self):
        ward = Ward()
        await ward.prescribe()
        reason = await refused("ADMINISTRATION_NOT_SCHEDULED", ward.give("cyclophosphamide", date(2025, 3, 27), 876.0))
        assert "2025-03-28 (day -4), 2025-03-29 (day -3)" in reason

    async def test_an_agent_not_in_the_regimen(self):
        ward = Ward()
        await ward.prescribe()
        assert "bendamustine" in await refused("ADMINISTRATION_NOT_SCHEDULED",
                                               ward.give("bendamustine", date(2025, 3, 27), 90.0))

    async def test_the_same_administration_twice(self):
        ward = Ward()
        await ward.prescribe()
        await ward.give("fludarabine", date(2025, 3, 27), 53.0)
        await refused("ALREADY_ADMINISTERED", ward.give("Fludarabine", date(2025, 3, 27), 53.0))

    async def test_a_dose_other_than_prescribed_is_recorded_only_with_its_reason(self):
        ward = Ward()
        await ward.prescribe()
        reason = await refused("DOSE_DEVIATION_UNEXPLAINED", ward.give("fludarabine", date(2025, 3, 27), 45.0))
        assert "45 mg differs from the prescribed 53 mg (-15.1%)" in reason
        await ward.give("fludarabine", date(2025, 3, 27), 45.0, deviation_reason="creatinine clearance 55 mL/min")
        [given] = ward.events(LymphodepletionAdministered)
        assert (given.dose_mg, given.prescribed_mg, given.deviation_reason) == (45.0, 53.0,
                                                                               "creatinine clearance 55 mL/min")

    async def test_nothing_is_given_without_a_prescription(self):
        await refused("LYMPHODEPLETION_NOT_PRESCRIBED", Ward().give("fludarabine", date(2025, 3, 27), 53.0))

    async def test_a_new_prescription_supersedes_the_last_and_its_administrations(self):
        ward = Ward()
        first = await ward.prescribe()
        await ward.give("fludarabine", date(2025, 3, 27), 53.0)
        later = await ward.prescribe(planned_infusion_on=date(2025, 4, 8), prescribed_at=at(date(2025, 3, 30)))
        assert later.prescription_id != first.prescription_id and ward.history().administered == []
        await refused("ADMINISTRATION_NOT_SCHEDULED", ward.give("fludarabine", date(2025, 3, 28), 53.0))
        await ward.give("fludarabine", date(2025, 4, 3), 53.0)


class TestCellDosePrescription:
    async def test_seed_003_dose_per_kg_gives_the_volume_of_the_bag(self):
        # 1 x 10^6 cells/kg x 65 kg = 6.5 x 10^7 cells; at 2.5 x 10^6 /mL -> 26.0 mL of the 68 mL bag
        d = await Ward().dose()
        assert (d.dose_level, d.cells_per_kg, d.target_cells, d.volume_ml, d.planned_cells) == (
            1, 1e6, 6.5e7, 26.0, 6.5e7)
        assert (d.viable_cells_per_ml, d.bag_volume_ml, d.tolerance_fraction) == (2.5e6, 68.0, 0.2)

    async def test_the_tolerance_where_the_programme_states_none(self):
        assert "tolerance_fraction" in await refused("TOLERANCE_NOT_STATED", Ward().dose(tolerance_fraction=None))

    async def test_a_dose_other_than_the_protocols(self):
        reason = await refused("DOSE_NOT_PER_PROTOCOL", Ward().dose(cells_per_kg=2e6))
        assert "1e+06 cells/kg" in reason

    async def test_a_dose_per_kg_needs_the_weight(self):
        await refused("WEIGHT_REQUIRED", Ward().dose(weight_kg=None))

    async def test_more_than_the_bag_holds(self):
        # 1 x 10^6/kg x 180 kg = 1.8 x 10^8 cells = 72 mL > 68 mL
        assert "exceeds bag_volume_ml 68" in await refused("VOLUME_EXCEEDS_BAG", Ward().dose(weight_kg=180.0))

    async def test_a_level_without_a_stated_dose_takes_the_prescribed_one(self):
        # seed 002 states no dose: the physician prescribes a flat 1 x 10^8 cells -> 40.0 mL
        ward = Ward("CART-BALL-RR")
        await refused("DOSE_NOT_STATED", ward.dose())
        d = await ward.dose(flat_cells=1e8, weight_kg=None, tolerance_fraction=0.1)
        assert (d.flat_cells, d.cells_per_kg, d.weight_kg, d.volume_ml) == (1e8, None, None, 40.0)

    async def test_a_programme_of_several_levels_needs_the_subjects(self):
        ward = Ward("NK-PHALL-P1")
        assert "[1, 2]" in await refused("DOSE_LEVEL_REQUIRED", ward.dose(cells_per_kg=1e7))
        await refused("UNKNOWN_DOSE_LEVEL", ward.dose(cells_per_kg=1e7, dose_level=3))
        assert (await ward.dose(cells_per_kg=1e5, dose_level=2)).dose_level == 2

    async def test_a_bag_whose_release_gave_no_content(self):
        await refused("UNIT_CONTENT_UNKNOWN", Ward(content=False).dose())

    async def test_another_subjects_bag(self):
        ward = Ward()
        ward.units.units[A0] = UnitView(A0, COI, OTHER, S.PREPARED, CENTRE)
        await refused("CHAIN_OF_IDENTITY_MISMATCH", ward.dose())


async def ready_ward() -> tuple[Ward, CellDosePrescribed]:
    ward = Ward()
    await ward.give_all(await ward.prescribe())
    return ward, await ward.dose()


class TestReadiness:
    """What the bedside gate and the infusion add to the unit's judgement (domain/bedside.py)."""

    async def test_ready_on_the_protocols_day_0(self):
        ward, _ = await ready_ward()
        assert ward.reasons(at(DAY0)) == []

    @pytest.mark.parametrize(("day", "expected"), [
        (date(2025, 3, 31), ["OUTSIDE_INFUSION_WINDOW"]),  # 2 days after the last administration
        (date(2025, 4, 12), []),  # 14 days after: the last day of the window
        (date(2025, 4, 13), ["OUTSIDE_INFUSION_WINDOW"]),
    ])
    async def test_the_infusion_window(self, day, expected):
        ward, _ = await ready_ward()
        assert ward.reasons(at(day)) == expected

    async def test_the_day_is_the_centres_not_utc(self):
        # 00:30 CET on 13 April is still 12 April in UTC: outside the window at the centre
        ward, _ = await ready_ward()
        assert ward.reasons(datetime(2025, 4, 12, 23, 30, tzinfo=timezone.utc)) == ["OUTSIDE_INFUSION_WINDOW"]

    async def test_before_the_regimen_is_complete(self):
        ward = Ward()
        p = await ward.prescribe()
        await ward.give("fludarabine", date(2025, 3, 27), 53.0)
        await ward.dose()
        [reason] = readiness(ward.history(), treatment("CART-CD19-AUTOIMMUNE"), A0, at(DAY0))
        assert reason.code == "LYMPHODEPLETION_INCOMPLETE" and reason.reason.startswith("1 of 5 administrations")
        assert "cyclophosphamide (day -3) on 2025-03-29" in reason.reason and len(p.doses) == 5

    async def test_without_lymphodepletion_or_a_prescription(self):
        assert Ward().reasons(at(DAY0)) == ["LYMPHODEPLETION_INCOMPLETE", "NOT_PRESCRIBED"]

    async def test_a_programme_without_conditioning_needs_only_the_prescription(self):
        ward = Ward("NK-PHALL-P1")
        assert ward.reasons(at(DAY0), programme_id="NK-PHALL-P1") == ["NOT_PRESCRIBED"]
        await ward.dose(cells_per_kg=1e5, dose_level=1)
        assert ward.reasons(at(DAY0), programme_id="NK-PHALL-P1") == []

    @pytest.mark.parametrize(("volume_ml", "expected"), [
        (26.0, []),  # the prescribed volume
        (21.0, []),  # 5.25 x 10^7 cells: -19.2 %, within 20 %
        (20.0, ["DOSE_OUT_OF_TOLERANCE"]),  # 5.0 x 10^7: -23.1 %
        (31.2, []),  # 7.8 x 10^7: +20 %, the boundary is inside
        (32.0, ["DOSE_OUT_OF_TOLERANCE"]),  # 8.0 x 10^7: +23.1 %
    ])
    async def test_the_volume_prepared_against_the_prescription(self, volume_ml, expected):
        ward, _ = await ready_ward()
        assert ward.reasons(at(DAY0), volume_ml) == expected

    async def test_a_subject_enrolled_before_programmes_has_nothing_to_obey(self):
        assert readiness(InfusionHistory(SUBJECT), None, A0, at(DAY0)) == []


class TestInfusionOfThePrescribedDose:
    async def go(self, ward: Ward) -> uuid.UUID:
        check = BedsideCheckRecorded(check_id=uuid.uuid4(), unit_id=A0, coi_id=COI, subject_id=SUBJECT,
                                     centre_id=CENTRE, verified_by=["nurse.a", "physician.a"], go=True,
                                     checked_at=at(DAY0, 8))
        ward.streams.streams[bedside_stream(A0)] = [check]
        return check.check_id

    async def infuse(self, ward: Ward, **changes) -> None:
        await ward.bus.send(RecordInfusion(**{"subject_id": SUBJECT, "coi_id": COI, "infused_at": at(DAY0),
                                              "unit_id": A0, "bedside_check_id": await self.go(ward), **changes}))

    async def test_the_infusion_records_the_prescription_the_volume_and_the_cells(self):
        ward, d = await ready_ward()
        await self.infuse(ward)
        [infused] = ward.events(ProductInfused)
        assert (infused.cell_dose_prescription_id, infused.volume_ml, infused.cells_infused) == (
            d.prescription_id, 26.0, 6.5e7)

    async def test_a_volume_outside_the_tolerance_is_refused(self):
        ward, _ = await ready_ward()
        reason = await refused("BEDSIDE_NO_GO", self.infuse(ward, volume_ml=10.0))
        assert "DOSE_OUT_OF_TOLERANCE" in reason and ward.events(ProductInfused) == []

    async def test_and_recorded_when_the_infusion_says_why(self):
        ward, _ = await ready_ward()
        await self.infuse(ward, volume_ml=10.0, dose_deviation_reason="stopped for a grade 2 infusion reaction")
        [infused] = ward.events(ProductInfused)
        assert (infused.volume_ml, infused.cells_infused, infused.dose_deviation_reason) == (
            10.0, 2.5e7, "stopped for a grade 2 infusion reaction")

    async def test_before_the_regimen_is_complete_the_infusion_is_refused(self):
        ward = Ward()
        await ward.prescribe()
        await ward.dose()
        assert "LYMPHODEPLETION_INCOMPLETE" in await refused("BEDSIDE_NO_GO", self.infuse(ward))

    async def test_no_lymphodepletion_after_the_infusion(self):
        ward, _ = await ready_ward()
        await self.infuse(ward)
        await refused("LYMPHODEPLETION_AFTER_INFUSION", ward.prescribe(prescribed_at=at(DAY0, 12)))
        await refused("ALREADY_INFUSED", ward.dose())
