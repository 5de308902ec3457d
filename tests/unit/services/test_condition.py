"""Condition (issue 9 item 3; services/manufacturing/domain/condition.py): excursions found in
a logger's readings, as table cases; the quarantine they put a unit in, what a quarantined
unit may not do, and quality assurance's disposition."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.commands import RecordQaDisposition
from contracts.custody import CustodyState, CustodyStep, Disposition, StorageCondition
from contracts.events import ExcursionDetected, QaDispositionRecorded, TemperatureReading, TemperatureReadingsRecorded
from services.manufacturing.application.handlers import record_readings
from services.manufacturing.domain.condition import RANGES, Reading, ReadingsOutOfOrder, excursions
from services.manufacturing.domain.model import coi_stream
from tests.unit.services.test_bedside import codes, unit
from tests.unit.services.test_custody import (
    A0,
    B0,
    CENTRE,
    COI,
    COURIER,
    FACILITY,
    KINDS,
    LOADER,
    MATERIAL,
    NURSE,
    OPERATOR,
    QP,
    ROME,
    Chain,
    refused,
)
from tests.unit.services.fakes import FakeOrganisations

T0 = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
CRYO, FRIDGE = RANGES[StorageCondition.CRYOPRESERVED], RANGES[StorageCondition.REFRIGERATED]


def series(*celsius: float, minutes: int = 10) -> list[Reading]:
    return [Reading(T0 + timedelta(minutes=minutes * i), c) for i, c in enumerate(celsius)]


class TestExcursions:
    @pytest.mark.parametrize("limits, readings, expected", [
        # (started minute, ended minute, ongoing, peak, deviation)
        (CRYO, series(-190, -185, -180), []),
        (CRYO, series(-190, -150, -190), []),  # the limit itself is in range
        (CRYO, series(-190, -140, -120, -160, -190), [(10, 30, False, -120, 30.0)]),
        (CRYO, series(-190, -140, -190, -149.5, -100), [(10, 20, False, -140, 10.0), (30, 40, True, -100, 50.0)]),
        (CRYO, series(-190, -140, -190, -150.5, -100), [(10, 20, False, -140, 10.0), (40, 40, True, -100, 50.0)]),
        (FRIDGE, series(4, 5, 9, 12, 7), [(20, 40, False, 12, 4.0)]),
        (FRIDGE, series(4, 1.5, -0.5, 3), [(10, 30, False, -0.5, 2.5)]),  # too cold is out of range too
        (FRIDGE, series(4, 9, 0.5, 4), [(10, 30, False, 0.5, 1.5)]),  # too warm then too cold: one run
        (FRIDGE, series(4, 9, 1, 4), [(10, 30, False, 9, 1.0)]),  # of two equally far, the first is the peak
        (FRIDGE, series(10), [(0, 0, True, 10, 2.0)]),
    ])
    def test_each_run_out_of_range_is_one_excursion(self, limits, readings, expected):
        found = [((x.started_at - T0).seconds // 60, (x.ended_at - T0).seconds // 60, x.ongoing, x.peak_celsius,
                  x.deviation) for x in excursions(readings, limits)]
        assert found == expected

    def test_its_length_in_minutes(self):
        [x] = excursions(series(-190, -140, -140, -140, -190, minutes=15), CRYO)
        assert x.minutes == 45

    def test_readings_out_of_time_order_are_refused(self):
        with pytest.raises(ReadingsOutOfOrder):
            excursions([Reading(T0, 4), Reading(T0, 5)], FRIDGE)

    def test_every_condition_has_a_range_and_its_source(self):
        assert set(RANGES) == set(StorageCondition) and all(r.source for r in RANGES.values())


def readings(*celsius: float, start: datetime) -> list[TemperatureReading]:
    return [TemperatureReading(at=start + timedelta(minutes=10 * i), celsius=c) for i, c in enumerate(celsius)]


async def load(chain: Chain, who, units: list[str], *celsius: float, org: str | None = None) -> list:
    return await record_readings(units, "LOGGER-7", org or who.memberships[0].org_id, "shipper box 3",
                                 readings(*celsius, start=chain.tick()), chain.streams, who,
                                 FakeOrganisations(KINDS))


async def released_and_shipped(chain: Chain) -> None:
    await chain.released()
    await chain.step(OPERATOR, A0, CustodyStep.SHIPPED, to=CENTRE)


class TestQuarantine:
    async def test_readings_in_range_are_recorded_and_quarantine_nothing(self):
        chain = Chain()
        await released_and_shipped(chain)
        events = await load(chain, NURSE, [A0], -190, -185)  # the destination loads the transit logger
        assert [type(e) for e in events] == [TemperatureReadingsRecorded]
        assert not chain.chain().units[A0].quarantined

    async def test_an_excursion_is_recorded_and_quarantines_its_unit(self):
        chain = Chain()
        await released_and_shipped(chain)
        events = await load(chain, NURSE, [A0], -190, -130, -190)
        [excursion] = [e for e in events if isinstance(e, ExcursionDetected)]
        assert (excursion.unit_id, excursion.minutes, excursion.peak_celsius, excursion.deviation,
                excursion.high_celsius) == (A0, 10.0, -130, 20.0, -150.0)
        assert chain.chain().units[A0].quarantined

    async def test_a_quarantined_unit_is_received_and_stored_but_not_prepared(self):
        chain = Chain()
        await released_and_shipped(chain)
        await load(chain, NURSE, [A0], -190, -130, -190)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)
        await chain.step(NURSE, A0, CustodyStep.STORED)
        await refused("QUARANTINED", chain.step(NURSE, A0, CustodyStep.PREPARED))

    async def test_a_quarantined_unit_is_not_released(self):
        chain = Chain()
        await chain.to_manufacturing()
        await chain.label()
        await load(chain, OPERATOR, [A0, B0], -190, -100)
        await chain.specify()
        for u in (A0, B0):
            await chain.qc(u)  # a quarantined unit may still be tested
        await refused("QUARANTINED", chain.release())

    async def test_the_qualified_person_accepts_it_with_a_justification(self):
        chain = Chain()
        await released_and_shipped(chain)
        await load(chain, NURSE, [A0], -190, -140, -190)
        await chain.step(NURSE, A0, CustodyStep.RECEIVED)
        await chain.bus.send(RecordQaDisposition(unit_id=A0, org_id=FACILITY, decision=Disposition.ACCEPT,
                                                 justification="10 min at -140 C within the stability data",
                                                 decided_at=chain.tick()), principal=QP)
        await chain.step(NURSE, A0, CustodyStep.PREPARED)
        assert chain.state(A0) is CustodyState.PREPARED

    async def test_a_discard_by_quality_assurance_ends_the_unit(self):
        chain = Chain()
        await released_and_shipped(chain)
        await load(chain, NURSE, [A0], -190, -60)
        await chain.bus.send(RecordQaDisposition(unit_id=A0, org_id=FACILITY, decision=Disposition.DISCARD,
                                                 justification="thawed in transit", decided_at=chain.tick()),
                             principal=QP)
        [decision] = [e for e in chain.streams.events(coi_stream(COI)) if isinstance(e, QaDispositionRecorded)]
        assert (decision.decision, decision.role) == ("discard", "qualified_person")
        assert chain.state(A0) is CustodyState.DISCARDED

    @pytest.mark.parametrize("who, org, code", [
        (OPERATOR, FACILITY, "ROLE_NOT_PERMITTED"),  # not the qualified person
        (ROME, "GMP-ROMA", "ROLE_NOT_PERMITTED"),  # no QP role there either
        (NURSE, CENTRE, "ROLE_NOT_PERMITTED"),
    ])
    async def test_only_the_makers_qualified_person_decides(self, who, org, code):
        chain = Chain()
        await released_and_shipped(chain)
        await load(chain, NURSE, [A0], -190, -60)
        await refused(code, chain.bus.send(RecordQaDisposition(
            unit_id=A0, org_id=org, decision=Disposition.ACCEPT, justification="x", decided_at=chain.tick()),
            principal=who))

    async def test_the_data_loader_names_the_facility_and_another_is_refused(self):
        chain = Chain()
        await released_and_shipped(chain)
        await load(chain, NURSE, [A0], -190, -60)
        await refused("NOT_HOLDER", chain.bus.send(RecordQaDisposition(
            unit_id=A0, org_id="GMP-ROMA", decision=Disposition.ACCEPT, justification="x", decided_at=chain.tick()),
            principal=LOADER))

    async def test_a_unit_not_quarantined_needs_no_disposition(self):
        chain = Chain()
        await released_and_shipped(chain)
        await refused("NOT_QUARANTINED", chain.bus.send(RecordQaDisposition(
            unit_id=A0, org_id=FACILITY, decision=Disposition.ACCEPT, justification="x", decided_at=chain.tick()),
            principal=QP))

    async def test_readings_by_an_organisation_that_neither_holds_nor_awaits_the_unit(self):
        chain = Chain()
        await released_and_shipped(chain)
        await refused("NOT_HOLDER", load(chain, ROME, [A0], -190))

    async def test_readings_of_a_unit_never_labelled(self):
        chain = Chain()
        await released_and_shipped(chain)
        await refused("UNKNOWN_UNIT", load(chain, NURSE, [COI + "C0"], -190))

    async def test_the_starting_material_is_kept_at_2_to_8(self):
        chain = Chain()
        await chain.collect()
        await chain.step(COURIER, MATERIAL, CustodyStep.SHIPPED, to=FACILITY)
        events = await load(chain, COURIER, [MATERIAL], 4, 11, 5)
        assert [e.peak_celsius for e in events if isinstance(e, ExcursionDetected)] == [11]


class TestTheBedsideSeesTheQuarantine:
    def test_a_quarantined_bag_is_a_no_go(self):
        from dataclasses import replace

        assert codes(replace(unit(), quarantined=True)) == ["QUARANTINED"]
