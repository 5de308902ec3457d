"""Secrets at rest: argon2id hashes only; API keys found by id, then checked against the hash."""

from __future__ import annotations

import pytest

from infra.runtime.access import credentials as c


class TestPasswords:
    def test_a_password_is_stored_as_an_argon2id_hash_that_does_not_contain_it(self) -> None:
        hashed = c.hash_password("correct horse battery")
        assert hashed.startswith("$argon2id$") and "correct horse battery" not in hashed

    def test_the_password_verifies_and_another_does_not(self) -> None:
        hashed = c.hash_password("correct horse battery")
        assert c.verify_password(hashed, "correct horse battery")
        assert not c.verify_password(hashed, "correct horse battery!")

    def test_the_same_password_hashes_differently_each_time(self) -> None:
        assert c.hash_password("correct horse battery") != c.hash_password("correct horse battery")

    def test_a_short_password_is_refused(self) -> None:
        with pytest.raises(c.WeakPassword, match="at least 12"):
            c.hash_password("short")

    def test_a_malformed_stored_hash_verifies_nothing(self) -> None:
        assert not c.verify_password("not-a-hash", "correct horse battery")


class TestApiKeys:
    def test_a_key_names_its_id_and_its_hash_holds_neither_the_key_nor_its_secret(self) -> None:
        key = c.new_api_key()
        key_id, secret = c.parse_api_key(key.key)
        assert key.key == f"ctk_{key.key_id}_{secret}" and key_id == key.key_id
        assert key.hash.startswith("$argon2id$") and secret not in key.hash and key.key not in key.hash

    def test_the_secret_verifies_against_the_hash_and_a_changed_one_does_not(self) -> None:
        key = c.new_api_key()
        _, secret = c.parse_api_key(key.key)
        assert c.verify_api_key(key.hash, secret)
        assert not c.verify_api_key(key.hash, secret[:-1] + ("A" if secret[-1] != "A" else "B"))

    def test_another_keys_secret_does_not_verify(self) -> None:
        one, other = c.new_api_key(), c.new_api_key()
        assert one.key_id != other.key_id
        assert not c.verify_api_key(one.hash, c.parse_api_key(other.key)[1])

    @pytest.mark.parametrize("presented", ["", "ctk_", "ctk_0123456789abcdef_short", "xyz_0123456789abcdef_" + "a" * 43,
                                           "ctk_0123456789ABCDEF_" + "a" * 43, "Bearer ctk_0123456789abcdef_" + "a" * 43])
    def test_a_malformed_key_is_not_parsed(self, presented: str) -> None:
        assert c.parse_api_key(presented) is None
