"""Every date and instant a contract carries is bounded to [1900-01-01, 2200-01-01) UTC
(contracts/times.py): a year-1 date once became `-infinity` in the store and stopped a relay."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, get_args

import pytest
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from contracts.commands import RegisterPatient
from contracts.envelope import CommandEnvelope, EventEnvelope
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from contracts.times import ClinicalDate, Instant

MODELS = [*EVENT_TYPES.values(), *COMMAND_TYPES.values(), EventEnvelope, CommandEnvelope]
SAMPLES = {dt.date: ("0001-01-01", "2025-01-06"),  # (refused, accepted)
           AwareDatetime: ("0001-01-01T00:00:00Z", "2025-01-06T09:00:00+01:00")}
TIME_FIELDS = [(model.__name__, name, Annotated[(f.annotation, *f.metadata)], SAMPLES[f.annotation])
               for model in MODELS for name, f in model.model_fields.items() if f.annotation in SAMPLES]


class TestBounds:
    @pytest.mark.parametrize("model, field, annotation, samples", TIME_FIELDS,
                             ids=[f"{m}.{f}" for m, f, _, _ in TIME_FIELDS])
    def test_every_time_field_of_every_contract_refuses_year_one_and_accepts_a_clinical_date(
            self, model: str, field: str, annotation: Any, samples: tuple[str, str]):
        adapter = TypeAdapter(annotation)
        with pytest.raises(ValidationError):
            adapter.validate_python(samples[0])
        adapter.validate_python(samples[1])

    def test_no_contract_field_holds_an_unbounded_date_or_time(self):
        def times_in(annotation: Any) -> bool:
            return annotation in (dt.date, dt.datetime) or any(times_in(a) for a in get_args(annotation))

        unbounded = [f"{model.__name__}.{name}" for model in MODELS for name, f in model.model_fields.items()
                     if times_in(f.annotation) and f.annotation not in SAMPLES]
        # 16, and the corrected assessment's and its command's assessed_on, and a signature's signed_at, a COI's
        # issued_at, the labelling of units and a custody step (their commands' and events' times), a bedside
        # check, an excursion (start, end), a QA disposition (its event and command), a slot day (two commands, two events), an infusion learnt by manufacturing, a cancelled booking (command, event), lymphodepletion and the cell
        # dose (three commands' five, three events' five), the dose escalation (a DLT evaluation's command
        # and event, three, the assignment, decision and declaration, three), an observation (its command's and
        # event's time) and a day's toxicity grade, a response, a death, a relapse and an MTD's declaration as
        # outcomes, and a baseline assessment's date
        assert unbounded == [] and len(TIME_FIELDS) == 77

    @pytest.mark.parametrize("kind, value, accepted", [
        (Instant, "1900-01-01T00:00:00Z", True),
        (Instant, "1899-12-31T23:59:59Z", False),
        (Instant, "1900-01-01T00:30:00+01:00", False),  # 1899-12-31T23:30 UTC
        (Instant, "2199-12-31T23:59:59Z", True),
        (Instant, "2200-01-01T00:00:00Z", False),
        (Instant, "9999-12-31T23:59:59Z", False),
        (ClinicalDate, "1900-01-01", True),
        (ClinicalDate, "1899-12-31", False),
        (ClinicalDate, "2199-12-31", True),
        (ClinicalDate, "2200-01-01", False),
    ])
    def test_instants_are_bounded_in_utc_and_dates_by_the_same_days(self, kind: Any, value: str, accepted: bool):
        try:
            TypeAdapter(kind).validate_python(value)
        except ValidationError:
            assert not accepted
        else:
            assert accepted

    def test_a_patient_registered_on_year_one_is_refused(self):
        with pytest.raises(ValidationError, match="registered_on"):
            RegisterPatient(centre_id="IT-BG-01", hospital_record_number="H1", family_name="Rossi",
                            given_name="Anna", date_of_birth=dt.date(1950, 3, 1), registered_on=dt.date(1, 1, 1))
