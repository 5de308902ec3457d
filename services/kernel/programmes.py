"""A programme's clinical sections as the clinical rules' own objects (issue 10), shared by the
services that obey them: enrollment (eligibility, escalation; a definition is refused at
publication if a rule refuses a section) and infusion (the lymphodepletion regimen and its
window, the cell dose and its tolerance).

The sections (contracts/programmes.py) are the rules' parameters, field for field: the
eligibility criteria (`services/clinical/eligibility.EligibilityCriteria`), the
lymphodepletion regimen (`lymphodepletion.LymphodepletionRegimen`), the cell-dose tolerance
(`cell_dose.CellDoseProgramme`), the escalation design (`escalation.boin.BoinDesign`; 3+3 with
its sample-size cap, `escalation.core`) and the second-infusion policy
(`second_infusion.SecondInfusionPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.errors import CommandRefused
from contracts.programmes import EscalationDesignKind, ProgrammeDefinition
from services.clinical.base import ClinicalInputError
from services.clinical.cell_dose import CellDoseProgramme
from services.clinical.eligibility import EligibilityCriteria
from services.clinical.escalation.boin import BoinDesign
from services.clinical.lymphodepletion import AgentSchedule, LymphodepletionRegimen
from services.clinical.second_infusion import SecondInfusionPolicy

__all__ = ["InvalidProgramme", "Rules", "as_rule", "regimen_of", "rules_of"]


class InvalidProgramme(CommandRefused):
    code = "INVALID_PROGRAMME"


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
    second = None
    if d.second_infusion is not None:
        second = section("second_infusion", lambda: as_rule(SecondInfusionPolicy, d.second_infusion))
    return Rules(eligibility, regimen, dose, escalation, second)


def regimen_of(title: str, section: dict[str, Any]) -> LymphodepletionRegimen:
    """A definition's `lymphodepletion` section as the rule's regimen (named by the programme's
    title); raises what the rule raises."""
    return as_rule(LymphodepletionRegimen, {"name": title, **section,
                                            "agents": [as_rule(AgentSchedule, a) for a in section.get("agents", ())]})


def as_rule(rule: type, data: dict) -> object:
    """`data` (JSON) as the rule's own dataclass: its values converted to the rule's types
    (an enum's value to the enum), an unknown or missing field refused, then checked by the
    rule itself (its __post_init__)."""
    known = {f.name for f in fields(rule)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not a parameter of the rule (its parameters: {', '.join(sorted(known))})")
    return TypeAdapter(rule).validate_python(data)
