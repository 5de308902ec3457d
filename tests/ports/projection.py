"""The projection's ports: ReadModels (PgReadModels, FakeReadModels) and Outcomes
(StoredOutcomes, FakeOutcomes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from contracts import events as ev
from services.projection.domain.subject_view import SubjectView, fold
from tests.unit.services.fakes import envelope

SUBJECT, OTHER_SUBJECT = "S-0123456789AB", "S-BA9876543210"
AT = datetime(2024, 3, 27, 10, 30, tzinfo=timezone.utc)


def journey(subject_id: str = SUBJECT) -> SubjectView:
    """A view with every kind of field filled: enrolment, product, timeline and day 28, a
    unit's QC results and certified release out of specification, and an open sponsor
    notification."""
    view = SubjectView(subject_id)
    unit, tested_at = "W0001250000011A0", datetime(2024, 3, 20, 9, 0, tzinfo=timezone.utc)
    for event in (
        ev.QcResultsRecorded(unit_id=unit, coi_id="W0001250000011", subject_id=subject_id,
                             programme_id="CARCIK-CD19-P2", specification_version=1, within_specification=False,
                             results=[ev.JudgedResult(attribute="viability_percent", value=61.0, criterion=">= 70 %",
                                                      passed=False)], failed=["viability_percent"], org_id="GMP-PAVIA",
                             role="qc_analyst", location="QC lab", scanned_id=unit, tested_at=tested_at,
                             expires_at=datetime(2025, 3, 20, tzinfo=timezone.utc), use_within_minutes=60),
        ev.SponsorNotificationRaised(coi_id="W0001250000011", subject_id=subject_id, unit_ids=[unit],
                                     failed=["viability_percent"], facility_id="GMP-PAVIA", raised_at=tested_at),
        ev.ReleaseCertified(coi_id="W0001250000011", subject_id=subject_id, facility_id="GMP-PAVIA",
                            release_event_id=uuid.UUID(int=7), signer="qp.p", printed_name="P. Qp",
                            units=[ev.CertifiedUnit(unit_id=unit, out_of_specification=True,
                                                    expires_at=datetime(2025, 3, 20, tzinfo=timezone.utc),
                                                    use_within_minutes=60)],
                            signed_at=datetime(2024, 3, 24, 12, 0, tzinfo=timezone.utc), record_hash="ab" * 32),
        ev.PatientRegistered(subject_id=subject_id, centre_id="OSR-MILANO"),
        ev.SubjectEnrolled(subject_id=subject_id, programme_id="CARCIK-CD19-P2", centre_id="OSR-MILANO",
                           enrolled_on=date(2024, 3, 4)),
        ev.ApheresisCollected(coi_id="W0001250000011", subject_id=subject_id, centre_id="OSR-MILANO",
                              collected_at=datetime(2024, 3, 10, 9, 0, tzinfo=timezone.utc)),
        ev.ProductInfused(subject_id=subject_id, coi_id="W0001250000011", infused_at=AT, infusion_number=1,
                          unit_id="W0001250000011A0", out_of_specification=True),
        ev.ResponseAssessed(subject_id=subject_id, assessed_on=date(2024, 4, 24), study_day=28,
                            marrow_blasts_percent=1.0, response_category=ev.ResponseCategory.CR,
                            mrd_status=ev.MrdStatus.NEGATIVE, morphologic_response=True),
    ):
        view = fold(view, event, AT)
    return view


class ReadModelsContract:
    async def test_a_subject_without_a_view_is_left_out(self, read_models):
        assert await read_models.get_many([SUBJECT]) == {}

    async def test_a_view_put_is_got_back_equal(self, read_models):
        await read_models.put_many([journey(), SubjectView(OTHER_SUBJECT)])

        assert await read_models.get_many([SUBJECT, OTHER_SUBJECT]) == {
            SUBJECT: journey(), OTHER_SUBJECT: SubjectView(OTHER_SUBJECT)}

    async def test_a_view_put_again_replaces_the_earlier_one(self, read_models):
        await read_models.put_many([SubjectView(SUBJECT)])

        await read_models.put_many([journey()])

        assert await read_models.get_many([SUBJECT]) == {SUBJECT: journey()}


def v2v(subject_id: str = SUBJECT, days: int = 17) -> ev.VeinToVeinTimeDetermined:
    return ev.VeinToVeinTimeDetermined(subject_id=subject_id, programme_id="CARCIK-CD19-P2", coi_id="W0001250000011",
                                       days=days)


def cause(subject_id: str = SUBJECT):
    return envelope(ev.PatientRegistered(subject_id=subject_id, centre_id="OSR-MILANO"), subject_id=subject_id,
                    occurred_at=AT)


class OutcomesContract:
    """Besides `outcomes`, a subclass provides `published`: an async function returning the
    outcome events published so far, in order."""

    async def test_an_emitted_outcome_is_published(self, outcomes, published):
        await outcomes.emit_many([(v2v(), f"v2v:{SUBJECT}:W0001250000011", cause())])

        assert await published() == [v2v()]

    async def test_an_outcome_emitted_again_is_not_published_again(self, outcomes, published):
        await outcomes.emit_many([(v2v(), f"v2v:{SUBJECT}:W0001250000011", cause())])

        await outcomes.emit_many([(v2v(), f"v2v:{SUBJECT}:W0001250000011", cause())])

        assert await published() == [v2v()]

    async def test_one_key_twice_in_one_emission_is_published_once(self, outcomes, published):
        await outcomes.emit_many([(v2v(), f"v2v:{SUBJECT}:W0001250000011", cause()),
                                  (v2v(days=18), f"v2v:{SUBJECT}:W0001250000011", cause())])

        assert await published() == [v2v()]

    async def test_outcomes_with_different_keys_are_each_published(self, outcomes, published):
        await outcomes.emit_many([(v2v(), f"v2v:{SUBJECT}:W0001250000011", cause()),
                                  (v2v(OTHER_SUBJECT), f"v2v:{OTHER_SUBJECT}:W0001250000011", cause(OTHER_SUBJECT))])

        assert await published() == [v2v(), v2v(OTHER_SUBJECT)]

    async def test_nothing_emitted_publishes_nothing(self, outcomes, published):
        await outcomes.emit_many([])

        assert await published() == []
