"""Assessment's Infusions port: PgInfusions and FakeInfusions."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from services.assessment.application.ports import Infusion

SUBJECT = "S-0123456789AB"
CET = timezone(timedelta(hours=1))


class InfusionsContract:
    async def test_a_subject_never_infused_has_no_first_infusion(self, infusions):
        assert await infusions.first_infusion_on(SUBJECT) is None

    async def test_the_first_infusion_is_dated_where_it_happened_not_in_utc(self, infusions):
        # 00:30 CET on 2 March is still 1 March in UTC: study day 0 is 2 March.
        await infusions.add(SUBJECT, 1, datetime(2024, 3, 2, 0, 30, tzinfo=CET))

        assert await infusions.first_infusion_on(SUBJECT) == date(2024, 3, 2)

    async def test_the_lowest_infusion_number_is_the_first_whatever_the_order_learnt(self, infusions):
        await infusions.add(SUBJECT, 2, datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc))

        await infusions.add(SUBJECT, 1, datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc))

        assert await infusions.first_infusion_on(SUBJECT) == date(2024, 3, 1)

    async def test_an_infusion_learnt_twice_is_kept_as_first_learnt(self, infusions):
        await infusions.add(SUBJECT, 1, datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc))

        await infusions.add(SUBJECT, 1, datetime(2024, 3, 9, 10, 0, tzinfo=timezone.utc))

        assert await infusions.first_infusion_on(SUBJECT) == date(2024, 3, 1)

    async def test_infusions_of_other_subjects_do_not_count(self, infusions):
        await infusions.add("S-BA9876543210", 1, datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc))

        assert await infusions.first_infusion_on(SUBJECT) is None

    async def test_infusions_added_together_are_kept_as_first_learnt_also_among_themselves(self, infusions):
        await infusions.add_many([Infusion(SUBJECT, 1, datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)),
                                  Infusion(SUBJECT, 1, datetime(2024, 3, 9, 10, 0, tzinfo=timezone.utc)),
                                  Infusion("S-BA9876543210", 1, datetime(2024, 3, 2, 0, 30, tzinfo=CET))])

        assert (await infusions.first_infusion_on(SUBJECT), await infusions.first_infusion_on("S-BA9876543210")) == (
            date(2024, 3, 1), date(2024, 3, 2))


# --- Escalations (PgEscalations, FakeEscalations) -------------------------------------------
from services.assessment.application.ports import Escalation  # noqa: E402


class EscalationsContract:
    async def test_a_subject_outside_an_escalation_has_none(self, escalations):
        assert await escalations.of("S-0123456789AB") is None

    async def test_a_subjects_escalation_is_kept_as_first_learnt(self, escalations):
        first = Escalation("S-0123456789AB", "NK-PHALL-P1", 1, 28)
        await escalations.add_many([first, Escalation("S-BA9876543210", "NK-PHALL-P1", 2, 28)])
        await escalations.add_many([Escalation("S-0123456789AB", "NK-PHALL-P1", 2, 21)])

        assert await escalations.of("S-0123456789AB") == first
        assert (await escalations.of("S-BA9876543210")).dose_level == 2

    async def test_the_programmes_dlt_definition_is_kept_with_it(self, escalations):
        rule = {"min_grade": 3, "min_grade_haematological": 4, "haematological_terms": ["Anemia"],
                "min_attribution": "possible", "source": "Le Tourneau 2009"}
        await escalations.add_many([Escalation("S-0123456789AB", "NK-PHALL-P1", 1, 28, rule)])
        assert (await escalations.of("S-0123456789AB")).dlt_rule == rule


# --- Ages (PgAges, FakeAges) -------------------------------------------------------------------
from datetime import date as _date  # noqa: E402

from services.assessment.application.ports import SubjectAge  # noqa: E402
from services.assessment.domain.toxicity import AgeAtEnrolment  # noqa: E402


class AgesContract:
    async def test_a_subject_never_enrolled_has_none(self, ages):
        assert await ages.of("S-0123456789AB") is None

    async def test_the_age_at_the_first_enrolment_is_kept_an_unknown_one_too(self, ages):
        first = AgeAtEnrolment(_date(2025, 3, 3), 9)
        await ages.add_many([SubjectAge("S-0123456789AB", first), SubjectAge("S-BA9876543210",
                                                                              AgeAtEnrolment(_date(2025, 3, 3), None))])
        await ages.add_many([SubjectAge("S-0123456789AB", AgeAtEnrolment(_date(2026, 1, 1), 10))])
        assert await ages.of("S-0123456789AB") == first
        assert (await ages.of("S-BA9876543210")).age_years is None
