"""An infusion of a unit as an HL7 FHIR R5 BiologicallyDerivedProductDispense (issue 9 item 9),
validated with the `fhir.resources` models. The product is referenced by the identifier the
manufacturing service's BiologicallyDerivedProduct carries (contracts/fhir.py); the patient
by the pseudonymous subject id, never a patient identifier."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.biologicallyderivedproductdispense import BiologicallyDerivedProductDispense

from contracts import fhir
from contracts.events import BedsideCheckRecorded, ProductInfused


def dispense(infused: ProductInfused, *, event_id: str, actor: str, centre_id: str | None,
             check: BedsideCheckRecorded | None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProductDispense",
        "id": event_id,
        "identifier": [{"system": "urn:celltrail:event", "value": event_id}],
        "status": "completed",
        "product": {"identifier": {"system": fhir.UNIT_SYSTEM, "value": infused.unit_id},
                    "type": "BiologicallyDerivedProduct"},
        "patient": {"identifier": {"system": fhir.SUBJECT_SYSTEM, "value": infused.subject_id}, "type": "Patient"},
        "performer": [{"actor": {"identifier": {"system": fhir.PRINCIPAL_SYSTEM, "value": actor},
                                 "type": "Practitioner"}}],
        "whenHandedOver": infused.infused_at.isoformat(),
        "note": [{"text": f"infusion {infused.infusion_number} of subject {infused.subject_id}, COI {infused.coi_id}"}],
    }
    if centre_id is not None:
        resource["location"] = {"identifier": {"system": fhir.ORGANISATION_SYSTEM, "value": centre_id},
                                "type": "Location"}
    if check is not None:
        resource["note"].append({"text": f"bedside check {check.check_id} at {check.checked_at.isoformat()}: go, "
                                         f"verified by {' and '.join(check.verified_by)}"})
    if infused.out_of_specification:
        # R5's dispense has no element for it; a note keeps it with the record of administration
        resource["note"].append({"text": f"unit {infused.unit_id} was released out of specification on the "
                                         "exceptional-release path (EU GMP Part IV 11.5) and infused so"})
    return json.loads(BiologicallyDerivedProductDispense.model_validate(resource).model_dump_json(exclude_none=True))
