"""Issue 9 item 9: a unit as an HL7 FHIR R5 BiologicallyDerivedProduct (manufacturing) and its
infusion as a BiologicallyDerivedProductDispense (infusion), each validated with the
`fhir.resources` R5 models; both name the bag by the same identifier, and the patient only
by the pseudonymous subject id. Item 4: the product's expiry, QC verdict and release."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct
from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense

from contracts import fhir
from contracts.custody import CustodyState, CustodyStep
from contracts.events import BedsideCheckRecorded, ProductInfused
from services.infusion.adapters.fhir import dispense
from services.manufacturing.adapters.fhir import biologically_derived_product
from tests.unit.services.test_custody import (
    A0,
    B0,
    CENTRE,
    COI,
    FACILITY,
    MATERIAL,
    OPERATOR,
    PHYSICIAN,
    QP,
    SUBJECT,
    Chain,
)
from tests.unit.services.test_release import assess, assessments, out_of_specification, qc_ready, request


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

    async def test_a_donor_derived_bag_names_its_donor_as_the_source_and_its_recipient(self):  # seed 000
        from contracts.events import ApheresisCollected
        from services.kernel.aggregate import rebuild
        from services.manufacturing.domain.model import ChainOfIdentity, coi_stream

        chain = await released()
        events = [e.model_copy(update={"donor_id": "S-D0D0D0D0D0D0"}) if isinstance(e, ApheresisCollected) else e
                  for e in chain.streams.events(coi_stream(COI))]
        resource = biologically_derived_product(rebuild(ChainOfIdentity(COI), events), A0)
        BiologicallyDerivedProduct.model_validate(resource)
        assert resource["collection"]["source"]["identifier"] == {"system": fhir.SUBJECT_SYSTEM,
                                                                  "value": "S-D0D0D0D0D0D0"}
        assert {"type": {"text": "recipient"}, "valueString": SUBJECT} in resource["property"]

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


class TestItsQuality:
    """Issue 9 item 4: the end of its shelf life, its QC verdict and where its release stands."""

    @staticmethod
    def properties(resource: dict) -> dict[str, list]:
        found: dict[str, list] = {}
        for p in resource["property"]:
            found.setdefault(p["type"]["text"], []).append(next(v for k, v in p.items() if k.startswith("value")))
        return found

    async def test_a_released_bag_expires_at_the_end_of_its_shelf_life_and_is_within_specification(self):
        chain = Chain()
        await qc_ready(chain)  # shelf life 365 days, 30 minutes from thawing to infusion
        for unit in (A0, B0):
            await chain.qc(unit)
        await chain.release()
        unit = chain.chain().units[A0]
        resource = biologically_derived_product(chain.chain(), A0)

        BiologicallyDerivedProduct.model_validate(resource)
        assert unit.expires_at is not None
        assert datetime.fromisoformat(resource["expirationDate"].replace("Z", "+00:00")) == unit.expires_at
        assert self.properties(resource)["out of specification"] == [False]
        assert "failed attribute" not in self.properties(resource)
        assert self.properties(resource)["use within, from thawing or preparation"] == [
            {"value": 30, "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}]
        assert resource["productStatus"]["code"] == "allocated"

    async def test_a_bag_past_its_shelf_life_is_expired_when_the_caller_gives_the_time(self):
        chain = Chain()
        await qc_ready(chain)
        await chain.qc(A0)
        expires_at = chain.chain().units[A0].expires_at

        assert biologically_derived_product(chain.chain(), A0, now=expires_at)["productStatus"]["code"] == "expired"
        assert biologically_derived_product(chain.chain(), A0, now=expires_at - timedelta(seconds=1))[
            "productStatus"]["code"] == "allocated"

    async def test_a_bag_out_of_specification_names_what_failed_and_is_not_to_be_given(self):
        chain = Chain()
        await out_of_specification(chain)
        resource = biologically_derived_product(chain.chain(), B0)

        BiologicallyDerivedProduct.model_validate(resource)
        assert self.properties(resource)["out of specification"] == [True]
        assert self.properties(resource)["failed attribute"] == ["viability_percent"]
        assert resource["productStatus"]["code"] == "unknown"

    async def test_a_bag_awaiting_its_release_signature_says_so(self):
        chain = Chain()
        await qc_ready(chain)
        for unit in (A0, B0):
            await chain.qc(unit)
        await chain.release(sign=None)

        assert self.properties(biologically_derived_product(chain.chain(), A0))["awaiting release signature"] == [True]
        await chain.sign(QP, chain.release_record())
        assert self.properties(biologically_derived_product(chain.chain(), A0))["awaiting release signature"] == [False]

    async def test_a_bag_released_out_of_specification_is_released_and_keeps_its_flag(self):
        chain = Chain()
        await out_of_specification(chain)
        await request(chain)
        await assess(chain)
        await chain.sign(PHYSICIAN, assessments(chain)[-1])
        await chain.release()
        resource = biologically_derived_product(chain.chain(), B0)

        BiologicallyDerivedProduct.model_validate(resource)
        assert resource["productStatus"]["code"] == "allocated"
        assert {"type": {"text": "custody state"}, "valueCodeableConcept": {"text": "released"}} in resource["property"]
        assert (self.properties(resource)["out of specification"], self.properties(resource)["failed attribute"]) == (
            [True], ["viability_percent"])

    async def test_a_bag_awaiting_qc_has_no_verdict_yet(self):
        chain = Chain()
        await qc_ready(chain)

        assert "out of specification" not in self.properties(biologically_derived_product(chain.chain(), A0))

    async def test_an_infused_bag_is_issued_and_expires_no_more(self):
        chain = await released()
        await chain.bus.send(ProductInfused(subject_id=SUBJECT, coi_id=COI, infused_at=chain.tick(), infusion_number=1,
                                            unit_id=A0, bedside_check_id=uuid.uuid4()))
        far = chain.now + timedelta(days=10 * 365)

        assert chain.state(A0) is CustodyState.INFUSED
        assert biologically_derived_product(chain.chain(), A0, now=far)["productStatus"]["code"] == "issued"


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
