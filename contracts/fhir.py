"""The identifier systems CellTrail's FHIR exports name (docs/custody.md, "FHIR"), shared by
every service that exports, so a BiologicallyDerivedProductDispense of the infusion service
points at the BiologicallyDerivedProduct of the manufacturing service by the same
identifier. URNs of CellTrail's own: the identifiers are ISBT 128-shaped but issued by
CellTrail's facilities, not registered with ICCBBA."""

UNIT_SYSTEM = "urn:celltrail:unit"  # a bag: its COI and division code (docs/identifiers.md)
COI_SYSTEM = "urn:celltrail:coi"  # the chain of identity: the biological source event
SUBJECT_SYSTEM = "urn:celltrail:subject"  # the pseudonymous subject id, never a patient identifier
ORGANISATION_SYSTEM = "urn:celltrail:organisation"  # a centre or facility of the network
PRINCIPAL_SYSTEM = "urn:celltrail:principal"  # who acted (the event's actor)
