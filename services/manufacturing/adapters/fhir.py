"""A unit as an HL7 FHIR R5 BiologicallyDerivedProduct (issue 9 item 9), validated with the
`fhir.resources` models before it is returned, so what leaves the service is a valid R5
resource. Names only pseudonymous ids (the subject's, the organisations'), never a patient
identifier.

Its quality (issue 9 item 4): R5 has an element for the end of the shelf life
(`expirationDate`) but none for quality control, so the results' verdict goes where R5 puts
what the resource has no element for, `property` (type and value): whether the unit is out
of specification and one entry per attribute that failed (once tested), the time allowed
from thawing or preparation to infusion, and whether its release awaits the qualified
person's signature. A unit released out of specification (EU GMP Part IV 11.5) is released
(`productStatus` as any released unit) and keeps its flag."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fhir.resources.biologicallyderivedproduct import BiologicallyDerivedProduct

from contracts import fhir
from contracts.custody import CustodyState, UnitKind
from services.manufacturing.domain.condition import RANGES
from services.manufacturing.domain.custody import Unit
from services.manufacturing.domain.model import ChainOfIdentity

# FHIR R5 productStatus (http://hl7.org/fhir/biologicallyderived-product-status: available,
# allocated, issued, expired, unknown): a patient-specific product is allocated to its
# patient from the start; issued once infused (manufacturing learns it from infusion's
# record, UnitInfusionRecorded; the infusion service's dispense says the same); expired past
# the end of its shelf life, when the caller says what time it is; unknown where it is no
# product to give (discarded, returned, consumed into manufacturing) or, out of
# specification, until it is released on the exceptional-release path.
_STATUS = {CustodyState.DISCARDED: "unknown", CustodyState.RETURNED: "unknown",
           CustodyState.OUT_OF_SPECIFICATION: "unknown", CustodyState.IN_MANUFACTURING: "unknown",
           CustodyState.INFUSED: "issued"}
_SPENT = (CustodyState.INFUSED, CustodyState.DISCARDED, CustodyState.RETURNED, CustodyState.IN_MANUFACTURING)


def _celsius(value: float | None) -> dict[str, Any] | None:
    return None if value is None else {"value": value, "unit": "Cel", "system": "http://unitsofmeasure.org",
                                       "code": "Cel"}


def _status(unit: Unit, now: datetime | None) -> str:
    if now is not None and unit.expires_at is not None and unit.expires_at <= now and unit.state not in _SPENT:
        return "expired"
    return _STATUS.get(unit.state, "allocated")


def _quality(chain: ChainOfIdentity, unit: Unit) -> list[dict[str, Any]]:
    """The unit's QC verdict and limits of use as `property` entries (the verdict once tested)."""
    if unit.kind is not UnitKind.PRODUCT:
        return []
    awaiting = chain.release_pending and (unit.state is CustodyState.QC_COMPLETE or (
        unit.state is CustodyState.OUT_OF_SPECIFICATION and unit.unit_id in chain.accepted))
    found = [] if unit.state is CustodyState.AWAITING_QC else [
        {"type": {"text": "out of specification"}, "valueBoolean": unit.out_of_specification},
        *({"type": {"text": "failed attribute"}, "valueString": a} for a in unit.failed)]
    found.append({"type": {"text": "awaiting release signature"}, "valueBoolean": awaiting})
    if unit.use_within_minutes is not None:
        found.append({"type": {"text": "use within, from thawing or preparation"},
                      "valueQuantity": {"value": unit.use_within_minutes, "unit": "min",
                                        "system": "http://unitsofmeasure.org", "code": "min"}})
    return found


def biologically_derived_product(chain: ChainOfIdentity, unit_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The unit as an R5 resource; with `now`, a unit past its shelf life is `expired`."""
    unit = chain.units[unit_id]
    limits = RANGES[unit.storage]
    subject = {"identifier": {"system": fhir.SUBJECT_SYSTEM, "value": chain.subject_id}, "type": "Patient"}
    donor = ({"identifier": {"system": fhir.SUBJECT_SYSTEM, "value": chain.donor_id}, "type": "Patient"}
             if chain.donor_id else None)
    resource: dict[str, Any] = {
        "resourceType": "BiologicallyDerivedProduct",
        "id": unit_id,
        "productCategory": {"system": "http://hl7.org/fhir/product-category", "code": "cells"},
        "identifier": [{"system": fhir.UNIT_SYSTEM, "value": unit_id}],
        "biologicalSourceEvent": {"system": fhir.COI_SYSTEM, "value": chain.coi_id},
        "division": unit_id[14:],
        "productStatus": {"system": "http://hl7.org/fhir/biologicallyderived-product-status",
                          "code": _status(unit, now)},
        # the donor, for a donor-derived product (seed 000): the source of the material; the
        # recipient then stands as a property, the resource having no element for it
        "collection": {"source": donor or subject, "collector": {
            "identifier": {"system": fhir.ORGANISATION_SYSTEM, "value": chain.centre_id}, "type": "Organization"},
            "collectedDateTime": chain.collected_at.isoformat()},
        "storageTempRequirements": {k: v for k, v in (("low", _celsius(limits.low)), ("high", _celsius(limits.high)))
                                    if v is not None},
        "property": [
            {"type": {"text": "custody state"}, "valueCodeableConcept": {"text": unit.state.value}},
            {"type": {"text": "held by"}, "valueString": unit.holder},
            {"type": {"text": "quarantined"}, "valueBoolean": unit.quarantined},
            {"type": {"text": "storage condition"}, "valueString": f"{unit.storage.value}: {limits.source}"},
            *([{"type": {"text": "recipient"}, "valueString": chain.subject_id}] if donor else []),
            *_quality(chain, unit),
        ],
    }
    if unit.expires_at is not None:
        resource["expirationDate"] = unit.expires_at.isoformat()
    if unit.kind is UnitKind.PRODUCT:
        resource["parent"] = [{"identifier": {"system": fhir.UNIT_SYSTEM, "value": chain.coi_id + "00"},
                               "type": "BiologicallyDerivedProduct"}]
        resource["processingFacility"] = [{"identifier": {"system": fhir.ORGANISATION_SYSTEM,
                                                          "value": chain.facility_id}, "type": "Organization"}]
    return json.loads(BiologicallyDerivedProduct.model_validate(resource).model_dump_json(exclude_none=True))
