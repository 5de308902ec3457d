"""Manufacturing's Enrolments port: PgEnrolments and FakeEnrolments."""

from __future__ import annotations

from datetime import date

from services.manufacturing.application.ports import Enrolment

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
