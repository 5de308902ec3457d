"""Infusion at the bedside: the product's COI must belong to the subject being infused and
the product must have been released. Anything else is refused (chain of identity)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contracts.base import EventPayload
from contracts.commands import RecordInfusion
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import (
    BedsideCheckRecorded,
    CellDosePrescribed,
    LymphodepletionAdministered,
    LymphodepletionCompleted,
    LymphodepletionPrescribed,
    ProductInfused,
    SecondInfusionDecided,
)
from services.kernel.aggregate import Aggregate


class ProductNotReleased(CommandRefused):
    code = "PRODUCT_NOT_RELEASED"


class ProductAlreadyInfused(CommandRefused):
    code = "PRODUCT_ALREADY_INFUSED"


class InfusionBeforeRelease(CommandRefused):
    code = "INFUSION_BEFORE_RELEASE"


@dataclass(frozen=True)
class ReleasedProduct:
    """A released product; its measured content as released (None: a release recorded before
    the infusion service kept it)."""

    coi_id: str
    subject_id: str
    released_at: datetime
    viable_cells_per_ml: float | None = None
    volume_ml: float | None = None


def infusion_stream(subject_id: str) -> str:
    return f"infusions-{subject_id}"


@dataclass
class InfusionHistory(Aggregate):
    subject_id: str
    infused_cois: list[str] = field(default_factory=list)
    infused_units: list[str] = field(default_factory=list)
    second_infusion: SecondInfusionDecided | None = None  # the latest day-28 decision
    # lymphodepletion (domain/dosing.py): the latest prescription, what of it was given, and
    # its completion; the latest cell-dose prescription of each bag
    lymphodepletion: LymphodepletionPrescribed | None = None
    administered: list[LymphodepletionAdministered] = field(default_factory=list)
    lymphodepletion_completed: LymphodepletionCompleted | None = None
    cell_doses: dict[str, CellDosePrescribed] = field(default_factory=dict)

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, SecondInfusionDecided):
            self.second_infusion = event
        elif isinstance(event, LymphodepletionPrescribed):
            self.lymphodepletion, self.administered, self.lymphodepletion_completed = event, [], None
        elif isinstance(event, LymphodepletionAdministered):
            self.administered.append(event)
        elif isinstance(event, LymphodepletionCompleted):
            self.lymphodepletion_completed = event
        elif isinstance(event, CellDosePrescribed):
            self.cell_doses[event.unit_id] = event
        elif isinstance(event, ProductInfused):
            self.infused_cois.append(event.coi_id)
            if event.unit_id is not None:
                self.infused_units.append(event.unit_id)

    def infuse(self, cmd: RecordInfusion, product: ReleasedProduct | None,
               check: BedsideCheckRecorded | None = None, dose: "GivenDose | None" = None) -> list[EventPayload]:
        """`check`: the bedside check a unit's infusion rests on (domain/bedside.py), None for
        a product recorded before units existed, infused by its COI. A go for a unit released
        out of specification said so; the infusion says it too (EU GMP Part IV 11.5).
        `dose`: what the bag's cell-dose prescription gave (domain/dosing.py)."""
        if product is None:
            raise ProductNotReleased(f"no released product is known for COI {cmd.coi_id}")
        if product.subject_id != cmd.subject_id:
            raise ChainOfIdentityMismatch(
                f"COI {cmd.coi_id} belongs to subject {product.subject_id}, not to {cmd.subject_id}: infusion refused")
        if cmd.unit_id is not None and cmd.unit_id in self.infused_units:
            raise ProductAlreadyInfused(f"unit {cmd.unit_id} was already infused")
        if cmd.unit_id is None and cmd.coi_id in self.infused_cois:
            raise ProductAlreadyInfused(f"product COI {cmd.coi_id} was already infused")
        if cmd.infused_at < product.released_at:
            raise InfusionBeforeRelease(
                f"infusion at {cmd.infused_at.isoformat()} precedes release at {product.released_at.isoformat()}")
        return [ProductInfused(subject_id=cmd.subject_id, coi_id=cmd.coi_id, infused_at=cmd.infused_at,
                               infusion_number=len(self.infused_cois) + 1, unit_id=cmd.unit_id,
                               bedside_check_id=check.check_id if check is not None else None,
                               out_of_specification=check is not None and check.out_of_specification,
                               **(dose.fields() if dose is not None else {}))]


@dataclass(frozen=True)
class GivenDose:
    """The dose a bag's infusion gave: its prescription, the volume and the cells it held."""

    prescription_id: object
    volume_ml: float
    cells: float
    deviation_reason: str | None = None

    def fields(self) -> dict:
        return {"cell_dose_prescription_id": self.prescription_id, "volume_ml": self.volume_ml,
                "cells_infused": self.cells, "dose_deviation_reason": self.deviation_reason}
