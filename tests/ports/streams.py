"""The Streams port (services.kernel.streams): PgStreams and FakeStreams."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from contracts.events import CentreRegistered, MrdStatus, PatientRegistered, ResponseAssessed, ResponseCategory
from infra.runtime.eventstore import ConcurrencyConflictError

AT = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
STREAM, OTHER_STREAM = "centre-OSR-MILANO", "centre-HSG-MONZA"
FIRST = CentreRegistered(centre_id="OSR-MILANO", name="Ospedale San Raffaele", country="IT")
SECOND = PatientRegistered(subject_id="S-0123456789AB", centre_id="OSR-MILANO")


class StreamsContract:
    async def test_a_stream_never_written_is_empty_at_version_0(self, streams):
        assert await streams.load(STREAM) == ([], 0)

    async def test_appended_events_load_back_in_order_with_their_count_as_version(self, streams):
        await streams.append(STREAM, 0, [FIRST, SECOND], occurred_at=AT, centre_id="OSR-MILANO")

        assert await streams.load(STREAM) == ([FIRST, SECOND], 2)

    async def test_an_append_at_the_loaded_version_continues_the_stream(self, streams):
        await streams.append(STREAM, 0, [FIRST], occurred_at=AT)

        await streams.append(STREAM, 1, [SECOND], occurred_at=AT, subject_id=SECOND.subject_id)

        assert await streams.load(STREAM) == ([FIRST, SECOND], 2)

    async def test_an_append_at_a_stale_version_is_a_conflict(self, streams):
        await streams.append(STREAM, 0, [FIRST], occurred_at=AT)

        with pytest.raises(ConcurrencyConflictError) as conflict:
            await streams.append(STREAM, 0, [SECOND], occurred_at=AT)

        assert (conflict.value.stream_id, conflict.value.expected, conflict.value.actual) == (STREAM, 0, 1)

    async def test_a_conflicting_append_appends_nothing(self, streams):
        await streams.append(STREAM, 0, [FIRST], occurred_at=AT)

        with pytest.raises(ConcurrencyConflictError):
            await streams.append(STREAM, 0, [SECOND], occurred_at=AT)

        assert await streams.load(STREAM) == ([FIRST], 1)

    async def test_an_append_ahead_of_the_stream_is_a_conflict(self, streams):
        with pytest.raises(ConcurrencyConflictError):
            await streams.append(STREAM, 3, [FIRST], occurred_at=AT)

    async def test_streams_are_kept_apart(self, streams):
        await streams.append(STREAM, 0, [FIRST], occurred_at=AT)

        assert await streams.load(OTHER_STREAM) == ([], 0)

    async def test_an_event_loads_back_as_the_typed_payload_appended(self, streams):
        assessed = ResponseAssessed(subject_id="S-0123456789AB", assessed_on=date(2024, 3, 29), study_day=28,
                                    marrow_blasts_percent=1.5, anc_per_ul=2500.0, flow_mrd_percent=0.005,
                                    response_category=ResponseCategory.CR, mrd_status=MrdStatus.NEGATIVE,
                                    morphologic_response=True, flow_response=True)

        await streams.append("assessments-S-0123456789AB", 0, [assessed], occurred_at=AT)

        [loaded], _ = await streams.load("assessments-S-0123456789AB")
        assert loaded == assessed and type(loaded) is ResponseAssessed
