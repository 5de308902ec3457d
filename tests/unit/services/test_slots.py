"""Scheduling (issue 9 item 6; services/manufacturing/domain/slots.py): capacity as data per
organisation, kind and day; a booking is refused when the day is full, closed or never
opened; the projection shows the forecast vein-to-vein time beside the actual one."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from contracts import events as ev
from contracts.commands import BookSlot, SetSlotCapacity
from contracts.custody import SlotKind
from contracts.events import SlotBooked
from services.manufacturing import bootstrap
from services.manufacturing.domain.slots import slot_stream
from services.projection.domain.subject_view import SubjectView, fold
from tests.unit.services.fakes import Bus, FakeEnrolments, FakeOrganisations, FakePersons, FakeStreams
from tests.unit.services.test_custody import CENTRE, FACILITY, KINDS, LOADER, NURSE, OPERATOR, QP, SUBJECT
from tests.unit.services.test_custody import refused

OTHER = "S-BA9876543210"
DAY = date(2025, 6, 2)


def wired(streams: FakeStreams) -> Bus:
    return Bus(bootstrap.spec, streams=streams, organisations=FakeOrganisations(KINDS), persons=FakePersons(),
               enrolments=FakeEnrolments({SUBJECT: CENTRE, OTHER: CENTRE, "S-0000000000C3": CENTRE}))


def capacity(kind: SlotKind, n: int, org: str = FACILITY, turnaround: int | None = 18) -> SetSlotCapacity:
    return SetSlotCapacity(org_id=org, kind=kind, on=DAY, capacity=n,
                           turnaround_days=turnaround if kind is SlotKind.MANUFACTURING else None)


def booking(subject: str = SUBJECT, kind: SlotKind = SlotKind.MANUFACTURING, org: str = FACILITY) -> BookSlot:
    return BookSlot(subject_id=subject, slot_org_id=org, kind=kind, on=DAY)


class TestBooking:
    async def test_bookings_fill_a_day_and_the_next_is_refused(self):
        streams = FakeStreams()
        bus = wired(streams)
        await bus.send(capacity(SlotKind.MANUFACTURING, 2), principal=OPERATOR)
        await bus.send(booking(SUBJECT))
        await bus.send(booking(OTHER))
        refusal = await refused("SLOT_FULL", bus.send(booking("S-0000000000C3")))
        assert "2 manufacturing slot(s)" in refusal.reason
        booked = [e for e in streams.events(slot_stream(FACILITY, SlotKind.MANUFACTURING, DAY)) if isinstance(e, SlotBooked)]
        assert [(b.subject_id, b.number, b.capacity, b.turnaround_days) for b in booked] == [
            (SUBJECT, 1, 2, 18), (OTHER, 2, 2, 18)]

    @pytest.mark.parametrize("setup, cmd, code", [
        ([], booking(), "NO_CAPACITY"),  # never opened
        ([(capacity(SlotKind.MANUFACTURING, 0), OPERATOR)], booking(), "NO_CAPACITY"),  # closed
        ([(capacity(SlotKind.MANUFACTURING, 3), OPERATOR), (booking(), None)], booking(), "ALREADY_BOOKED"),
        ([], booking(kind=SlotKind.APHERESIS, org=FACILITY), "WRONG_KIND_OF_ORGANISATION"),
        ([], booking(org="GMP-NOWHERE"), "WRONG_KIND_OF_ORGANISATION"),
        ([], booking("S-0000000000D4"), "SUBJECT_NOT_ENROLLED"),
    ])
    async def test_a_booking_that_cannot_be_had(self, setup, cmd, code):
        bus = wired(FakeStreams())
        for c, who in setup:
            await bus.send(c, principal=who)
        await refused(code, bus.send(cmd))

    @pytest.mark.parametrize("cmd, who, code", [
        (capacity(SlotKind.MANUFACTURING, 2), QP.__class__("x", QP.kind, "x", ()), "ROLE_NOT_PERMITTED"),
        (capacity(SlotKind.MANUFACTURING, 2, org=CENTRE), NURSE, "ROLE_NOT_PERMITTED"),  # not a planner of those
        (capacity(SlotKind.MANUFACTURING, 2, org=CENTRE), LOADER, "WRONG_KIND_OF_ORGANISATION"),
        (capacity(SlotKind.APHERESIS, 2, org=CENTRE), NURSE, None),
        (capacity(SlotKind.APHERESIS, 2, org=FACILITY), LOADER, "WRONG_KIND_OF_ORGANISATION"),
        (capacity(SlotKind.APHERESIS, 2, org=FACILITY), OPERATOR, "ROLE_NOT_PERMITTED"),
        (capacity(SlotKind.MANUFACTURING, 2, turnaround=None), OPERATOR, "NO_CAPACITY"),
        (capacity(SlotKind.MANUFACTURING, 2), LOADER, None),
    ])
    async def test_who_sets_capacity_and_where(self, cmd, who, code):
        bus = wired(FakeStreams())
        if code is None:
            await bus.send(cmd, principal=who)
        else:
            await refused(code, bus.send(cmd, principal=who))

    async def test_capacity_is_not_lowered_below_the_bookings(self):
        bus = wired(FakeStreams())
        await bus.send(capacity(SlotKind.MANUFACTURING, 2), principal=OPERATOR)
        await bus.send(booking(SUBJECT))
        await bus.send(booking(OTHER))
        await refused("CAPACITY_BELOW_BOOKINGS", bus.send(capacity(SlotKind.MANUFACTURING, 1), principal=OPERATOR))


class TestForecast:
    def booked(self, kind: str, on: date, turnaround: int | None = None) -> ev.SlotBooked:
        return ev.SlotBooked(subject_id=SUBJECT, slot_org_id=CENTRE if kind == "apheresis" else FACILITY,
                             kind=kind, on=on, number=1, capacity=2, turnaround_days=turnaround)

    def view(self, *events) -> SubjectView:
        v = SubjectView(SUBJECT)
        for e in events:
            v = fold(v, e, datetime(2025, 1, 1, tzinfo=timezone.utc))
        return v

    def test_the_forecast_is_apheresis_to_the_manufacturing_slot_plus_its_turnaround(self):
        events = [self.booked("manufacturing", date(2025, 6, 4), 18), self.booked("apheresis", date(2025, 6, 2))]
        assert self.view(*events).forecast_vein_to_vein_days == 20 == self.view(*reversed(events)).to_json()[
            "forecast_vein_to_vein_days"]

    def test_no_forecast_without_both_slots(self):
        assert self.view(self.booked("apheresis", date(2025, 6, 2))).forecast_vein_to_vein_days is None

    def test_the_booking_is_on_the_timeline(self):
        [entry] = self.view(self.booked("apheresis", date(2025, 6, 2))).timeline
        assert entry.summary == f"apheresis slot booked at {CENTRE} on 2025-06-02"


def cancellation(subject: str = SUBJECT):
    from contracts.commands import CancelSlotBooking

    return CancelSlotBooking(subject_id=subject, slot_org_id=FACILITY, kind=SlotKind.MANUFACTURING, on=DAY,
                             reason="manufacturing postponed: the patient's infection")


class TestCancelling:
    async def test_a_cancelled_slot_is_free_again_and_may_be_booked_again(self):
        bus = wired(FakeStreams())
        await bus.send(capacity(SlotKind.MANUFACTURING, 1), principal=OPERATOR)
        await bus.send(booking(SUBJECT))
        await refused("SLOT_FULL", bus.send(booking(OTHER)))
        await bus.send(cancellation(SUBJECT))
        await bus.send(booking(OTHER))
        await bus.send(cancellation(OTHER))
        await bus.send(booking(SUBJECT))  # booked, cancelled, booked again

    async def test_a_booking_never_made_is_not_cancelled(self):
        bus = wired(FakeStreams())
        await bus.send(capacity(SlotKind.MANUFACTURING, 1), principal=OPERATOR)
        await refused("NOT_BOOKED", bus.send(cancellation(SUBJECT)))

    def test_the_projection_counts_a_cancelled_then_rebooked_slot_once_in_any_order(self):
        from itertools import permutations

        from contracts.events import SlotBookingCancelled

        first = self.__class__.booked_event("apheresis", date(2025, 6, 2), "e1")
        making = self.__class__.booked_event("manufacturing", date(2025, 6, 4), "e2", 18)
        cancelled = (SlotBookingCancelled(subject_id=SUBJECT, slot_org_id=FACILITY, kind="manufacturing",
                                          on=date(2025, 6, 4), reason="postponed"), "e3")
        again = self.__class__.booked_event("manufacturing", date(2025, 6, 4), "e4", 18)
        views = set()
        for order in permutations([first, making, cancelled, again]):
            v = SubjectView(SUBJECT)
            for e, event_id in order:
                v = fold(v, e, datetime(2025, 1, 1, tzinfo=timezone.utc), event_id)
            views.add((v.forecast_vein_to_vein_days, tuple(v.standing_bookings)))
        assert views == {(20, (("apheresis", "2025-06-02", CENTRE, None), ("manufacturing", "2025-06-04", FACILITY, 18)))}
        v = SubjectView(SUBJECT)
        for e, event_id in (first, making, cancelled):
            v = fold(v, e, datetime(2025, 1, 1, tzinfo=timezone.utc), event_id)
        assert v.forecast_vein_to_vein_days is None  # the manufacturing slot is gone
        assert SubjectView.from_json(v.to_json()) == v

    @staticmethod
    def booked_event(kind: str, on: date, event_id: str, turnaround: int | None = None):
        return (ev.SlotBooked(subject_id=SUBJECT, slot_org_id=CENTRE if kind == "apheresis" else FACILITY, kind=kind,
                              on=on, number=1, capacity=2, turnaround_days=turnaround), event_id)
