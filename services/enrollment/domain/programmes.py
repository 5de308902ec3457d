"""Programmes as data (issue 10 item 1): each programme's published definitions, one version
after another, and the check that a definition is one the clinical rules accept.

A definition's clinical sections are the clinical rules' own parameters; `rules_of`
(services/kernel/programmes.py, shared with infusion) builds them, so a definition the rules
would refuse is refused when it is published, naming the section and the rule's reason, and
never reaches a subject. A change is a new version; a subject keeps the version it was
enrolled under (`SubjectEnrolled.programme_version`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from contracts.base import EventPayload
from contracts.commands import PublishProgramme
from contracts.errors import CommandRefused
from contracts.events import ProgrammePublished
from contracts.programmes import ProgrammeDefinition
from services.clinical.base import ClinicalInputError
from services.clinical.eligibility import Candidate, EligibilityResult, evaluate
from services.kernel.aggregate import Aggregate
from services.kernel.programmes import InvalidProgramme, as_rule, rules_of

__all__ = ["InvalidProgramme", "Programme", "ProgrammeUnchanged", "UnknownProgramme", "programme_stream", "rules_of",
           "screen"]


class ProgrammeUnchanged(CommandRefused):
    code = "PROGRAMME_UNCHANGED"


class UnknownProgramme(CommandRefused):
    code = "UNKNOWN_PROGRAMME"


def programme_stream(programme_id: str) -> str:
    return f"programme-{programme_id}"


class InvalidScreening(CommandRefused):
    code = "INVALID_SCREENING"


def screen(d: ProgrammeDefinition, facts: dict, age_years: int | None) -> EligibilityResult:
    """The candidate's facts judged by the definition's eligibility criteria, every failed
    criterion with its reason (services/clinical/eligibility.evaluate): a fact a criterion
    needs and the screening does not give is a failure, never a pass."""
    if "age_years" in facts:
        raise InvalidScreening("the age is not given: enrollment computes it from the date of birth it keeps")
    try:
        candidate = as_rule(Candidate, {**facts, "age_years": age_years})
    except (ClinicalInputError, TypeError, ValueError, ValidationError) as exc:
        raise InvalidScreening(f"facts: {exc}") from None
    return evaluate(rules_of(d).eligibility, candidate)


@dataclass
class Programme(Aggregate):
    """One programme's published versions."""

    programme_id: str
    versions: list[ProgrammePublished] = field(default_factory=list)

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, ProgrammePublished):
            self.versions.append(event)

    @property
    def current(self) -> ProgrammePublished | None:
        return self.versions[-1] if self.versions else None

    def publish(self, cmd: PublishProgramme, at: datetime) -> list[EventPayload]:
        d = cmd.definition
        rules_of(d)  # refused here, never at a subject
        if self.current is not None and self.current.definition == d:
            raise ProgrammeUnchanged(f"{d.programme_id} version {self.current.version} is already this definition")
        return [ProgrammePublished(programme_id=d.programme_id, version=len(self.versions) + 1, definition=d,
                                   published_at=at)]
