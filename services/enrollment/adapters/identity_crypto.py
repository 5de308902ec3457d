"""Encryption of direct identifiers at rest: envelope encryption under a keyring from the
settings, with one random data key per person (crypto-shredding), and a keyed blind index
for lookup by record number. Pure: no I/O; `PgIdentities` and `celltrail identities` use it.

- **Keyring** (`CELLTRAIL_IDENTITY_KEY`): comma-separated `id:key` entries, each key 32 random
  bytes in base64; the first is current (wraps new data keys), the others only unwrap rows
  written under them until `celltrail identities encrypt` moves those rows to the current
  key. A bare `key` entry gets its fingerprint as id. Nothing here has a default key.
- **Sub-keys**: each master key is split by HKDF-SHA256 (RFC 5869) into a wrapping key and a
  blind-index key, so neither use of the secret can be turned against the other.
- **Data keys**: AES-256-GCM (NIST SP 800-38D) with a random 96-bit nonce. A person's fields
  are sealed under their own data key, with the subject id and the field name as associated
  data, so a ciphertext moved to another row or field fails to open; the data key is wrapped
  by the master's wrapping key with the subject id and key id as associated data. Deleting
  the wrapped data key makes every copy of that person's ciphertexts unreadable.
- **Blind index**: HMAC-SHA256 under the blind-index key over the centre id and the
  normalised record number (length-prefixed, so no two pairs share an encoding). Equality
  lookups need no decryption; without the key the index reveals nothing but equality.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
_FIELD_CONTEXT = b"celltrail/identity-field/v1"
_WRAP_CONTEXT = b"celltrail/identity-data-key/v1"


class IdentityKeyError(ValueError):
    """The configured keyring is missing or malformed; the message never contains key bytes."""


class IdentityUnreadable(Exception):
    """A ciphertext or wrapped key did not authenticate: wrong key, no key (erased), or a value
    moved from another row or field."""


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                info=b"celltrail/identity/" + purpose).derive(secret)


def _framed(*parts: str | bytes) -> bytes:
    """Length-prefixed concatenation: unambiguous associated data and MAC input."""
    out = bytearray()
    for part in parts:
        raw = part.encode() if isinstance(part, str) else part
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def normalise_record_number(record: str) -> str:
    """The form a hospital record number is indexed under: surrounding spaces and letter case
    do not make another person (`mrn-0042 ` is `MRN-0042`)."""
    return record.strip().upper()


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    wrap_key: bytes = field(repr=False)
    index_key: bytes = field(repr=False)

    @classmethod
    def from_secret(cls, key_id: str, secret: bytes) -> "MasterKey":
        return cls(key_id, _derive(secret, b"wrap"), _derive(secret, b"blind-index"))

    def blind_index(self, centre_id: str, record: str) -> bytes:
        return hmac.new(self.index_key, _framed(centre_id, normalise_record_number(record)), hashlib.sha256).digest()

    def wrap(self, subject_id: str, data_key: bytes) -> bytes:
        return _seal(self.wrap_key, data_key, _framed(_WRAP_CONTEXT, subject_id, self.key_id))

    def unwrap(self, subject_id: str, wrapped: bytes) -> bytes:
        return _open(self.wrap_key, wrapped, _framed(_WRAP_CONTEXT, subject_id, self.key_id))


@dataclass(frozen=True)
class Keyring:
    keys: tuple[MasterKey, ...]

    @classmethod
    def parse(cls, text: str | None) -> "Keyring":
        if not text or not text.strip():
            raise IdentityKeyError("no identity key: set CELLTRAIL_IDENTITY_KEY to `id:key` (key = 32 random bytes"
                                   " in base64), e.g. `k1:$(head -c32 /dev/urandom | base64)`")
        keys = []
        for n, entry in enumerate(e.strip() for e in text.split(",")):
            key_id, sep, encoded = entry.rpartition(":")
            try:
                secret = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise IdentityKeyError(f"CELLTRAIL_IDENTITY_KEY entry {n + 1} is not base64") from None
            if len(secret) != KEY_BYTES:
                raise IdentityKeyError(f"CELLTRAIL_IDENTITY_KEY entry {n + 1} is {len(secret)} bytes, not {KEY_BYTES}")
            if not sep:
                key_id = "fp-" + hashlib.sha256(b"celltrail/identity/key-id" + secret).hexdigest()[:12]
            if not _KEY_ID.match(key_id):
                raise IdentityKeyError(f"CELLTRAIL_IDENTITY_KEY entry {n + 1}: key id must match {_KEY_ID.pattern}")
            keys.append(MasterKey.from_secret(key_id, secret))
        if len({k.key_id for k in keys}) != len(keys):
            raise IdentityKeyError("CELLTRAIL_IDENTITY_KEY names one key id twice")
        return cls(tuple(keys))

    @staticmethod
    def generate(key_id: str = "k1") -> str:
        """A new one-key keyring, as `CELLTRAIL_IDENTITY_KEY` takes it."""
        return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"

    @property
    def current(self) -> MasterKey:
        return self.keys[0]

    def get(self, key_id: str) -> MasterKey:
        for key in self.keys:
            if key.key_id == key_id:
                return key
        raise IdentityUnreadable(f"identity key {key_id!r} is not in the configured keyring")

    def blind_indexes(self, centre_id: str, record: str) -> list[bytes]:
        """The record's index under every key of the ring: rows not yet moved to the current
        key are found too."""
        return [k.blind_index(centre_id, record) for k in self.keys]


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal_field(data_key: bytes, subject_id: str, name: str, value: str) -> bytes:
    return _seal(data_key, value.encode(), _framed(_FIELD_CONTEXT, subject_id, name))


def open_field(data_key: bytes, subject_id: str, name: str, sealed: bytes) -> str:
    return _open(data_key, sealed, _framed(_FIELD_CONTEXT, subject_id, name)).decode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise IdentityUnreadable("an identity ciphertext did not authenticate (wrong key, erased key,"
                                 " or a value moved from another row or field)") from None
