"""Scheduling (issue 9, item 6): apheresis slots at a centre and manufacturing slots at a
facility, per day, with the capacity as data each organisation sets; a booking is refused
when the day is full or has no capacity. One stream per organisation, kind and day, so two
bookings of the last slot collide on its version and the second finds the day full."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from contracts.access import OrgKind, Role
from contracts.base import EventPayload
from contracts.commands import BookSlot, CancelSlotBooking, SetSlotCapacity
from contracts.custody import SlotKind
from contracts.errors import CommandRefused
from contracts.events import SlotBooked, SlotBookingCancelled, SlotCapacitySet
from services.kernel.aggregate import Aggregate
from services.manufacturing.domain.custody import Acting, RoleNotPermitted


class NoCapacity(CommandRefused):
    code = "NO_CAPACITY"


class SlotFull(CommandRefused):
    code = "SLOT_FULL"


class AlreadyBooked(CommandRefused):
    code = "ALREADY_BOOKED"


class CapacityBelowBookings(CommandRefused):
    code = "CAPACITY_BELOW_BOOKINGS"


class WrongKindOfOrganisation(CommandRefused):
    code = "WRONG_KIND_OF_ORGANISATION"


class NotBooked(CommandRefused):
    code = "NOT_BOOKED"


# Where each kind of slot is (FACT-JACIE: the apheresis unit belongs to the clinical
# programme; manufacturing is the GMP facility's), and who sets its capacity.
WHERE = {SlotKind.APHERESIS: OrgKind.CENTRE, SlotKind.MANUFACTURING: OrgKind.FACILITY}
PLANNERS = {SlotKind.APHERESIS: frozenset({Role.PHYSICIAN, Role.NURSE, Role.DATA_MANAGER, Role.DATA_LOADER}),
            SlotKind.MANUFACTURING: frozenset({Role.OPERATOR, Role.FACILITY_SYSTEM, Role.QUALIFIED_PERSON,
                                               Role.DATA_LOADER})}


def slot_stream(org_id: str, kind: SlotKind, on: date) -> str:
    return f"slots-{org_id}-{kind.value}-{on.isoformat()}"


@dataclass
class SlotDay(Aggregate):
    org_id: str
    kind: SlotKind
    on: date
    capacity: int | None = None
    turnaround_days: int | None = None
    booked: list[str] = field(default_factory=list)  # subject ids, in booking order

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, SlotCapacitySet):
            self.capacity, self.turnaround_days = event.capacity, event.turnaround_days
        elif isinstance(event, SlotBooked):
            self.booked.append(event.subject_id)
        elif isinstance(event, SlotBookingCancelled):
            self.booked.remove(event.subject_id)

    def set_capacity(self, cmd: SetSlotCapacity, acting: Acting) -> list[EventPayload]:
        if acting.org_kind is not WHERE[cmd.kind]:
            raise WrongKindOfOrganisation(f"{cmd.kind} slots are a {WHERE[cmd.kind]}'s; {cmd.org_id} is a "
                                          f"{acting.org_kind}")
        if acting.role not in PLANNERS[cmd.kind]:
            raise RoleNotPermitted(f"a {acting.role} may not set {cmd.kind} capacity")
        if cmd.kind is SlotKind.MANUFACTURING and cmd.turnaround_days is None:
            raise NoCapacity("manufacturing capacity comes with its turnaround_days (start to arrival at the centre)")
        if cmd.capacity < len(self.booked):
            raise CapacityBelowBookings(f"{cmd.org_id} has {len(self.booked)} {cmd.kind} booking(s) on "
                                        f"{cmd.on.isoformat()}; cancel some before lowering the capacity to "
                                        f"{cmd.capacity}")
        return [SlotCapacitySet(org_id=cmd.org_id, kind=cmd.kind, on=cmd.on, capacity=cmd.capacity,
                                turnaround_days=cmd.turnaround_days, role=acting.role.value)]

    def book(self, cmd: BookSlot, slot_org_kind: OrgKind | None) -> list[EventPayload]:
        if slot_org_kind is not WHERE[cmd.kind]:
            raise WrongKindOfOrganisation(f"{cmd.kind} slots are a {WHERE[cmd.kind]}'s; {cmd.slot_org_id} is "
                                          f"{'a ' + slot_org_kind if slot_org_kind else 'not an organisation'}")
        if not self.capacity:
            raise NoCapacity(f"{cmd.slot_org_id} has no {cmd.kind} capacity on {cmd.on.isoformat()}")
        if cmd.subject_id in self.booked:
            raise AlreadyBooked(f"subject {cmd.subject_id} already has a {cmd.kind} slot at {cmd.slot_org_id} on "
                                f"{cmd.on.isoformat()}")
        if len(self.booked) >= self.capacity:
            raise SlotFull(f"{cmd.slot_org_id}'s {self.capacity} {cmd.kind} slot(s) on {cmd.on.isoformat()} are all "
                           "booked")
        return [SlotBooked(subject_id=cmd.subject_id, slot_org_id=cmd.slot_org_id, kind=cmd.kind, on=cmd.on,
                           number=len(self.booked) + 1, capacity=self.capacity,
                           turnaround_days=self.turnaround_days)]

    def cancel(self, cmd: CancelSlotBooking) -> list[EventPayload]:
        if cmd.subject_id not in self.booked:
            raise NotBooked(f"subject {cmd.subject_id} has no {cmd.kind} slot at {cmd.slot_org_id} on "
                            f"{cmd.on.isoformat()}")
        return [SlotBookingCancelled(subject_id=cmd.subject_id, slot_org_id=cmd.slot_org_id, kind=cmd.kind,
                                     on=cmd.on, reason=cmd.reason)]
