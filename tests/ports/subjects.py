"""The kernel's SubjectCentres port (services/kernel/subjects.py): PgSubjectCentres (in
infusion's and assessment's schemas) and FakeSubjectCentres."""

from __future__ import annotations

from services.kernel.subjects import SubjectCentre

SUBJECT = "S-0123456789AB"


class SubjectCentresContract:
    async def test_a_subject_never_learnt_has_no_centre(self, subject_centres):
        assert await subject_centres.centre_of(SUBJECT) is None

    async def test_a_subject_learnt_has_its_centre(self, subject_centres):
        await subject_centres.add_many([SubjectCentre(SUBJECT, "CTR-A"), SubjectCentre("S-BA9876543210", "CTR-B")])

        assert await subject_centres.centre_of(SUBJECT) == "CTR-A"
        assert await subject_centres.centre_of("S-BA9876543210") == "CTR-B"

    async def test_a_subject_learnt_again_keeps_its_first_centre(self, subject_centres):
        await subject_centres.add_many([SubjectCentre(SUBJECT, "CTR-A")])

        await subject_centres.add_many([SubjectCentre(SUBJECT, "CTR-B")])

        assert await subject_centres.centre_of(SUBJECT) == "CTR-A"
