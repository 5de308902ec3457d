"""The canonical encoding of an event row (infra/runtime/chain.py): what an outside party
recomputes the chain from, so it is pinned by a known vector."""

from __future__ import annotations

import hashlib

from infra.runtime.chain import GENESIS, canonical_event, canonical_json, link, parse_json

ROW = {
    "position": 1, "event_id": "0b9d3c4e-8f1a-4c2b-9e3d-5a6b7c8d9e0f", "stream_id": "s-1", "stream_version": 1,
    "event_type": "enrollment.PatientRegistered", "schema_version": 1, "subject_id": "S-000000000001",
    "payload": '{"subject_id": "S-000000000001", "centre_id": "IT-BG-01"}',
    "occurred_at": "2025-01-06T09:00:00.000000Z", "recorded_at": "2025-01-06T09:00:00.123456Z",
    "correlation_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "causation_id": None, "actor": "test",
    "centre_id": None,
}
ENCODED = (
    b'{"actor":"test","causation_id":null,"centre_id":null,"correlation_id":"1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",'
    b'"event_id":"0b9d3c4e-8f1a-4c2b-9e3d-5a6b7c8d9e0f","event_type":"enrollment.PatientRegistered",'
    b'"occurred_at":"2025-01-06T09:00:00.000000Z","payload":{"centre_id":"IT-BG-01","subject_id":"S-000000000001"},'
    b'"position":1,"recorded_at":"2025-01-06T09:00:00.123456Z","schema_version":1,"stream_id":"s-1",'
    b'"stream_version":1,"subject_id":"S-000000000001"}'
)


class TestCanonicalEncoding:
    def test_a_row_encodes_to_the_documented_bytes(self) -> None:
        assert canonical_event(ROW) == ENCODED

    def test_the_first_link_is_sha256_of_zero_bytes_and_the_encoding(self) -> None:
        """The vector was computed apart: `{ head -c 32 /dev/zero; printf %s '<ENCODED>'; } | sha256sum`."""
        first = link(GENESIS, ROW)
        assert first.previous_hash == bytes(32)
        assert first.hash.hex() == "4843641ca3b1a4d772dce9d58f5e88084a35fab491f07fcc16a977d7cd876898"
        assert first.payload_hash == hashlib.sha256(b'{"centre_id":"IT-BG-01","subject_id":"S-000000000001"}').digest()

    def test_key_order_does_not_change_the_encoding(self) -> None:
        reordered = dict(reversed(list(ROW.items())), payload='{"centre_id":"IT-BG-01","subject_id":"S-000000000001"}')
        assert canonical_event(reordered) == ENCODED

    def test_numbers_keep_their_stored_digits(self) -> None:
        assert canonical_json(parse_json('{"b": 1.50, "a": [100, -0.0000001, 12345678901234567890.1]}')) == (
            b'{"a":[100,-0.0000001,12345678901234567890.1],"b":1.50}')

    def test_a_change_below_double_precision_changes_the_hash(self) -> None:
        changed = dict(ROW, payload='{"subject_id": "S-000000000001", "centre_id": "IT-BG-01", "x": 0.1}')
        finer = dict(changed, payload=changed["payload"].replace("0.1", "0.10000000000000000001"))
        assert link(GENESIS, changed).hash != link(GENESIS, finer).hash

    def test_strings_escape_only_quotes_backslashes_and_control_characters(self) -> None:
        assert canonical_json({"k": 'é "q" \\ \n \x01 /'}) == '{"k":"é \\"q\\" \\\\ \\n \\u0001 /"}'.encode()
