"""Signed events: an event is applied only when it provably comes from the service that owns
its topic (issue 8, item 4).

Each service has its own Ed25519 key pair (RFC 8032). Its relay signs every record it
publishes; every consumer (the services and the projection) verifies, before it applies an
event from topic T, that the record carries a signature by the service that owns T
(`contracts.topology`: `celltrail.manufacturing.v1` is manufacturing's, `celltrail.outcomes.v1`
the projection's) and that the event's type belongs to that service's context. A record
that fails is never applied: the consumer dead-letters it with the reason, counts it in
/status, and goes on with the partition.

What is signed: the record as it travels, bound to where it travels,

    "celltrail-event-v1" NUL topic NUL key NUL value

so a genuine record copied to another topic, or given another key (another partition,
another subject's order), no longer verifies, and any change to the value (the envelope's
JSON, payload, actor and all) breaks it.

Signed a batch at a time (issue 7: one Ed25519 verification per record per consumer was
the largest cost of applying events once issue 8 signed them; `python -m
infra.bench.signing`). The relay hashes each record of a batch it publishes (at most
`MAX_BATCH`) into a Merkle tree as RFC 9162 (Certificate Transparency 2.0) §2.1 builds one:
leaf hash SHA-256(0x00 || the bytes above), node hash SHA-256(0x01 || left || right). It signs
the root once,

    "celltrail-batch-v1" NUL topic NUL root

and each record carries the signature and its inclusion proof (RFC 9162 §2.1.3: its index,
the batch's size, the sibling hashes on its path). A consumer recomputes the root from the
record's own bytes and the proof, and verifies the signature over that root once per batch
(a verified root is remembered with every node of its tree: a later record of the batch
climbs its proof only until it meets one, since a hash under an authentic node is in the
signed tree; leaves and nodes are hashed apart, 0x00 and 0x01, so neither passes for the
other): so a record is accepted exactly when the service signed a root that includes it, as
a signature of its own would prove, and Ed25519 runs once per batch, not once per record. A record signed alone (no proof header; what relays wrote before)
is verified over its own bytes.

The signature travels in headers: `celltrail-signer` (the service name),
`celltrail-signature` (the 64 signature bytes in base64: Tansu 0.6 stops serving a
partition's records to aiokafka once a header value is not UTF-8, found in
tests/integration/test_broker_authenticity.py) and `celltrail-proof`
(`index/size:` and the sibling hashes in base64). Nothing is re-encoded: the relay signs the
bytes it sends, the consumer verifies the bytes it received, before it parses them.

Keys. A service holds its private key only (`CELLTRAIL_SERVICE_KEY`: the 32-byte Ed25519
seed, base64); every service holds every service's public key
(`CELLTRAIL_SERVICE_PUBLIC_KEYS`: `service:base64,...`). `celltrail up` generates one pair
per service into its home (mode 0600); tests make their own.

Cost (docs/design.md, "Broker"; `python -m infra.bench.signing`): with `cryptography`
(OpenSSL) one Ed25519 signature takes about 45 us and one verification about 100 us on the
machine the benchmark runs on; per record in batches of 64, a few microseconds of hashing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts import topology

HEADER_SIGNER = "celltrail-signer"
HEADER_SIGNATURE = "celltrail-signature"
HEADER_PROOF = "celltrail-proof"
_DOMAIN = b"celltrail-event-v1\x00"
_BATCH_DOMAIN = b"celltrail-batch-v1\x00"
# Records under one signature: a proof of log2(64) = 6 hashes (256 base64 characters).
MAX_BATCH = 64
_PROOF = re.compile(rb"^(\d{1,5})/(\d{1,5}):([A-Za-z0-9+/=]*)$")


class SigningKeyError(ValueError):
    """A configured service key is malformed; the message says which and how."""


def signed_bytes(topic: str, key: bytes | None, value: bytes) -> bytes:
    return b"".join((_DOMAIN, topic.encode(), b"\x00", key or b"", b"\x00", value))


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(topic: str, key: bytes | None, value: bytes) -> bytes:
    return _sha256(b"\x00" + signed_bytes(topic, key, value))


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def merkle(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """(root, each leaf's inclusion path) of RFC 9162 §2.1.1's tree: split at the largest
    power of two below the size; a leaf's path lists its siblings from the leaf upwards."""
    if len(leaves) == 1:
        return leaves[0], [[]]
    k = 1 << (len(leaves) - 1).bit_length() - 1
    left, left_paths = merkle(leaves[:k])
    right, right_paths = merkle(leaves[k:])
    return _node(left, right), [p + [right] for p in left_paths] + [p + [left] for p in right_paths]


def root_from_proof(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 §2.1.3.2), None if it cannot be one."""
    climbed = climb(leaf, index, size, path)
    return None if climbed is None else climbed[0][-1]


def climb(leaf: bytes, index: int, size: int, path: Sequence[bytes],
          known: Container[bytes] = ()) -> tuple[list[bytes], bool] | None:
    """The hashes from `leaf` up an inclusion proof (RFC 9162 §2.1.3.2), the root last, and
    False; or, as soon as one of them is in `known` (nodes of trees whose root verified), the
    hashes up to it and True: the leaf is then under an authentic node, so in its signed
    tree. None if the proof cannot be one."""
    if not 0 <= index < size:
        return None
    fn, sn, r, hashes = index, size - 1, leaf, [leaf]
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        hashes.append(r)
        if r in known:
            return hashes, True
        fn >>= 1
        sn >>= 1
    return (hashes, False) if sn == 0 else None


def batch_message(topic: str, root: bytes) -> bytes:
    return b"".join((_BATCH_DOMAIN, topic.encode(), b"\x00", root))


def generate_service_key() -> str:
    """A new Ed25519 private key: its 32-byte seed, base64."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.b64encode(raw).decode()


def _raw(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(f"{what} is not base64") from None
    if len(raw) != 32:
        raise SigningKeyError(f"{what} must be 32 bytes (an Ed25519 key), not {len(raw)}")
    return raw


def public_key_of(private_b64: str) -> str:
    key = Ed25519PrivateKey.from_private_bytes(_raw(private_b64, "the service key"))
    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)).decode()


