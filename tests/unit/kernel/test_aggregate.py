"""Rebuilding an aggregate: its one `apply` over its stream's events, in order."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from contracts.base import EventPayload
from contracts.events import CentreRegistered, PatientRegistered
from services.kernel.aggregate import Aggregate, rebuild


@dataclass
class Seen(Aggregate):
    seen: list[str] = field(default_factory=list)

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, CentreRegistered):
            self.seen.append(event.centre_id)


def registered(centre_id: str) -> CentreRegistered:
    return CentreRegistered(centre_id=centre_id, name="Centre", country="IT")


class TestRebuild:
    def test_events_are_applied_in_stream_order(self):
        assert rebuild(Seen(), [registered("A-1"), registered("B-2")]).seen == ["A-1", "B-2"]

    def test_no_events_leave_the_initial_state(self):
        assert rebuild(Seen(["X-0"]), []).seen == ["X-0"]

    def test_an_event_type_the_aggregate_does_not_follow_changes_nothing(self):
        other = PatientRegistered(subject_id="S-0123456789AB", centre_id="A-1")

        assert rebuild(Seen(), [other]).seen == []

    def test_an_aggregate_without_apply_cannot_be_made(self):
        class NoApply(Aggregate):
            pass

        with pytest.raises(TypeError, match="apply"):
            NoApply()
