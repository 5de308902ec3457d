"""Enrollment's Identities port: PgIdentities and FakeIdentities."""

from __future__ import annotations

from datetime import date

import pytest

from services.enrollment.application.ports import IdentityAlreadyRecorded

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