def format_public_keys(keys: Mapping[str, str]) -> str:
    return ",".join(f"{service}:{key}" for service, key in sorted(keys.items()))


def parse_public_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """`service:base64[,service:base64...]`: every service's public key, each service once."""
    keys: dict[str, Ed25519PublicKey] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        service, sep, b64 = item.partition(":")
        if not sep or service not in topology.SERVICES:
            raise SigningKeyError(f"CELLTRAIL_SERVICE_PUBLIC_KEYS: {item[:40]!r} is not `service:base64` "
                                  f"with a service of {', '.join(topology.SERVICES)}")
        if service in keys:
            raise SigningKeyError(f"CELLTRAIL_SERVICE_PUBLIC_KEYS names {service} twice")
        keys[service] = Ed25519PublicKey.from_public_bytes(_raw(b64, f"the public key of {service}"))
    return keys


class RecordSigner:
    """A service's signature on the records its relay publishes."""

    def __init__(self, service: str, private_b64: str) -> None:
        if service not in topology.SERVICES:
            raise SigningKeyError(f"{service!r} is not a service")
        self.service = service
        self._key = Ed25519PrivateKey.from_private_bytes(_raw(private_b64, f"the key of {service}"))
        self._signer_header = (HEADER_SIGNER, service.encode())

    def headers(self, topic: str, key: bytes | None, value: bytes) -> list[tuple[str, bytes]]:
        """One record's headers (a batch of one)."""
        return self.sign_batch(topic, [(key, value)])[0]

    def sign_batch(self, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> list[list[tuple[str, bytes]]]:
        """Each record's headers, in order: one signature per `MAX_BATCH` records, over the
        root of their Merkle tree, and each record's inclusion proof (module docstring)."""
        out: list[list[tuple[str, bytes]]] = []
        for start in range(0, len(records), MAX_BATCH):
            chunk = records[start:start + MAX_BATCH]
            root, paths = merkle([leaf_hash(topic, key, value) for key, value in chunk])
            signature = (HEADER_SIGNATURE, base64.b64encode(self._key.sign(batch_message(topic, root))))
            for i, path in enumerate(paths):
                proof = f"{i}/{len(chunk)}:".encode() + base64.b64encode(b"".join(path))
                out.append([self._signer_header, signature, (HEADER_PROOF, proof)])
        return out


UNAUTHENTIC = "unauthentic event: "

# Which service owns each event topic: the only one whose signature is accepted there.
OWNERS: Mapping[str, str] = {topology.events_topic(s): s for s in topology.SERVICES}


@dataclass
class EventVerifier:
    """Checks that a record on an event topic is signed by the topic's owner and that its
    event type is of the owner's context (`common.*` is any service's). Every reason it gives
    starts with `UNAUTHENTIC`, which is how the consumer counts them once dead-lettered."""

    public_keys: Mapping[str, Ed25519PublicKey]
    # (owner, topic) -> the nodes of the Merkle trees whose root's signature verified, root
    # included: a batch is verified once, and a later record of it climbs its proof only
    # until it meets one of them (two or three hashes instead of seven for a batch of 64)
    _nodes: dict[tuple[str, str], set[bytes]] = field(default_factory=dict)
    signatures_verified: int = 0  # Ed25519 verifications done (for the benchmark and tests)

    def __post_init__(self) -> None:
        missing = sorted(set(topology.SERVICES) - set(self.public_keys))
        if missing:
            raise SigningKeyError(f"CELLTRAIL_SERVICE_PUBLIC_KEYS lacks the key of {', '.join(missing)}")

    def check(self, record: ConsumerRecord, event_type: str) -> str | None:
        """None when authentic, else why not."""
        owner = OWNERS.get(record.topic)
        if owner is None:
            return f"{UNAUTHENTIC}{record.topic} is not an event topic"
        signer = signature = proof = None
        for name, value in record.headers or ():
            if name == HEADER_SIGNER:
                signer = value
            elif name == HEADER_SIGNATURE:
                signature = value
            elif name == HEADER_PROOF:
                proof = value
        if signature is None or signer is None:
            return f"{UNAUTHENTIC}not signed (topic {record.topic} takes only events signed by {owner})"
        if signer != owner.encode():
            return (f"{UNAUTHENTIC}signed as {signer[:40].decode(errors='replace')!r}, but topic "
                    f"{record.topic} is {owner}'s")
        context_owner = topology.service_of_event(event_type)
        if context_owner not in (None, owner):
            return f"{UNAUTHENTIC}{event_type} is {context_owner}'s, not to be published by {owner}"
        value = record.value or b""
        if proof is None:  # signed alone
            return self._verify(owner, signature, signed_bytes(record.topic, record.key, value))
        climbed = self._climb(record.topic, record.key, value, proof, self._nodes.get((owner, record.topic), ()))
        if climbed is None:
            return f"{UNAUTHENTIC}the inclusion proof of {owner}'s batch signature is malformed"
        hashes, under_verified = climbed
        why = None if under_verified else self._verify(owner, signature, batch_message(record.topic, hashes[-1]))
        if why is None:  # the nodes climbed are authentic: under the root verified, or a node of it
            nodes = self._nodes.setdefault((owner, record.topic), set())
            if len(nodes) >= 65_536:
                nodes.clear()
            nodes.update(hashes[1:])
        return why

    @staticmethod
    def _climb(topic: str, key: bytes | None, value: bytes, proof: bytes,
               known: Container[bytes]) -> tuple[list[bytes], bool] | None:
        m = _PROOF.match(proof)
        if m is None:
            return None
        try:
            hashes = base64.b64decode(m[3], validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(hashes) % 32:
            return None
        path = [hashes[i:i + 32] for i in range(0, len(hashes), 32)]
        # A wrong root only fails the signature: the proof cannot make a record authentic.
        return climb(leaf_hash(topic, key, value), int(m[1]), int(m[2]), path, known)

    def _verify(self, owner: str, signature: bytes, message: bytes) -> str | None:
        self.signatures_verified += 1
        try:
            self.public_keys[owner].verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return f"{UNAUTHENTIC}the signature of {owner} does not verify (forged or altered)"
        return None
