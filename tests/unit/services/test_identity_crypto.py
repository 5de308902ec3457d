"""Encryption of identifiers at rest (services/enrollment/adapters/identity_crypto.py):
sealing, key wrapping, the keyring and the blind index."""

from __future__ import annotations

import base64

import pytest

from services.enrollment.adapters.identity_crypto import (
    IdentityKeyError,
    IdentityUnreadable,
    Keyring,
    new_data_key,
    open_field,
    seal_field,
)

SUBJECT, OTHER_SUBJECT = "S-0123456789AB", "S-BA9876543210"
CENTRE, OTHER_CENTRE = "OSR-MILANO", "HSG-MONZA"


def ring(*ids: str) -> Keyring:
    return Keyring.parse(",".join(Keyring.generate(i) for i in ids or ("k1",)))


class TestSealedFields:
    def test_a_sealed_field_opens_to_its_value(self):
        key = new_data_key()

        assert open_field(key, SUBJECT, "family_name", seal_field(key, SUBJECT, "family_name", "Rossi")) == "Rossi"

    def test_the_sealed_bytes_do_not_contain_the_value(self):
        key = new_data_key()

        assert b"Rossi" not in seal_field(key, SUBJECT, "family_name", "Rossi")

    def test_one_value_sealed_twice_gives_different_ciphertexts(self):
        key = new_data_key()

        assert seal_field(key, SUBJECT, "family_name", "Rossi") != seal_field(key, SUBJECT, "family_name", "Rossi")

    def test_a_field_does_not_open_under_another_data_key(self):
        sealed = seal_field(new_data_key(), SUBJECT, "family_name", "Rossi")

        with pytest.raises(IdentityUnreadable):
            open_field(new_data_key(), SUBJECT, "family_name", sealed)

    def test_a_ciphertext_moved_to_another_subject_is_refused(self):
        key = new_data_key()
        sealed = seal_field(key, SUBJECT, "family_name", "Rossi")

        with pytest.raises(IdentityUnreadable):
            open_field(key, OTHER_SUBJECT, "family_name", sealed)

    def test_a_ciphertext_moved_to_another_field_is_refused(self):
        key = new_data_key()
        sealed = seal_field(key, SUBJECT, "family_name", "Rossi")

        with pytest.raises(IdentityUnreadable):
            open_field(key, SUBJECT, "given_name", sealed)

    def test_a_tampered_ciphertext_is_refused(self):
        key = new_data_key()
        sealed = bytearray(seal_field(key, SUBJECT, "family_name", "Rossi"))
        sealed[-1] ^= 1

        with pytest.raises(IdentityUnreadable):
            open_field(key, SUBJECT, "family_name", bytes(sealed))


class TestWrappedDataKeys:
    def test_a_wrapped_data_key_unwraps_under_its_master_key(self):
        master, data_key = ring().current, new_data_key()

        assert master.unwrap(SUBJECT, master.wrap(SUBJECT, data_key)) == data_key

    def test_a_wrapped_data_key_does_not_unwrap_under_another_master_key(self):
        wrapped = ring().current.wrap(SUBJECT, new_data_key())

        with pytest.raises(IdentityUnreadable):
            ring().current.unwrap(SUBJECT, wrapped)

    def test_a_wrapped_data_key_moved_to_another_subject_is_refused(self):
        master = ring().current
        wrapped = master.wrap(SUBJECT, new_data_key())

        with pytest.raises(IdentityUnreadable):
            master.unwrap(OTHER_SUBJECT, wrapped)


class TestBlindIndex:
    def test_the_index_of_one_record_number_is_stable(self):
        master = ring().current

        assert master.blind_index(CENTRE, "MRN-0042") == master.blind_index(CENTRE, "MRN-0042")

    def test_letter_case_and_surrounding_spaces_do_not_change_the_index(self):
        master = ring().current

        assert master.blind_index(CENTRE, " mrn-0042 ") == master.blind_index(CENTRE, "MRN-0042")

    def test_the_index_depends_on_the_centre(self):
        master = ring().current

        assert master.blind_index(CENTRE, "MRN-0042") != master.blind_index(OTHER_CENTRE, "MRN-0042")

    def test_the_index_is_keyed(self):
        assert ring().current.blind_index(CENTRE, "MRN-0042") != ring().current.blind_index(CENTRE, "MRN-0042")

    def test_the_index_is_not_the_wrapping_key_at_work(self):
        master = ring().current

        assert master.index_key != master.wrap_key

    def test_centre_and_record_number_cannot_be_shifted_into_each_other(self):
        master = ring().current

        assert master.blind_index("AB", "C-1") != master.blind_index("ABC", "-1")


class TestKeyring:
    def test_the_first_key_is_current(self):
        assert ring("k2", "k1").current.key_id == "k2"

    def test_a_key_is_found_by_its_id(self):
        keys = ring("k2", "k1")

        assert keys.get("k1") is keys.keys[1]

    def test_a_key_id_not_in_the_ring_is_unreadable(self):
        with pytest.raises(IdentityUnreadable):
            ring("k1").get("k0")

    def test_a_record_number_has_one_index_per_key_of_the_ring(self):
        keys = ring("k2", "k1")

        assert keys.blind_indexes(CENTRE, "MRN-0042") == [k.blind_index(CENTRE, "MRN-0042") for k in keys.keys]

    def test_a_bare_key_gets_a_stable_fingerprint_id(self):
        bare = Keyring.generate().split(":", 1)[1]

        assert Keyring.parse(bare).current.key_id == Keyring.parse(bare).current.key_id
        assert Keyring.parse(bare).current.key_id.startswith("fp-")

    @pytest.mark.parametrize("text", [None, "", "  "])
    def test_no_key_is_refused(self, text):
        with pytest.raises(IdentityKeyError):
            Keyring.parse(text)

    @pytest.mark.parametrize("text", [
        "k1:QUJD!!RE9FRg==",
        "k1:" + base64.b64encode(b"short").decode(),
        "bad id:" + base64.b64encode(bytes(32)).decode(),
        ",".join([Keyring.generate("k1"), Keyring.generate("k1")]),
    ], ids=["not base64", "not 32 bytes", "bad id", "duplicate id"])
    def test_a_malformed_keyring_is_refused_without_echoing_it(self, text):
        with pytest.raises(IdentityKeyError) as refused:
            Keyring.parse(text)

        assert text.split(":", 1)[1][:8] not in str(refused.value)

    def test_a_master_key_never_shows_its_bytes_in_its_repr(self):
        master = ring().current

        assert master.wrap_key.hex() not in repr(master) and repr(master.index_key) not in repr(master)
