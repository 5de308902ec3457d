"""Infusion's ReleasedProducts port: PgReleasedProducts and FakeReleasedProducts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.infusion.application.ports import Release
from services.infusion.domain.model import ReleasedProduct

CET = timezone(timedelta(hours=1))
PRODUCT = ReleasedProduct(coi_id="W0001250000011", subject_id="S-0123456789AB",
                          released_at=datetime(2024, 3, 24, 12, 0, tzinfo=CET))


class ReleasedProductsContract:
    async def test_a_product_never_released_is_unknown(self, products):
        assert await products.get("W0001250000011") is None

    async def test_a_released_product_is_known_by_its_coi_with_its_subject_and_release_time(self, products):
        await products.add(PRODUCT, "LOT-24-017")

        assert await products.get("W0001250000011") == PRODUCT

    async def test_a_release_learnt_twice_is_kept_as_first_learnt(self, products):
        await products.add(PRODUCT, "LOT-24-017")

        await products.add(ReleasedProduct("W0001250000011", "S-BA9876543210", PRODUCT.released_at), "LOT-24-099")

        assert await products.get("W0001250000011") == PRODUCT

    async def test_a_release_keeps_its_measured_content(self, products):
        measured = ReleasedProduct("W0001250000011", "S-0123456789AB", PRODUCT.released_at, 2.5e6, 68.0)
        await products.add(measured, "LOT-24-017")

        assert (await products.get("W0001250000011")).viable_cells_per_ml == 2.5e6
        assert await products.get("W0001250000011") == measured

    async def test_releases_added_together_are_kept_as_first_learnt_also_among_themselves(self, products):
        other = ReleasedProduct("W000125000002*", "S-BA9876543210", PRODUCT.released_at)
        await products.add_many([Release(PRODUCT, "LOT-24-017"),
                                 Release(ReleasedProduct("W0001250000011", "S-BA9876543210", PRODUCT.released_at),
                                         "LOT-24-099"),
                                 Release(other, "LOT-24-100")])

        assert (await products.get("W0001250000011"), await products.get("W000125000002*")) == (PRODUCT, other)


# --- Units (PgUnits, FakeUnits) ------------------------------------------------------------
from contracts.custody import CustodyState  # noqa: E402
from contracts.events import CertifiedUnit  # noqa: E402
from services.infusion.domain.bedside import UnitView  # noqa: E402

A0 = UnitView("W0001250000011A0", "W0001250000011", "S-0123456789AB", CustodyState.AWAITING_QC, "GMP-PAVIA")
B0 = UnitView("W0001250000011B0", "W0001250000011", "S-0123456789AB", CustodyState.AWAITING_QC, "GMP-PAVIA")
EXPIRES = datetime(2025, 10, 1, 9, 0, tzinfo=timezone.utc)
PREPARED_AT = datetime(2025, 4, 1, 8, 30, tzinfo=CET)


class UnitsContract:
    async def test_a_unit_never_registered_is_unknown_and_its_coi_has_none(self, units):
        assert (await units.get(A0.unit_id), await units.of_coi(A0.coi_id)) == (None, [])

    async def test_registered_units_are_known_by_id_and_by_coi_in_order(self, units):
        await units.register([B0, A0])
        assert await units.get(A0.unit_id) == A0 and await units.of_coi(A0.coi_id) == [A0, B0]

    async def test_a_unit_registered_again_is_kept_as_first_registered(self, units):
        await units.register([A0])
        await units.register([UnitView(A0.unit_id, A0.coi_id, "S-BA9876543210", CustodyState.RELEASED, "X")])
        assert await units.get(A0.unit_id) == A0

    async def test_a_step_moves_a_unit_and_a_receipt_changes_its_holder(self, units):
        await units.register([A0])
        await units.move(A0.unit_id, CustodyState.QC_COMPLETE)
        assert (await units.get(A0.unit_id)).holder == "GMP-PAVIA"
        await units.move(A0.unit_id, CustodyState.RECEIVED, "OSR-MILANO")
        moved = await units.get(A0.unit_id)
        assert (moved.state, moved.holder) == (CustodyState.RECEIVED, "OSR-MILANO")

    async def test_out_of_specification_stays_flagged(self, units):
        await units.register([A0])
        await units.move(A0.unit_id, CustodyState.OUT_OF_SPECIFICATION)
        await units.move(A0.unit_id, CustodyState.DISCARDED)
        assert (await units.get(A0.unit_id)).out_of_specification

    async def test_a_release_releases_the_cois_units_that_passed_qc_only(self, units):
        await units.register([A0, B0])
        await units.move(A0.unit_id, CustodyState.QC_COMPLETE)
        await units.release(A0.coi_id)
        assert [u.state for u in await units.of_coi(A0.coi_id)] == [CustodyState.RELEASED, CustodyState.AWAITING_QC]

    async def test_a_unit_is_quarantined_and_released_from_quarantine(self, units):
        await units.register([A0, B0])
        await units.quarantine(A0.unit_id, True)
        assert [u.quarantined for u in await units.of_coi(A0.coi_id)] == [True, False]
        await units.quarantine(A0.unit_id, False)
        assert not (await units.get(A0.unit_id)).quarantined

    async def test_a_unit_is_kept_with_its_limits_of_use_its_preparation_and_how_it_was_released(self, units):
        full = UnitView(A0.unit_id, A0.coi_id, A0.subject_id, CustodyState.PREPARED, "OSR-MILANO", True, False,
                        EXPIRES, 60, PREPARED_AT, True)
        await units.register([full])
        assert await units.get(A0.unit_id) == full

    async def test_qc_results_within_specification_complete_its_qc_and_give_its_limits(self, units):
        await units.register([A0])
        await units.judged(A0.unit_id, within_specification=True, expires_at=EXPIRES, use_within_minutes=60)
        judged = await units.get(A0.unit_id)
        assert (judged.state, judged.out_of_specification, judged.expires_at, judged.use_within_minutes) == (
            CustodyState.QC_COMPLETE, False, EXPIRES, 60)

    async def test_qc_results_out_of_specification_flag_it_and_no_release_record_releases_it(self, units):
        await units.register([A0])
        await units.judged(A0.unit_id, within_specification=False, expires_at=None, use_within_minutes=None)
        await units.release(A0.coi_id)
        judged = await units.get(A0.unit_id)
        assert (judged.state, judged.out_of_specification, judged.released_out_of_specification) == (
            CustodyState.OUT_OF_SPECIFICATION, True, False)

    async def test_a_preparation_keeps_its_time_and_later_steps_keep_it_too(self, units):
        await units.register([A0])
        await units.move(A0.unit_id, CustodyState.PREPARED, prepared_at=PREPARED_AT)
        await units.move(A0.unit_id, CustodyState.DISCARDED)
        assert (await units.get(A0.unit_id)).prepared_at == PREPARED_AT

    async def test_a_certification_releases_the_units_it_names_with_their_limits_and_flags(self, units):
        c0 = UnitView(A0.coi_id + "C0", A0.coi_id, A0.subject_id, CustodyState.QC_COMPLETE, "GMP-PAVIA")
        await units.register([A0, B0, c0])
        await units.judged(A0.unit_id, within_specification=True, expires_at=None, use_within_minutes=None)
        await units.judged(B0.unit_id, within_specification=False, expires_at=None, use_within_minutes=None)
        await units.certify([CertifiedUnit(unit_id=A0.unit_id, expires_at=EXPIRES, use_within_minutes=60),
                             CertifiedUnit(unit_id=B0.unit_id, out_of_specification=True, expires_at=EXPIRES)])
        assert [(u.state, u.out_of_specification, u.released_out_of_specification, u.expires_at,
                 u.use_within_minutes) for u in await units.of_coi(A0.coi_id)] == [
            (CustodyState.RELEASED, False, False, EXPIRES, 60), (CustodyState.RELEASED, True, True, EXPIRES, None),
            (CustodyState.QC_COMPLETE, False, False, None, None)]

    async def test_a_certification_learnt_again_leaves_a_unit_that_moved_on_where_it_is(self, units):
        await units.register([A0])
        await units.judged(A0.unit_id, within_specification=True, expires_at=None, use_within_minutes=None)
        certified = [CertifiedUnit(unit_id=A0.unit_id, expires_at=EXPIRES)]
        await units.certify(certified)
        await units.move(A0.unit_id, CustodyState.IN_TRANSIT)
        await units.certify(certified)
        assert (await units.get(A0.unit_id)).state == CustodyState.IN_TRANSIT


from services.infusion.application.ports import SubjectPolicy  # noqa: E402

POLICY = {"morphology_threshold_pct": 5.0, "blocking_grade": 3}


class PoliciesContract:
    async def test_a_subject_without_a_policy_has_none(self, policies):
        assert await policies.policy_of("S-0123456789AB") is None

    async def test_a_subjects_policy_is_kept_as_first_learnt(self, policies):
        await policies.add_many([SubjectPolicy("S-0123456789AB", "CARCIK-CD19-P2", 1, POLICY),
                                 SubjectPolicy("S-BA9876543210", "CARCIK-CD19-P2", None, {"blocking_grade": 4})])
        await policies.add_many([SubjectPolicy("S-0123456789AB", "CARCIK-CD19-P2", 2, {})])  # learnt again

        assert await policies.policy_of("S-0123456789AB") == SubjectPolicy("S-0123456789AB", "CARCIK-CD19-P2", 1,
                                                                           POLICY)
        assert (await policies.policy_of("S-BA9876543210")).programme_version is None


# --- Treatments (PgTreatments, FakeTreatments) ----------------------------------------------
from contracts.programmes import DoseLevel, Dosing  # noqa: E402
from services.infusion.domain.dosing import Treatment  # noqa: E402

DOSING = Dosing(title="CD19 CAR-T", lymphodepletion={"agents": [{"agent": "fludarabine", "mg_per_m2_per_day": 30.0,
                                                                 "study_days": [-5, -4, -3]}],
                                                      "infusion_window_days": [3, 14]},
                dose_levels=[DoseLevel(level=1, cells_per_kg=1e6)], cell_dose_tolerance_fraction=0.2)


class TreatmentsContract:
    async def test_a_subject_enrolled_before_programmes_has_none(self, treatments):
        assert await treatments.of("S-0123456789AB") is None

    async def test_a_subjects_treatment_is_kept_as_first_learnt_with_its_sections(self, treatments):
        first = Treatment("S-0123456789AB", "CART-CD19-AUTOIMMUNE", 1, DOSING)
        await treatments.add_many([first, Treatment("S-BA9876543210", "CART-CD19-AUTOIMMUNE", 2, DOSING)])
        await treatments.add_many([Treatment("S-0123456789AB", "CART-CD19-AUTOIMMUNE", 3,
                                             DOSING.model_copy(update={"cell_dose_tolerance_fraction": 0.1}))])

        kept = await treatments.of("S-0123456789AB")
        assert kept == first and kept.regimen.infusion_window_days == (3, 14)
        assert (await treatments.of("S-BA9876543210")).programme_version == 2
