"""Programmes as data (issue 10 item 1; services/enrollment/domain/programmes.py): the four
bundled definitions, one per seed, are what the clinical rules' own tables say; a definition
the contract or the rules refuse is refused naming what is wrong; each change is a new
version; a subject keeps the version it was enrolled under."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from pydantic import ValidationError

from contracts.commands import EnrollSubject, PublishProgramme, RegisterCentre, ScreenCandidate
from contracts.errors import CommandRefused
from contracts.events import ProgrammePublished, SubjectEnrolled
from contracts.programmes import ProgrammeDefinition
from infra.tooling.programmes import bundled
from services.clinical import eligibility, lymphodepletion, second_infusion
from services.enrollment import bootstrap
from services.enrollment.application import handlers
from services.enrollment.domain.model import subject_stream
from services.enrollment.domain.programmes import programme_stream, rules_of
from tests.unit.services.fakes import IMPORTER, Bus, FakeIdentities, FakeStreams
from tests.unit.services.test_enrollment_handlers import patient_cmd

DEFINITIONS = {d.programme_id: d for d in bundled()}


def edited(programme_id: str, **changes: object) -> dict:
    data = copy.deepcopy(DEFINITIONS[programme_id].model_dump(mode="json"))
    for path, value in changes.items():
        *outer, last = path.split("__")
        target = data
        for key in outer:
            target = target[key]
        target[last] = value
    return data


class TestTheBundledDefinitions:
    def test_one_per_seed_programme(self):
        assert sorted(DEFINITIONS) == ["CARCIK-CD19-P2", "CART-BALL-RR", "CART-CD19-AUTOIMMUNE", "NK-PHALL-P1"]
        assert [DEFINITIONS[p].source.split()[1] for p in sorted(DEFINITIONS)] == ["000", "002", "003", "001"]

    @pytest.mark.parametrize("programme_id, table", [
        ("CARCIK-CD19-P2", eligibility.CARCIK_CD19_RR_BCP_ALL),
        ("NK-PHALL-P1", eligibility.NK_PH_POSITIVE_ALL_MRD),
        ("CART-CD19-AUTOIMMUNE", eligibility.CD19_CAR_T_REFRACTORY_SLE),
    ])
    def test_eligibility_is_the_clinical_rules_table_of_the_seed(self, programme_id, table):
        import dataclasses

        rules = rules_of(DEFINITIONS[programme_id])
        assert dataclasses.replace(rules.eligibility, name=table.name) == table

    @pytest.mark.parametrize("programme_id, regimen", [
        ("CART-BALL-RR", lymphodepletion.FLU_CY_SEED_CAR_T),  # seed 002: Flu 25 x 3, Cy 900
        ("CART-CD19-AUTOIMMUNE", lymphodepletion.FLU_CY_AUTOIMMUNE),  # seed 003: Flu 30 D-5..-3, Cy 500 D-4/-3
        ("NK-PHALL-P1", None),  # seed 001: "No conditioning"
        ("CARCIK-CD19-P2", None),
    ])
    def test_lymphodepletion_is_the_seeds_regimen_or_none(self, programme_id, regimen):
        built = rules_of(DEFINITIONS[programme_id]).lymphodepletion
        assert (built.agents if built else None) == (regimen.agents if regimen else None)

    def test_seed_001_escalates_by_3_plus_3_in_two_steps_to_at_most_6_patients(self):
        d = DEFINITIONS["NK-PHALL-P1"]
        assert (d.escalation.design.value, d.escalation.max_sample_size, len(d.dose_levels)) == ("3+3", 6, 2)
        assert rules_of(d).escalation == 6

    def test_seed_000_allows_a_second_infusion_by_its_residual_disease_policy(self):
        d = DEFINITIONS["CARCIK-CD19-P2"]
        assert d.max_infusions == 2 and rules_of(d).second_infusion == second_infusion.CARCIK_CD19_DEFAULT_POLICY
        assert [(a.assessment, a.study_day, a.month) for a in d.assessments][1:] == [
            ("day 28", 28, None), *[(f"month {m}", None, m) for m in (2, 3, 4, 5, 6, 9, 12)]]

    def test_seed_003_doses_1e6_car_t_cells_per_kg(self):
        assert [(lv.level, lv.cells_per_kg) for lv in DEFINITIONS["CART-CD19-AUTOIMMUNE"].dose_levels] == [(1, 1e6)]


class TestARefusedDefinition:
    @pytest.mark.parametrize("programme_id, changes, names", [
        ("CART-BALL-RR", {"eligibility__max_eccog": 2}, "eligibility: max_eccog: not a parameter"),
        ("CART-BALL-RR", {"eligibility__diagnoses": ["gout"]}, "eligibility"),
        ("CART-BALL-RR", {"lymphodepletion__agents": [{"agent": "fludarabine", "mg_per_m2_per_day": 25,
                                                        "study_days": [2]}]}, "lymphodepletion"),
        ("CARCIK-CD19-P2", {"second_infusion__blocking_grade": 7}, "second_infusion"),
        ("NK-PHALL-P1", {"dose_levels": [{"level": 1}, {"level": 3}]}, "dose levels are numbered 1..K"),
    ])
    def test_the_clinical_rules_refuse_it_naming_the_section(self, programme_id, changes, names):
        with pytest.raises(CommandRefused) as refused:
            rules_of(ProgrammeDefinition.model_validate(edited(programme_id, **changes)))
        assert refused.value.code == "INVALID_PROGRAMME" and names in refused.value.reason

    @pytest.mark.parametrize("programme_id, changes, message", [
        ("CART-CD19-AUTOIMMUNE", {"dose_levels": [{"level": 1, "cells_per_kg": 1e6, "flat_cells": 1e8}]},
         "not both"),
        ("CART-BALL-RR", {"max_infusions": 1, "second_infusion": {"blocking_grade": 3}}, "max_infusions"),
        ("CART-BALL-RR", {"assessments": [{"assessment": "day 28", "study_day": 28},
                                          {"assessment": "baseline", "study_day": -1}]}, "order"),
        ("CART-BALL-RR", {"assessments": [{"assessment": "x", "study_day": 1, "month": 1}]}, "one of them"),
        ("NK-PHALL-P1", {"escalation__design": "boin"}, "target_dlt_rate"),
    ])
    def test_the_contract_refuses_it_naming_what_is_wrong(self, programme_id, changes, message):
        with pytest.raises(ValidationError, match=message):
            ProgrammeDefinition.model_validate(edited(programme_id, **changes))


def wired(streams: FakeStreams) -> Bus:
    """Enrollment, its commands as an import (the data loader: no screening needed)."""
    return Bus(bootstrap.spec, acting=IMPORTER, streams=streams, identities=FakeIdentities())


class TestVersions:
    async def test_each_change_is_a_new_version_and_an_unchanged_one_is_refused(self):
        streams = FakeStreams()
        d = DEFINITIONS["NK-PHALL-P1"]
        await wired(streams).send(PublishProgramme(definition=d))
        with pytest.raises(CommandRefused) as refused:
            await wired(streams).send(PublishProgramme(definition=d))
        assert refused.value.code == "PROGRAMME_UNCHANGED"

        await wired(streams).send(PublishProgramme(definition=ProgrammeDefinition.model_validate(
            edited("NK-PHALL-P1", escalation__dlt_window_days=42))))

        versions = streams.events(programme_stream("NK-PHALL-P1"))
        assert [(v.version, v.definition.escalation.dlt_window_days) for v in versions] == [(1, 28), (2, 42)]
        assert all(isinstance(v, ProgrammePublished) for v in versions)

    async def test_a_refused_definition_publishes_nothing(self):
        streams = FakeStreams()
        bad = ProgrammeDefinition.model_validate(edited("CARCIK-CD19-P2", second_infusion__blocking_grade=9))
        with pytest.raises(CommandRefused):
            await wired(streams).send(PublishProgramme(definition=bad))
        assert streams.appended == []

    async def test_a_subject_keeps_the_version_it_was_enrolled_under(self):
        streams = FakeStreams()
        await wired(streams).send(RegisterCentre(centre_id="OSR-MILANO", name="San Raffaele", country="IT"))
        await wired(streams).send(PublishProgramme(definition=DEFINITIONS["NK-PHALL-P1"]))
        first, _ = await handlers.register_patient(patient_cmd(record="MRN-1"), streams, FakeIdentities())
        second, _ = await handlers.register_patient(patient_cmd(record="MRN-2"), streams, FakeIdentities())

        def enrol(subject_id: str) -> EnrollSubject:
            return EnrollSubject(subject_id=subject_id, programme_id="NK-PHALL-P1", centre_id="OSR-MILANO",
                                 enrolled_on=date(2025, 3, 3))

        await wired(streams).send(enrol(first))
        await wired(streams).send(PublishProgramme(definition=ProgrammeDefinition.model_validate(
            edited("NK-PHALL-P1", escalation__dlt_window_days=42))))
        await wired(streams).send(enrol(second))

        versions = {s: next(e for e in streams.events(subject_stream(s)) if isinstance(e, SubjectEnrolled))
                    .programme_version for s in (first, second)}
        assert versions == {first: 1, second: 2}

    async def test_a_programme_never_published_enrols_no_one(self):
        streams = FakeStreams()
        await wired(streams).send(RegisterCentre(centre_id="OSR-MILANO", name="San Raffaele", country="IT"))
        subject, _ = await handlers.register_patient(patient_cmd(), streams, FakeIdentities())
        with pytest.raises(CommandRefused) as refused:
            await wired(streams).send(EnrollSubject(subject_id=subject, programme_id="NK-PHALL-P1",
                                                    centre_id="OSR-MILANO", enrolled_on=date(2025, 3, 3)))
        assert refused.value.code == "UNKNOWN_PROGRAMME" and "celltrail programmes publish" in refused.value.reason


class TestScreening:
    """Issue 10 item 2: a screening records the candidate's facts and the eligibility result
    with every failed criterion; an ineligible candidate is not enrolled. Seed 001's criteria:
    Ph+ ALL in CHR with MRD, aged 60 or more unless not eligible for other treatment."""

    NK = "NK-PHALL-P1"
    ELIGIBLE = {"diagnosis": "B-cell precursor ALL", "ph_status": "Ph+", "disease_status": "CR with MRD",
                "eligible_for_other_treatment": True}

    async def network(self, born: date = date(1950, 1, 1)) -> tuple[FakeStreams, FakeIdentities, str]:
        streams, identities = FakeStreams(), FakeIdentities()
        await wired(streams).send(RegisterCentre(centre_id="OSR-MILANO", name="San Raffaele", country="IT"))
        await wired(streams).send(PublishProgramme(definition=DEFINITIONS[self.NK]))
        subject, _ = await handlers.register_patient(patient_cmd().model_copy(update={"date_of_birth": born}),
                                                     streams, identities)
        return streams, identities, subject

    async def screen(self, streams, identities, subject, facts: dict, on: date = date(2025, 3, 1)):
        [screened] = await handlers.screen_candidate(ScreenCandidate(
            subject_id=subject, programme_id=self.NK, centre_id="OSR-MILANO", screened_on=on, facts=facts),
            streams, identities)
        return screened

    def enrol(self, subject: str) -> EnrollSubject:
        return EnrollSubject(subject_id=subject, programme_id=self.NK, centre_id="OSR-MILANO",
                             enrolled_on=date(2025, 3, 3))

    @pytest.mark.parametrize("born, facts, failed", [
        (date(1950, 1, 1), ELIGIBLE, []),  # 75: eligible
        (date(1965, 3, 2), ELIGIBLE, ["age"]),  # 59 the day before the 60th birthday, other treatment possible
        (date(1965, 3, 1), ELIGIBLE, []),  # 60 on the day itself
        (date(1980, 1, 1), {**ELIGIBLE, "eligible_for_other_treatment": False}, []),  # the seed's "or"
        (date(1950, 1, 1), {**ELIGIBLE, "ph_status": "Ph-", "disease_status": "relapsed"},
         ["Philadelphia chromosome", "disease status"]),  # every failure, never only the first
        (date(1950, 1, 1), {"ph_status": "Ph+", "disease_status": "CR with MRD"}, ["diagnosis"]),  # not recorded
    ])
    async def test_every_failed_criterion_with_its_reason(self, born, facts, failed):
        streams, identities, subject = await self.network(born)
        screened = await self.screen(streams, identities, subject, facts)
        assert ([f.criterion for f in screened.failures], screened.eligible) == (failed, not failed)
        assert screened.programme_version == 1 and all(f.reason for f in screened.failures)

    async def test_the_age_is_computed_by_enrollment_and_no_date_of_birth_leaves_it(self):
        streams, identities, subject = await self.network(date(1950, 6, 15))
        screened = await self.screen(streams, identities, subject, self.ELIGIBLE)
        assert screened.age_years == 74 and "1950" not in screened.model_dump_json()
        with pytest.raises(CommandRefused) as refused:
            await self.screen(streams, identities, subject, {**self.ELIGIBLE, "age_years": 80})
        assert refused.value.code == "INVALID_SCREENING"

    async def test_facts_the_rule_does_not_know_are_refused_naming_them(self):
        streams, identities, subject = await self.network()
        with pytest.raises(CommandRefused) as refused:
            await self.screen(streams, identities, subject, {**self.ELIGIBLE, "ecog_status": 1})
        assert refused.value.code == "INVALID_SCREENING" and "ecog_status" in refused.value.reason

    async def test_an_ineligible_candidate_is_not_enrolled_and_a_later_eligible_screening_enrols(self):
        streams, identities, subject = await self.network()
        await self.screen(streams, identities, subject, {**self.ELIGIBLE, "ph_status": "Ph-"})
        person = Bus(bootstrap.spec, streams=streams, identities=FakeIdentities())  # a clinician, not an import
        with pytest.raises(CommandRefused) as refused:
            await person.send(self.enrol(subject))
        assert refused.value.code == "NOT_ELIGIBLE" and "Philadelphia chromosome" in refused.value.reason

        await self.screen(streams, identities, subject, self.ELIGIBLE, on=date(2025, 3, 2))
        await person.send(self.enrol(subject))
        assert isinstance(streams.events(subject_stream(subject))[-1], SubjectEnrolled)

    async def test_a_clinician_enrols_only_a_screened_candidate_an_import_may_not_hold_one(self):
        streams, identities, subject = await self.network()
        with pytest.raises(CommandRefused) as refused:
            await Bus(bootstrap.spec, streams=streams, identities=FakeIdentities()).send(self.enrol(subject))
        assert refused.value.code == "NOT_SCREENED"
        await wired(streams).send(self.enrol(subject))  # the data loader's import of an enrolment made elsewhere

    async def test_a_screening_against_an_earlier_version_is_outdated(self):
        streams, identities, subject = await self.network()
        await self.screen(streams, identities, subject, self.ELIGIBLE)
        await wired(streams).send(PublishProgramme(definition=ProgrammeDefinition.model_validate(
            edited(self.NK, escalation__dlt_window_days=42))))
        with pytest.raises(CommandRefused) as refused:
            await Bus(bootstrap.spec, streams=streams, identities=FakeIdentities()).send(self.enrol(subject))
        assert refused.value.code == "SCREENING_OUTDATED"

    async def test_a_subject_of_another_centre_or_a_programme_never_published(self):
        streams, identities, subject = await self.network()
        with pytest.raises(CommandRefused, match="registered at OSR-MILANO"):
            await handlers.screen_candidate(ScreenCandidate(
                subject_id=subject, programme_id=self.NK, centre_id="HSG-MONZA", screened_on=date(2025, 3, 1),
                facts=self.ELIGIBLE), streams, identities)
        with pytest.raises(CommandRefused) as refused:
            await handlers.screen_candidate(ScreenCandidate(
                subject_id=subject, programme_id="CART-BALL-RR", centre_id="OSR-MILANO",
                screened_on=date(2025, 3, 1), facts=self.ELIGIBLE), streams, identities)
        assert refused.value.code == "UNKNOWN_PROGRAMME"
