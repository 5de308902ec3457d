"""A unit as an HL7 FHIR R5 BiologicallyDerivedProduct (issue 9 item 9), validated with the
`fhir.resources` models before it is returned, so what leaves the service is a valid R5
resource. Names only pseudonymous ids (the subject's, the organisations'), never a patient
identifier."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct

from contracts import fhir
from contracts.custody import CustodyState, UnitKind
from services.manufacturing.domain.condition import RANGES
from services.manufacturing.domain.model import ChainOfIdentity

# FHIR R5 productStatus (http://hl7.org/fhir/biologicallyderived-product-status): a
# patient-specific product is allocated to its patient from the start; issued once infused
# (which manufacturing does not record: the infusion service's dispense says so).
_STATUS = {CustodyState.DISCARDED: "unknown", CustodyState.RETURNED: "unknown",
           CustodyState.OUT_OF_SPECIFICATION: "unknown", CustodyState.IN_MANUFACTURING: "unknown"}


def _celsius(value: float | None) -> dict[str, Any] | None:
    return None if value is None else {"value": value, "unit": "Cel", "system": "http://unitsofmeasure.org",
                                       "code": "Cel"}


def biologically_derived_product(chain: ChainOfIdentity, unit_id: str) -> dict[str, Any]:
    unit = chain.units[unit_id]
    limits = RANGES[unit.storage]
    subject = {"identifier": {"system": fhir.SUBJECT_SYSTEM, "value": chain.subject_id}, "type": "Patient"}
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProduct",
        "id": unit_id,
        "productCategory": {"system": "http://hl7.org/fhir/product-category", "code": "cells"},
        "identifier": [{"system": fhir.UNIT_SYSTEM, "value": unit_id}],
        "biologicalSourceEvent": {"system": fhir.COI_SYSTEM, "value": chain.coi_id},
        "division": unit_id[14:],
        "productStatus": {"system": "http://hl7.org/fhir/biologicallyderived-product-status",
                          "code": _STATUS.get(unit.state, "allocated")},
        "collection": {"source": subject, "collector": {
            "identifier": {"system": fhir.ORGANISATION_SYSTEM, "value": chain.centre_id}, "type": "Organization"},
            "collectedDateTime": chain.collected_at.isoformat()},
        "storageTempRequirements": {k: v for k, v in (("low", _celsius(limits.low)), ("high", _celsius(limits.high)))
                                    if v is not None},
        "property": [
            {"type": {"text": "custody state"}, "valueCodeableConcept": {"text": unit.state.value}},
            {"type": {"text": "held by"}, "valueString": unit.holder},
            {"type": {"text": "quarantined"}, "valueBoolean": unit.quarantined},
            {"type": {"text": "storage condition"}, "valueString": f"{unit.storage.value}: {limits.source}"},
        ],
    }
    if unit.kind is UnitKind.PRODUCT:
        resource["parent"] = [{"identifier": {"system": fhir.UNIT_SYSTEM, "value": chain.coi_id + "00"},
                               "type": "BiologicallyDerivedProduct"}]
        resource["processingFacility"] = [{"identifier": {"system": fhir.ORGANISATION_SYSTEM,
                                                          "value": chain.facility_id}, "type": "Organization"}]
    return json.loads(BiologicallyDerivedProduct.model_validate(resource).model_dump_json(exclude_none=True))
