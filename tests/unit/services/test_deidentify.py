"""What the network operator is shown of a subject: no chain-of-identity id, lot number or
date finer than the year (services/projection/domain/deidentify.py), and everything else."""

from __future__ import annotations

import json
import re

from services.projection.domain.deidentify import REMOVED, deidentified
from tests.unit.services.test_projection import COI, SUBJECT as SUBJECT_ID, at, fold_all, journey

DATE = re.compile(r"\d{4}-\d{2}")  # any date or instant finer than the year


def full_view() -> dict:
    return fold_all(journey()).to_json()


class TestDeidentified:
    def test_the_full_view_holds_what_is_removed_so_this_test_means_something(self) -> None:
        text = json.dumps(full_view())
        assert COI in text and "LOT-" in text.upper() and DATE.search(text)

    def test_no_chain_of_identity_id_lot_number_or_date_is_left(self) -> None:
        shown = deidentified(full_view())
        text = json.dumps(shown)
        assert COI not in text
        assert not re.search(r"lot (?!\[removed\])", text, re.IGNORECASE)
        assert not DATE.search(text), text
        assert shown["identifiers_removed"] is True

    def test_what_the_network_reports_on_is_kept(self) -> None:
        view, shown = full_view(), deidentified(full_view())
        for key in ("subject_id", "centre_id", "programme_id", "phase", "day28", "vein_to_vein_days"):
            assert shown[key] == view[key], key
        assert [t["event_type"] for t in shown["timeline"]] == [t["event_type"] for t in view["timeline"]]
        assert [t["at"] for t in shown["timeline"]] == [t["at"][:4] for t in view["timeline"]]
        assert [p["coi_id"] for p in shown["products"]] == [REMOVED] * len(view["products"])

    def test_the_view_given_is_not_changed(self) -> None:
        view = full_view()
        before = json.dumps(view, sort_keys=True)
        deidentified(view)
        assert json.dumps(view, sort_keys=True) == before


class TestEveryPartOfTheView:
    """Units, bookings, signatures, quarantines: a unit's id holds its COI, and every date of
    the person's care is cut to the year, wherever in the view it stands."""

    def view(self) -> dict:
        from datetime import date

        from contracts import events as ev
        from contracts.custody import SlotKind
        from tests.unit.services.test_projection import TestUnits, signed

        booked = ev.SlotBooked(subject_id=SUBJECT_ID, slot_org_id="OSR-MILANO", kind=SlotKind.APHERESIS,
                               on=date(2024, 3, 10), number=1, capacity=2)
        return fold_all([*journey(), *TestUnits().custody(), signed(), (booked, at(booked.on))]).to_json()

    def test_the_full_view_holds_unit_ids_and_dates_outside_the_timeline_so_this_test_means_something(self) -> None:
        view = self.view()
        assert COI in json.dumps(view["units"]) and DATE.search(json.dumps(view["signatures"]))
        assert "on 2024-03-10" in json.dumps(view["timeline"])

    def test_no_coi_in_a_unit_id_and_no_date_finer_than_the_year_is_left_anywhere(self) -> None:
        shown = deidentified(self.view())
        text = json.dumps(shown)
        assert COI not in text and not DATE.search(text), text
        assert {u["unit_id"] for u in shown["units"]} == {f"{REMOVED}A0", f"{REMOVED}B0"}

    def test_the_units_states_and_holders_are_kept(self) -> None:
        view = self.view()
        assert [(u["state"], u["holder"]) for u in deidentified(view)["units"]] == [
            (u["state"], u["holder"]) for u in view["units"]]
