"""Signed events (infra/runtime/access/signing.py): only a record signed by the service that
owns its topic, unchanged, on that topic with that key, of an event type of that service's
context, verifies. Every other case is refused with a reason naming what is wrong."""

from __future__ import annotations

import pytest
from aiokafka import ConsumerRecord

from contracts import topics
from infra.runtime.access.signing import (
    HEADER_PROOF, HEADER_SIGNATURE, HEADER_SIGNER, MAX_BATCH, EventVerifier, RecordSigner, SigningKeyError, merkle,
    climb, parse_public_keys, root_from_proof)
from tests.conftest import TEST_SERVICE_KEYS, signing_settings

VALUE = b'{"event_type":"manufacturing.ProductReleased","payload":{"coi_id":"W0001250000011"}}'
KEY = b"S-000000000001"


def signer(service: str) -> RecordSigner:
    return RecordSigner(service, TEST_SERVICE_KEYS[service])


def record(topic: str, value: bytes = VALUE, key: bytes = KEY, headers=()) -> ConsumerRecord:
    return ConsumerRecord(topic=topic, partition=0, offset=0, timestamp=0, timestamp_type=0, key=key, value=value,
                          checksum=None, serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=list(headers))


@pytest.fixture
def verifier() -> EventVerifier:
    return EventVerifier(parse_public_keys(signing_settings("enrollment")["CELLTRAIL_SERVICE_PUBLIC_KEYS"]))


def signed(service: str, topic: str = topics.MANUFACTURING_EVENTS, value: bytes = VALUE, key: bytes = KEY):
    return signer(service).headers(topic, key, value)


class TestVerify:
    def test_a_record_signed_by_its_topics_owner_verifies(self, verifier) -> None:
        assert verifier.check(record(topics.MANUFACTURING_EVENTS, headers=signed("manufacturing")),
                              "manufacturing.ProductReleased") is None

    def test_an_unsigned_record_is_refused(self, verifier) -> None:
        why = verifier.check(record(topics.MANUFACTURING_EVENTS), "manufacturing.ProductReleased")
        assert why == ("unauthentic event: not signed (topic celltrail.manufacturing.v1 takes only events signed "
                       "by manufacturing)")

    def test_a_record_signed_by_another_service_is_refused(self, verifier) -> None:
        why = verifier.check(record(topics.MANUFACTURING_EVENTS, headers=signed("enrollment")),
                             "manufacturing.ProductReleased")
        assert why == "unauthentic event: signed as 'enrollment', but topic celltrail.manufacturing.v1 is manufacturing's"

    def test_a_record_claiming_the_owner_but_signed_with_another_key_is_refused(self, verifier) -> None:
        [_, signature, proof] = signed("enrollment")
        headers = [(HEADER_SIGNER, b"manufacturing"), signature, proof]
        why = verifier.check(record(topics.MANUFACTURING_EVENTS, headers=headers), "manufacturing.ProductReleased")
        assert why == "unauthentic event: the signature of manufacturing does not verify (forged or altered)"

    def test_a_tampered_value_is_refused(self, verifier) -> None:
        tampered = VALUE.replace(b"W0001250000011", b"W000125000002*")
        why = verifier.check(record(topics.MANUFACTURING_EVENTS, value=tampered, headers=signed("manufacturing")),
                             "manufacturing.ProductReleased")
        assert why and "does not verify" in why

    def test_a_genuine_record_replayed_to_another_topic_is_refused(self, verifier) -> None:
        headers = signed("enrollment", topic=topics.ENROLLMENT_EVENTS)
        # copied onto the manufacturing topic as it was: signed by enrollment, not the owner
        assert "is manufacturing's" in verifier.check(record(topics.MANUFACTURING_EVENTS, headers=headers),
                                                      "enrollment.SubjectEnrolled")
        # a `common.*` event (any service's) with the signer header rewritten: the signature,
        # bound to the topic it was made for, fails
        headers = [(HEADER_SIGNER, b"manufacturing"), *headers[1:]]
        assert "does not verify" in verifier.check(record(topics.MANUFACTURING_EVENTS, headers=headers),
                                                   "common.ChainHeadRecorded")

    def test_a_genuine_record_under_another_key_is_refused(self, verifier) -> None:
        why = verifier.check(record(topics.MANUFACTURING_EVENTS, key=b"S-000000000002",
                                    headers=signed("manufacturing")), "manufacturing.ProductReleased")
        assert why and "does not verify" in why

    def test_an_owner_may_not_publish_another_contexts_event_type(self, verifier) -> None:
        why = verifier.check(record(topics.MANUFACTURING_EVENTS, headers=signed("manufacturing")),
                             "enrollment.SubjectEnrolled")
        assert why == ("unauthentic event: enrollment.SubjectEnrolled is enrollment's, not to be published by "
                       "manufacturing")

    def test_common_events_are_any_services(self, verifier) -> None:
        assert verifier.check(record(topics.MANUFACTURING_EVENTS, headers=signed("manufacturing")),
                              "common.CommandRejected") is None

    def test_signatures_are_deterministic_so_a_republished_event_verifies_the_same(self) -> None:
        assert signed("manufacturing") == signed("manufacturing")
        assert dict(signed("manufacturing"))[HEADER_SIGNATURE] != dict(signed("manufacturing", key=b"x"))[
            HEADER_SIGNATURE]


