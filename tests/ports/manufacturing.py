"""Manufacturing's ports: Enrolments (PgEnrolments, FakeEnrolments) and Organisations
(PgOrganisations, FakeOrganisations)."""

from __future__ import annotations

from datetime import date

from contracts.access import OrgKind
from services.manufacturing.application.ports import Enrolment, Person

SUBJECT, CENTRE, PROGRAMME = "S-0123456789AB", "OSR-MILANO", "CARCIK-CD19-P2"


class EnrolmentsContract:
    async def test_a_subject_never_enrolled_has_no_centre(self, enrolments):
        assert await enrolments.centre_of(SUBJECT) is None

    async def test_an_enrolled_subject_is_at_its_enrolling_centre(self, enrolments):
        await enrolments.add(SUBJECT, PROGRAMME, CENTRE, date(2024, 3, 4))

        assert await enrolments.centre_of(SUBJECT) == CENTRE

    async def test_an_enrolment_learnt_twice_is_kept_as_first_learnt(self, enrolments):
        await enrolments.add(SUBJECT, PROGRAMME, CENTRE, date(2024, 3, 4))

        await enrolments.add(SUBJECT, PROGRAMME, "HSG-MONZA", date(2024, 3, 5))

        assert await enrolments.centre_of(SUBJECT) == CENTRE

    async def test_enrolments_of_other_subjects_do_not_count(self, enrolments):
        await enrolments.add("S-BA9876543210", PROGRAMME, CENTRE, date(2024, 3, 4))

        assert await enrolments.centre_of(SUBJECT) is None

    async def test_enrolments_added_together_are_kept_as_first_learnt_also_among_themselves(self, enrolments):
        await enrolments.add_many([Enrolment(SUBJECT, PROGRAMME, CENTRE, date(2024, 3, 4)),
                                   Enrolment(SUBJECT, PROGRAMME, "HSG-MONZA", date(2024, 3, 5)),
                                   Enrolment("S-BA9876543210", PROGRAMME, "HSG-MONZA", date(2024, 3, 5))])

        assert (await enrolments.centre_of(SUBJECT), await enrolments.centre_of("S-BA9876543210")) == (
            CENTRE, "HSG-MONZA")

    async def test_a_subject_never_enrolled_has_no_programme(self, enrolments):
        assert await enrolments.programme_of(SUBJECT) is None

    async def test_a_subjects_programme_is_the_one_it_was_last_enrolled_in(self, enrolments):
        await enrolments.add(SUBJECT, PROGRAMME, CENTRE, date(2024, 3, 4))
        await enrolments.add(SUBJECT, "NK-PHALL-P1", CENTRE, date(2025, 1, 2))
        await enrolments.add("S-BA9876543210", "CART-BALL", CENTRE, date(2026, 1, 2))

        assert await enrolments.programme_of(SUBJECT) == "NK-PHALL-P1"

    async def test_a_subject_never_enrolled_has_no_enrolment_date(self, enrolments):
        assert await enrolments.enrolled_on(SUBJECT) is None

    async def test_a_subjects_enrolment_date_is_its_first_enrolments(self, enrolments):
        await enrolments.add(SUBJECT, "NK-PHALL-P1", CENTRE, date(2025, 1, 2))
        await enrolments.add(SUBJECT, PROGRAMME, CENTRE, date(2024, 3, 4))
        await enrolments.add("S-BA9876543210", "CART-BALL", CENTRE, date(2023, 1, 2))

        assert await enrolments.enrolled_on(SUBJECT) == date(2024, 3, 4)


class PersonsContract:
    async def test_a_person_never_registered_is_unknown(self, persons):
        assert await persons.centre_of_person(SUBJECT) is None

    async def test_a_registered_person_is_known_at_the_centre_that_registered_them_once(self, persons):
        await persons.add_many([Person(SUBJECT, CENTRE), Person("S-BA9876543210", "HSG-MONZA")])
        await persons.add_many([Person(SUBJECT, "HSG-MONZA")])  # learnt again: kept as first learnt

        assert (await persons.centre_of_person(SUBJECT), await persons.centre_of_person("S-BA9876543210")) == (
            CENTRE, "HSG-MONZA")


# What the `organisations` fixture of a suite knows (the access schema's rows).
KNOWN_ORGANISATIONS = {"GMP-PAVIA": OrgKind.FACILITY, "OSR-MILANO": OrgKind.CENTRE, "NETWORK-OPS": OrgKind.NETWORK}


class OrganisationsContract:
    async def test_each_known_organisation_is_of_its_kind(self, organisations):
        assert {o: await organisations.kind_of(o) for o in KNOWN_ORGANISATIONS} == KNOWN_ORGANISATIONS

    async def test_an_unknown_organisation_has_no_kind(self, organisations):
        assert await organisations.kind_of("GMP-NOWHERE") is None
