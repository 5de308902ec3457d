"""Event registry: events are looked up by stable type strings and old schema versions are
upcast one version at a time before parsing (STYLE.md 3; pyeventsourcing upcasting tests)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.events import MrdStatus, ResponseAssessed
from contracts.envelope import EventEnvelope
from contracts.registry import (
    COMMAND_TYPES,
    EVENT_TYPES,
    UPCASTERS,
    UnknownMessageTypeError,
    UnsupportedSchemaVersionError,
    parse_command,
    parse_event,
)

SUBJECT = "S-0123456789AB"
V1_RESPONSE = {"subject_id": SUBJECT, "assessed_on": "2024-03-29", "study_day": 28,
               "marrow_blasts_percent": 2.0, "mrd_percent": 0.5}


def stored(event_type: str, schema_version: int, payload: dict[str, Any]) -> EventEnvelope:
    now = datetime(2024, 3, 29, tzinfo=timezone.utc)
    return EventEnvelope(event_id=uuid.uuid4(), event_type=event_type, schema_version=schema_version,
                         stream_id=f"assessments-{SUBJECT}", stream_version=1, subject_id=SUBJECT, occurred_at=now,
                         recorded_at=now, correlation_id=uuid.uuid4(), actor="test", payload=payload)


class TestUpcastingResponseAssessed:
    def test_a_v1_response_assessed_is_parsed_as_the_current_version(self):
        event = parse_event(stored("assessment.ResponseAssessed", 1, V1_RESPONSE))

        assert isinstance(event, ResponseAssessed)
        assert (event.subject_id, event.assessed_on, event.study_day, event.marrow_blasts_percent) == (
            SUBJECT, date(2024, 3, 29), 28, 2.0)

    def test_the_v1_mrd_percent_becomes_the_flow_mrd_reading(self):
        event = parse_event(stored("assessment.ResponseAssessed", 1, V1_RESPONSE))

        assert (event.flow_mrd_percent, event.molecular_mrd_percent) == (0.5, None)

    def test_a_v1_event_has_no_derivable_nccn_category(self):
        event = parse_event(stored("assessment.ResponseAssessed", 1, V1_RESPONSE))

        assert event.response_category is None

    # NCCN ALL: MRD negative below 0.01 % (10^-4); v1 recorded one flow MRD value.
    @pytest.mark.parametrize("mrd, status", [
        pytest.param(0.0099, MrdStatus.NEGATIVE, id="0.0099%-below-10^-4-negative"),
        pytest.param(0.01, MrdStatus.POSITIVE, id="0.01%-at-10^-4-positive"),
        pytest.param(0.5, MrdStatus.POSITIVE, id="0.5%-positive"),
        pytest.param(None, MrdStatus.NOT_ASSESSED, id="absent-not-assessed"),
    ])
    def test_the_v1_mrd_value_decides_the_mrd_status(self, mrd, status):
        event = parse_event(stored("assessment.ResponseAssessed", 1, {**V1_RESPONSE, "mrd_percent": mrd}))

        assert event.mrd_status is status

    @pytest.mark.parametrize(
        "blasts, mrd, morphologic, flow",
        [
            # CAR-CIK protocol (seed 000): morphology and flow responses are < 5 % lymphoblasts
            pytest.param(4.9, 4.9, True, True, id="4.9-percent-responds"),
            pytest.param(5.0, 5.0, False, False, id="5.0-percent-does-not"),
            pytest.param(1.0, None, True, None, id="no-flow-reading"),
        ],
    )
    def test_the_v1_readings_use_the_car_cik_5_percent_limits(self, blasts, mrd, morphologic, flow):
        payload = {**V1_RESPONSE, "marrow_blasts_percent": blasts, "mrd_percent": mrd}

        event = parse_event(stored("assessment.ResponseAssessed", 1, payload))

        assert (event.morphologic_response, event.flow_response) == (morphologic, flow)

    def test_a_current_version_event_is_parsed_unchanged(self):
        current = ResponseAssessed(subject_id=SUBJECT, assessed_on=date(2024, 3, 29), study_day=28,
                                   marrow_blasts_percent=1.0, mrd_status=MrdStatus.NEGATIVE,
                                   morphologic_response=True, molecular_mrd_percent=0.001)

        parsed = parse_event(stored(current.event_type, current.schema_version, current.model_dump(mode="json")))

        assert parsed == current


class TestRefusedEnvelopes:
    def test_an_unknown_event_type_is_refused_by_name(self):
        with pytest.raises(UnknownMessageTypeError):
            parse_event(stored("assessment.NoSuchThing", 1, {}))

    def test_a_schema_version_newer_than_the_reader_is_refused(self):
        future = ResponseAssessed.schema_version + 1

        with pytest.raises(UnsupportedSchemaVersionError):
            parse_event(stored("assessment.ResponseAssessed", future, V1_RESPONSE))


class TestRegistry:
    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_every_event_type_is_registered_under_its_own_stable_string(self, event_type):
        cls = EVENT_TYPES[event_type]

        # Never a Python class path (STYLE.md 3): renaming a class must not orphan stored events.
        assert cls.event_type == event_type and not event_type.startswith(cls.__module__)

    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_every_event_type_has_a_schema_version_of_at_least_1(self, event_type):
        assert EVENT_TYPES[event_type].schema_version >= 1

    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_every_later_version_has_an_upcaster_chain_from_version_1(self, event_type):
        missing = [v for v in range(1, EVENT_TYPES[event_type].schema_version) if (event_type, v) not in UPCASTERS]

        assert missing == []

    def test_every_upcaster_belongs_to_a_registered_type_below_its_current_version(self):
        from contracts.export import ENVELOPE_VERSION

        current = {**{t: c.schema_version for t, c in EVENT_TYPES.items()},
                   **{t: c.schema_version for t, c in COMMAND_TYPES.items()},
                   "EventEnvelope": ENVELOPE_VERSION, "CommandEnvelope": ENVELOPE_VERSION}
        assert all(t in current and 1 <= v < current[t] for t, v in UPCASTERS)

    def test_an_envelope_of_v1_keeps_a_principal_id_and_marks_free_text_as_legacy(self):
        from contracts.envelope import upcast_envelope_v1_to_v2

        assert upcast_envelope_v1_to_v2({"actor": "celltrail-load"})["actor"] == "celltrail-load"
        assert upcast_envelope_v1_to_v2({"actor": "Dr. J. Smith"})["actor"] == "legacy.dr.-j.-smith"


class TestIsbt128Cois:
    """Issue 9: the COI became ISBT 128-shaped. Events recorded before keep their COI; a
    command is read as v2 and its COI checked."""

    V1_COLLECTED = {"coi_id": "COI-BG-0001", "subject_id": SUBJECT, "centre_id": "IT-BG-01",
                    "collected_at": "2025-01-24T08:30:00Z"}

    def test_a_v1_event_keeps_the_coi_it_recorded(self):
        from contracts.envelope import EventEnvelope
        from tests.unit.services.fakes import envelope
        from contracts.events import ApheresisCollected

        payload = ApheresisCollected.model_validate({**self.V1_COLLECTED, "coi_id": "G123498654321H"})
        env = envelope(payload, subject_id=SUBJECT, occurred_at=payload.collected_at)
        old = EventEnvelope.model_validate({**env.model_dump(), "schema_version": 1, "payload": self.V1_COLLECTED})
        assert parse_event(old).coi_id == "COI-BG-0001"

    def _command(self, version: int, coi: str):
        from contracts.envelope import CommandEnvelope

        return CommandEnvelope.model_validate({
            "command_id": "00000000-0000-4000-8000-000000000001", "command_type": "RecordApheresisCollection",
            "schema_version": version, "correlation_id": "00000000-0000-4000-8000-000000000002",
            "actor": "celltrail-cli", "issued_at": "2025-01-24T08:30:00Z",
            "payload": {**self.V1_COLLECTED, "coi_id": coi}})

    def test_a_v1_command_with_an_isbt_coi_is_read_and_its_coi_kept_compact(self):
        assert parse_command(self._command(1, "G1234 98 654321 H")).coi_id == "G123498654321H"

    def test_a_v1_command_with_a_free_text_coi_is_refused_naming_it(self):
        with pytest.raises(ValidationError, match="'COI-BG-0001' has 11 characters; an identifier has 14"):
            parse_command(self._command(1, "COI-BG-0001"))

    def test_a_mistyped_coi_is_refused_saying_so(self):
        with pytest.raises(ValidationError, match="check character 'K' does not match G123498654321"):
            parse_command(self._command(2, "G123498654321K"))
