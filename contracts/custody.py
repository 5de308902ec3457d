"""The vocabulary of custody (issue 9, item 2): where a unit is in its life, and the steps
that move it. Part of the public contract: events name them, and the values are stable
strings (add, never rename). Which step leads from which state, who may take it and where
is the manufacturing service's table (services/manufacturing/domain/custody.py), drawn in
docs/custody.md."""

from __future__ import annotations

from enum import StrEnum


class UnitKind(StrEnum):
    STARTING_MATERIAL = "starting_material"  # the apheresis (or donor) collection, division 00
    PRODUCT = "product"  # a bag of the manufactured product, division A0, B0, ...


class CustodyState(StrEnum):
    COLLECTED = "collected"  # at the collecting centre
    IN_TRANSIT = "in_transit"  # handed to a courier, for a named destination
    RECEIVED = "received"  # taken in by the destination (facility or centre)
    IN_MANUFACTURING = "in_manufacturing"  # starting material taken into manufacturing
    AWAITING_QC = "awaiting_qc"  # a product unit filled and labelled, not yet tested
    QC_COMPLETE = "qc_complete"  # its quality-control results are recorded
    OUT_OF_SPECIFICATION = "out_of_specification"  # a result outside the specification
    RELEASED = "released"  # certified by the qualified person (manufacturing.ProductReleased)
    STORED = "stored"  # in the centre's (or facility's) storage
    PREPARED = "prepared"  # thawed, or a fresh product prepared, for infusion
    DISCARDED = "discarded"  # destroyed, with the reason
    RETURNED = "returned"  # sent back to the facility, with the reason
    INFUSED = "infused"  # infused into its patient (infusion's record, after a go at the bedside)


class CustodyStep(StrEnum):
    """A step recorded with `RecordCustodyStep`. Collection (`RecordApheresisCollection`),
    labelling (`RegisterProductUnits`) and release (`RecordProductRelease`) have commands of
    their own; verification at the bedside and infusion are the infusion service's."""

    SHIPPED = "shipped"
    RECEIVED = "received"
    MANUFACTURING_STARTED = "manufacturing_started"
    QC_RESULTS_RECORDED = "qc_results_recorded"
    OUT_OF_SPECIFICATION = "out_of_specification"
    STORED = "stored"
    PREPARED = "prepared"
    DISCARDED = "discarded"
    RETURNED = "returned"


class StorageCondition(StrEnum):
    """How a unit must be kept; each condition's temperature range is manufacturing's table
    (services/manufacturing/domain/condition.py)."""

    CRYOPRESERVED = "cryopreserved"  # vapour phase of liquid nitrogen
    REFRIGERATED = "refrigerated"  # 2-8 C: a fresh apheresis product
    CONTROLLED_ROOM = "controlled_room"  # 15-25 C: a fresh product the programme keeps so


class Disposition(StrEnum):
    """Quality assurance's decision on a quarantined unit."""

    ACCEPT = "accept"  # with a justification: the unit leaves quarantine
    DISCARD = "discard"  # the unit is discarded


class SlotKind(StrEnum):
    """What a scheduling slot is for (issue 9 item 6)."""

    APHERESIS = "apheresis"  # a collection at the centre's apheresis unit
    MANUFACTURING = "manufacturing"  # a manufacturing start at a facility


class CriterionKind(StrEnum):
    """How a product specification's criterion judges a quality-control result (issue 9 item 4)."""

    AT_LEAST = "at_least"  # value >= low (viability, a CAR-positive fraction)
    AT_MOST = "at_most"  # value <= high (endotoxin)
    BETWEEN = "between"  # low <= value <= high (a dose range)
    NOT_DETECTED = "not_detected"  # a qualitative test that must find nothing (sterility, mycoplasma)
