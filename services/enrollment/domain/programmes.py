"""Programmes as data (issue 10 item 1): each programme's published definitions, one version
after another, and the check that a definition is one the clinical rules accept.

A definition's clinical sections are the clinical rules' own parameters (read by
services/kernel/programmes.py, shared with infusion): the eligibility criteria
(`services/clinical/eligibility.EligibilityCriteria`), the lymphodepletion regimen and its
infusion window (`lymphodepletion.LymphodepletionRegimen`), the cell-dose tolerance
(`cell_dose.CellDoseProgramme`), the escalation design (`escalation.boin.BoinDesign`; 3+3 with
its sample-size cap, `escalation.core`) and the second-infusion policy
(`second_infusion.SecondInfusionPolicy`). `rules_of` builds them, so a definition the rules
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
from contracts.programmes import EscalationDesignKind, ProgrammeDefinition
from services.clinical.base import ClinicalInputError
from services.clinical.cell_dose import CellDoseProgramme
from services.clinical.eligibility import Candidate, EligibilityCriteria, EligibilityResult, evaluate
from services.clinical.escalation.boin import BoinDesign
from services.clinical.lymphodepletion import LymphodepletionRegimen
from services.clinical.second_infusion import SecondInfusionPolicy
from services.kernel.aggregate import Aggregate
from services.kernel.programmes import as_rule, dlt_definition_of, regimen_of

__all__ = ["InvalidProgramme", "Programme", "ProgrammeUnchanged", "UnknownProgramme", "programme_stream", "rules_of",
           "screen"]


class InvalidProgramme(CommandRefused):
    code = "INVALID_PROGRAMME"


class ProgrammeUnchanged(CommandRefused):
    code = "PROGRAMME_UNCHANGED"


class UnknownProgramme(CommandRefused):
    code = "UNKNOWN_PROGRAMME"


def programme_stream(programme_id: str) -> str:
    return f"programme-{programme_id}"


@dataclass(frozen=True)
class Rules:
    """A definition's clinical sections as the clinical rules' own objects."""

    eligibility: EligibilityCriteria
    lymphodepletion: LymphodepletionRegimen | None
    cell_dose: CellDoseProgramme | None
    escalation: BoinDesign | int | None  # BOIN's design, or 3+3's sample-size cap (None: no cap)
    second_infusion: SecondInfusionPolicy | None


def rules_of(d: ProgrammeDefinition) -> Rules:
    """The clinical rules' objects of `d`, or InvalidProgramme naming the section at fault."""
    def section(name: str, build):  # noqa: ANN001, ANN202 - a builder of one section
        try:
            return build()
        except (ClinicalInputError, TypeError, ValueError, ValidationError) as exc:
            raise InvalidProgramme(f"{d.programme_id}: {name}: {exc}") from None

    eligibility = section("eligibility", lambda: as_rule(EligibilityCriteria, {"name": d.title, **d.eligibility}))
    regimen = None
    if d.lymphodepletion is not None:
        regimen = section("lymphodepletion", lambda: regimen_of(d.title, d.lymphodepletion))
    per_kg = [lv.cells_per_kg for lv in d.dose_levels if lv.cells_per_kg is not None]
    dose = None
    if d.cell_dose_tolerance_fraction is not None and per_kg:
        dose = section("cell_dose_tolerance_fraction", lambda: CellDoseProgramme(
            target_cells_per_kg=per_kg[0], tolerance_fraction=d.cell_dose_tolerance_fraction))
    escalation: BoinDesign | int | None = None
    if d.escalation is not None:
        e = d.escalation
        levels = sorted(lv.level for lv in d.dose_levels if lv.level >= 1)
        if levels != list(range(1, len(levels) + 1)):
            raise InvalidProgramme(f"{d.programme_id}: escalation: dose levels are numbered 1..K, not {levels}")
        if e.design is EscalationDesignKind.BOIN:
            escalation = section("escalation", lambda: BoinDesign(
                target=e.target_dlt_rate, n_dose_levels=len(levels), cohort_size=e.cohort_size,
                max_sample_size=e.max_sample_size))
        else:
            escalation = e.max_sample_size  # 3+3's one parameter: its sample-size cap (escalation.core)
        if e.dlt_rule is not None:
            section("escalation.dlt_rule", lambda: dlt_definition_of(e.dlt_rule.model_dump()))  # type: ignore[union-attr]
    second = None
    if d.second_infusion is not None:
        second = section("second_infusion", lambda: as_rule(SecondInfusionPolicy, d.second_infusion))
    return Rules(eligibility, regimen, dose, escalation, second)


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