class TestKeys:
    def test_every_service_needs_a_public_key(self) -> None:
        with pytest.raises(SigningKeyError, match="lacks the key of"):
            EventVerifier(parse_public_keys(signing_settings("enrollment")["CELLTRAIL_SERVICE_PUBLIC_KEYS"]
                                            .split(",", 1)[1]))

    def test_a_malformed_public_key_list_is_refused_naming_the_item(self) -> None:
        with pytest.raises(SigningKeyError, match="is not `service:base64`"):
            parse_public_keys("nobody:AAAA")
        with pytest.raises(SigningKeyError, match="must be 32 bytes"):
            parse_public_keys("enrollment:AAAA")


class TestBatches:
    """One signature over a batch's Merkle root (RFC 9162 §2.1), an inclusion proof per record."""

    def batch(self, n: int, topic: str = topics.MANUFACTURING_EVENTS) -> list[ConsumerRecord]:
        values = [VALUE.replace(b"W0001250000011", f"W00012500{i:04d}X".encode()) for i in range(n)]
        keys = [f"S-{i:012X}".encode() for i in range(n)]
        headers = signer("manufacturing").sign_batch(topic, list(zip(keys, values)))
        return [record(topic, value=v, key=k, headers=h) for v, k, h in zip(values, keys, headers)]

    @pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 63, 64, 65, 130])
    def test_every_record_of_a_batch_verifies_with_one_signature_check_per_batch(self, verifier, n) -> None:
        for r in self.batch(n):
            assert verifier.check(r, "manufacturing.ProductReleased") is None
        assert verifier.signatures_verified == -(-n // MAX_BATCH)

    def test_a_record_altered_in_a_verified_batch_is_refused(self, verifier) -> None:
        first, second, *_ = self.batch(5)
        assert verifier.check(first, "manufacturing.ProductReleased") is None
        altered = record(second.topic, value=second.value.replace(b"W000125", b"W000126"), key=second.key,
                         headers=second.headers)
        assert "does not verify" in verifier.check(altered, "manufacturing.ProductReleased")

    def test_a_proof_moved_to_another_record_of_the_batch_is_refused(self, verifier) -> None:
        first, second, *_ = self.batch(5)
        swapped = record(first.topic, value=first.value, key=first.key, headers=second.headers)
        assert "does not verify" in verifier.check(swapped, "manufacturing.ProductReleased")

    @pytest.mark.parametrize("proof", [b"", b"0/0:", b"5/5:", b"0/2:abc", b"x/1:", b"0/1:" + b"A" * 44])
    def test_a_malformed_or_impossible_proof_is_refused(self, verifier, proof) -> None:
        [r] = self.batch(1)
        headers = [(n, proof if n == HEADER_PROOF else v) for n, v in r.headers]
        why = verifier.check(record(r.topic, value=r.value, key=r.key, headers=headers), "manufacturing.ProductReleased")
        assert why is not None and why.startswith("unauthentic event: ")

    def test_a_batch_signed_for_another_topic_is_refused(self, verifier) -> None:
        [r] = self.batch(1, topic=topics.ENROLLMENT_EVENTS)
        moved = record(topics.MANUFACTURING_EVENTS, value=r.value, key=r.key,
                       headers=[(n, b"manufacturing" if n == HEADER_SIGNER else v) for n, v in r.headers])
        assert "does not verify" in verifier.check(moved, "manufacturing.ProductReleased")


@pytest.mark.parametrize("n", range(1, 40))
def test_every_inclusion_proof_leads_to_the_root_and_no_other_index_does(n) -> None:
    leaves = [bytes([i]) * 32 for i in range(n)]
    root, paths = merkle(leaves)
    for i, path in enumerate(paths):
        assert root_from_proof(leaves[i], i, n, path) == root
        assert all(root_from_proof(leaves[i], j, n, path) != root for j in range(n) if j != i)


def test_a_climb_stops_at_a_node_known_to_be_authentic_and_only_there() -> None:
    leaves = [bytes([i]) * 32 for i in range(64)]
    root, paths = merkle(leaves)
    full, known = climb(leaves[5], 5, 64, paths[5])
    assert full[-1] == root and not known and len(full) == 7  # the leaf and six nodes
    # the nodes of record 4's path (verified with the root) are where record 5 meets it
    verified = set(climb(leaves[4], 4, 64, paths[4])[0][1:])
    hashes, known = climb(leaves[5], 5, 64, paths[5], verified)
    assert known and len(hashes) == 2 and hashes[-1] in verified
    # a leaf that is not the batch's never meets them, whatever proof it borrows
    stranger = bytes([200]) * 32
    hashes, known = climb(stranger, 5, 64, paths[5], verified)
    assert not known and hashes[-1] != root


def test_records_after_the_first_of_a_batch_climb_two_or_three_hashes(monkeypatch) -> None:
    from infra.runtime.access import signing as module

    records = TestBatches().batch(64)
    checker = EventVerifier(parse_public_keys(signing_settings("enrollment")["CELLTRAIL_SERVICE_PUBLIC_KEYS"]))
    nodes = 0
    real = module._node

    def counting(left: bytes, right: bytes) -> bytes:
        nonlocal nodes
        nodes += 1
        return real(left, right)

    monkeypatch.setattr(module, "_node", counting)
    for r in records:
        assert checker.check(r, "manufacturing.ProductReleased") is None
    assert checker.signatures_verified == 1
    # each of the 63 internal nodes is computed once where it is new, and every record after
    # the first computes one more: the known node where its climb stops (3 hashes a record
    # with its leaf's, where a whole proof is 7)
    assert nodes == 63 + 63
