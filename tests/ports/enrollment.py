"""Enrollment's Identities port: PgIdentities and FakeIdentities."""

from __future__ import annotations

from datetime import date

import pytest

from services.enrollment.application.ports import Identity, IdentityAlreadyRecorded

CENTRE, OTHER_CENTRE = "OSR-MILANO", "HSG-MONZA"
SUBJECT, OTHER_SUBJECT = "S-0123456789AB", "S-BA9876543210"


async def keep(identities, subject_id: str = SUBJECT, centre_id: str = CENTRE, record: str = "MRN-0042") -> None:
    await identities.add(subject_id, centre_id, record, "Rossi", "Maria", date(1980, 5, 17))


class IdentitiesContract:
    async def test_an_unknown_record_number_finds_no_subject(self, identities):
        assert await identities.find(CENTRE, "MRN-0042") is None

    async def test_a_kept_identity_is_found_by_its_centre_and_record_number(self, identities):
        await keep(identities)

        assert await identities.find(CENTRE, "MRN-0042") == SUBJECT

    async def test_the_same_record_number_at_another_centre_is_another_person(self, identities):
        await keep(identities)

        await keep(identities, OTHER_SUBJECT, OTHER_CENTRE)

        assert (await identities.find(CENTRE, "MRN-0042"), await identities.find(OTHER_CENTRE, "MRN-0042")) == (
            SUBJECT, OTHER_SUBJECT)

    async def test_a_second_identity_for_one_record_number_at_one_centre_is_refused(self, identities):
        await keep(identities)

        with pytest.raises(IdentityAlreadyRecorded):
            await keep(identities, OTHER_SUBJECT)

    async def test_a_refused_identity_leaves_the_first_in_place(self, identities):
        await keep(identities)

        with pytest.raises(IdentityAlreadyRecorded):
            await keep(identities, OTHER_SUBJECT)

        assert await identities.find(CENTRE, "MRN-0042") == SUBJECT

    async def test_a_second_identity_under_one_subject_id_is_refused(self, identities):
        await keep(identities)

        with pytest.raises(IdentityAlreadyRecorded):
            await keep(identities, record="MRN-0043")

    async def test_a_record_number_is_found_whatever_its_letter_case_and_surrounding_spaces(self, identities):
        await keep(identities, record="MRN-0042")

        assert await identities.find(CENTRE, "  mrn-0042 ") == SUBJECT

    async def test_a_kept_identity_reads_back_as_registered(self, identities):
        await keep(identities)

        assert await identities.get(SUBJECT) == Identity(CENTRE, "MRN-0042", "Rossi", "Maria", date(1980, 5, 17))

    async def test_a_subject_without_an_identity_reads_back_none(self, identities):
        assert await identities.get(SUBJECT) is None

    async def test_an_erased_identity_can_no_longer_be_read(self, identities):
        await keep(identities)

        assert await identities.erase(SUBJECT) is True

        assert await identities.get(SUBJECT) is None

    async def test_an_erased_identity_is_no_longer_found_by_its_record_number(self, identities):
        await keep(identities)

        await identities.erase(SUBJECT)

        assert await identities.find(CENTRE, "MRN-0042") is None

    async def test_after_erasure_the_same_record_number_can_be_kept_under_a_new_subject(self, identities):
        await keep(identities)
        await identities.erase(SUBJECT)

        await keep(identities, OTHER_SUBJECT)

        assert await identities.find(CENTRE, "MRN-0042") == OTHER_SUBJECT

    async def test_erasure_leaves_other_identities_in_place(self, identities):
        await keep(identities)
        await keep(identities, OTHER_SUBJECT, record="MRN-0043")

        await identities.erase(SUBJECT)

        assert await identities.find(CENTRE, "MRN-0043") == OTHER_SUBJECT

    async def test_erasing_a_subject_without_an_identity_removes_nothing(self, identities):
        assert await identities.erase(SUBJECT) is False
