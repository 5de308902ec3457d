"""Secrets at rest: only argon2id hashes (RFC 9106) are stored, never a password or a key.

API keys are for systems. A key reads `ctk_<key id>_<secret>`: the key id (16 hex digits)
is stored in clear as the credential's primary key, so verifying a key is one lookup by id
and one hash verification, never a scan over every stored hash; the secret (32 random
bytes, base64url) is shown once when the key is made and is stored only as its hash.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Passwords: argon2-cffi's defaults, RFC 9106's second recommended profile (argon2id,
# t=3, m=64 MiB, p=4). NIST SP 800-63B §5.1.1.2 asks at least 8 characters; we ask 12.
_PASSWORDS = PasswordHasher()
MIN_PASSWORD_LENGTH = 12
# API keys carry 256 random bits, so a slow hash adds nothing against guessing; they are
# verified on every request, so the cheaper OWASP minimum (argon2id, m=19 MiB, t=2, p=1).
_KEYS = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)

KEY_PREFIX = "ctk"
_KEY = re.compile(r"^ctk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class WeakPassword(ValueError):
    """A password too short to set."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _PASSWORDS.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    return _verify(_PASSWORDS, stored_hash, password)


@dataclass(frozen=True)
class NewApiKey:
    key_id: str
    key: str  # the whole key, shown once, never stored
    hash: str  # argon2id of the secret part: what is stored


def new_api_key() -> NewApiKey:
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return NewApiKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", _KEYS.hash(secret))


def parse_api_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    m = _KEY.match(presented)
    return (m.group(1), m.group(2)) if m else None


def verify_api_key(stored_hash: str, secret: str) -> bool:
    return _verify(_KEYS, stored_hash, secret)


def _verify(hasher: PasswordHasher, stored_hash: str, secret: str) -> bool:
    try:
        return hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
