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
JSON, payload, actor and all) breaks it. Ed25519 signatures are deterministic (RFC 8032
§5.1.6), so a republished event carries the same signature as the first time.

The signature travels in two headers: `celltrail-signer` (the service name) and
`celltrail-signature` (the 64 signature bytes in base64: Tansu 0.6 stops serving a
partition's records to aiokafka once a header value is not UTF-8, found in
tests/integration/test_broker_authenticity.py). Nothing is re-encoded: the relay signs the
bytes it sends, the consumer verifies the bytes it received, before it parses them.

Keys. A service holds its private key only (`CELLTRAIL_SERVICE_KEY`: the 32-byte Ed25519
seed, base64); every service holds every service's public key
(`CELLTRAIL_SERVICE_PUBLIC_KEYS`: `service:base64,...`). `celltrail up` generates one pair
per service into its home (mode 0600); tests make their own.

Cost (docs/design.md, "Broker"): with `cryptography` (OpenSSL) one signature takes about
25 us and one verification about 70 us on the machine the benchmark runs on.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import ConsumerRecord
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts import topology

HEADER_SIGNER = "celltrail-signer"
HEADER_SIGNATURE = "celltrail-signature"
_DOMAIN = b"celltrail-event-v1\x00"


class SigningKeyError(ValueError):
    """A configured service key is malformed; the message says which and how."""


def signed_bytes(topic: str, key: bytes | None, value: bytes) -> bytes:
    return b"".join((_DOMAIN, topic.encode(), b"\x00", key or b"", b"\x00", value))


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
        signature = base64.b64encode(self._key.sign(signed_bytes(topic, key, value)))
        return [self._signer_header, (HEADER_SIGNATURE, signature)]


UNAUTHENTIC = "unauthentic event: "

# Which service owns each event topic: the only one whose signature is accepted there.
OWNERS: Mapping[str, str] = {topology.events_topic(s): s for s in topology.SERVICES}


@dataclass
class EventVerifier:
    """Checks that a record on an event topic is signed by the topic's owner and that its
    event type is of the owner's context (`common.*` is any service's). Every reason it gives
    starts with `UNAUTHENTIC`, which is how the consumer counts them once dead-lettered."""

    public_keys: Mapping[str, Ed25519PublicKey]

    def __post_init__(self) -> None:
        missing = sorted(set(topology.SERVICES) - set(self.public_keys))
        if missing:
            raise SigningKeyError(f"CELLTRAIL_SERVICE_PUBLIC_KEYS lacks the key of {', '.join(missing)}")

    def check(self, record: ConsumerRecord, event_type: str) -> str | None:
        """None when authentic, else why not."""
        owner = OWNERS.get(record.topic)
        if owner is None:
            return f"{UNAUTHENTIC}{record.topic} is not an event topic"
        signer = signature = None
        for name, value in record.headers or ():
            if name == HEADER_SIGNER:
                signer = value
            elif name == HEADER_SIGNATURE:
                signature = value
        if signature is None or signer is None:
            return f"{UNAUTHENTIC}not signed (topic {record.topic} takes only events signed by {owner})"
        if signer != owner.encode():
            return (f"{UNAUTHENTIC}signed as {signer[:40].decode(errors='replace')!r}, but topic "
                    f"{record.topic} is {owner}'s")
        context_owner = topology.service_of_event(event_type)
        if context_owner not in (None, owner):
            return f"{UNAUTHENTIC}{event_type} is {context_owner}'s, not to be published by {owner}"
        try:
            self.public_keys[owner].verify(base64.b64decode(signature, validate=True),
                                           signed_bytes(record.topic, record.key, record.value or b""))
        except (InvalidSignature, binascii.Error, ValueError):
            return f"{UNAUTHENTIC}the signature of {owner} does not verify (forged or altered)"
        return None
