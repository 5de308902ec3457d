"""Issue 9 item 9: a unit as an HL7 FHIR R5 BiologicallyDerivedProduct (manufacturing) and its
infusion as a BiologicallyDerivedProductDispense (infusion), each validated with the
`fhir.resources` R5 models; both name the bag by the same identifier, and the patient only
by the pseudonymous subject id."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense

from contracts import fhir
from contracts.custody import CustodyStep
from contracts.events import BedsideCheckRecorded, ProductInfused
from services.infusion.adapters.fhir import dispense
from services.manufacturing.adapters.fhir import biologically_derived_product
from tests.unit.services.test_custody import A0, CENTRE, COI, FACILITY, MATERIAL, OPERATOR, SUBJECT, Chain


async def released() -> Chain:
    chain = Chain()
    await chain.released()
    return chain


class TestTheProduct:
    async def test_a_released_bag_is_a_valid_r5_resource_of_its_coi_facility_and_storage(self):
        resource = biologically_derived_product((await released()).chain(), A0)
        BiologicallyDerivedProduct.model_validate(resource)  # what left is valid R5
        assert resource["identifier"] == [{"system": fhir.UNIT_SYSTEM, "value": A0}]
        assert resource["biologicalSourceEvent"] == {"system": fhir.COI_SYSTEM, "value": COI}
        assert resource["division"] == "A0" and resource["productStatus"]["code"] == "allocated"
        assert resource["parent"][0]["identifier"]["value"] == MATERIAL
        assert resource["processingFacility"][0]["identifier"]["value"] == FACILITY
        assert resource["collection"]["source"]["identifier"] == {"system": fhir.SUBJECT_SYSTEM, "value": SUBJECT}
        assert resource["storageTempRequirements"] == {"high": {"value": -150.0, "unit": "Cel", "code": "Cel",
                                                                "system": "http://unitsofmeasure.org"}}
        assert {"type": {"text": "custody state"}, "valueCodeableConcept": {"text": "released"}} in resource["property"]

    async def test_the_starting_material_is_kept_at_2_to_8_and_has_no_parent(self):
        resource = biologically_derived_product((await released()).chain(), MATERIAL)
        assert "parent" not in resource and resource["productStatus"]["code"] == "unknown"  # consumed
        assert {k: v["value"] for k, v in resource["storageTempRequirements"].items()} == {"low": 2.0, "high": 8.0}

    async def test_a_discarded_bag_has_status_unknown(self):
        chain = await released()
        await chain.step(OPERATOR, A0, CustodyStep.DISCARDED, reason="bag damaged")
        assert biologically_derived_product(chain.chain(), A0)["productStatus"]["code"] == "unknown"

    async def test_nothing_in_it_identifies_the_patient_but_the_pseudonym(self):
        text = str(biologically_derived_product((await released()).chain(), A0))
        assert SUBJECT in text and "name" not in text and "birth" not in text


class TestTheDispense:
    def infused(self) -> ProductInfused:
        return ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=datetime(2025, 4, 1, 10, tzinfo=timezone.utc),
                              infusion_number=1, unit_id=A0, bedside_check_id=uuid.uuid4())

    def test_an_infusion_is_a_valid_r5_dispense_of_the_same_bag_to_the_pseudonymous_patient(self):
        infused = self.infused()
        check = BedsideCheckRecorded(check_id=infused.bedside_check_id, unit_id=A0, coi_id=COI, subject_id=SUBJECT,
                                     centre_id=CENTRE, verified_by=["nurse.a", "physician.a"], go=True,
                                     checked_at=datetime(2025, 4, 1, 9, 50, tzinfo=timezone.utc))
        resource = dispense(infused, event_id=str(uuid.uuid4()), actor="nurse.a", centre_id=CENTRE, check=check)
        BiologicallyDerivedProductDispense.model_validate(resource)
        assert resource["status"] == "completed" and resource["whenHandedOver"] == "2025-04-01T10:00:00Z"
        assert resource["product"]["identifier"] == {"system": fhir.UNIT_SYSTEM, "value": A0}
        assert resource["patient"]["identifier"] == {"system": fhir.SUBJECT_SYSTEM, "value": SUBJECT}
        assert resource["performer"][0]["actor"]["identifier"]["value"] == "nurse.a"
        assert "verified by nurse.a and physician.a" in resource["note"][1]["text"]

    def test_the_models_refuse_what_is_not_r5(self):
        with pytest.raises(ValueError):
            BiologicallyDerivedProductDispense.model_validate({"resourceType": "BiologicallyDerivedProductDispense",
                                                               "status": "completed"})  # no product, no patient
