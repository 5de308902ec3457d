"""The second infusion (issue 10 item 5; seed 000's residual-disease-driven strategy): at the
day-28 assessment the subject's programme policy decides from the disease readings and the
toxicity so far whether a second infusion is indicated (services/clinical/second_infusion.py,
the rule and its documented defaults); a second infusion the latest decision did not indicate
is refused.

The toxicity so far is what CellTrail records of it; adverse events are recorded from issue
11 on, so until then none blocks, and the decision says so among its reasons."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from contracts.errors import CommandRefused
from contracts.events import ResponseAssessed, SecondInfusionDecided
from services.clinical.second_infusion import Day28Assessment, SecondInfusionPolicy, evaluate_second_infusion

DAY_28 = 28  # seed 000: "at day 28 after the first CARCIK-CD19 infusion"


class SecondInfusionNotDecided(CommandRefused):
    code = "SECOND_INFUSION_NOT_DECIDED"


class SecondInfusionNotIndicated(CommandRefused):
    code = "SECOND_INFUSION_NOT_INDICATED"


def decide(assessment: ResponseAssessed, programme_id: str, programme_version: int | None,
           policy: dict[str, Any]) -> SecondInfusionDecided | None:
    """The decision at a day-28 assessment; None for an assessment of another day."""
    if assessment.study_day != DAY_28:
        return None
    rule = TypeAdapter(SecondInfusionPolicy).validate_python(policy)
    readings = Day28Assessment(morphology_blasts_pct=assessment.marrow_blasts_percent,
                               flow_blasts_pct=assessment.flow_mrd_percent,
                               molecular_mrd_pct=assessment.molecular_mrd_percent)
    result = evaluate_second_infusion(readings, (), rule)
    return SecondInfusionDecided(subject_id=assessment.subject_id, programme_id=programme_id,
                                 programme_version=programme_version, assessed_on=assessment.assessed_on,
                                 indicated=result.allowed,
                                 reasons=[*result.reasons, "adverse events are not yet recorded in CellTrail "
                                                           "(issue 11): none counted"])


def check_second(subject_id: str, decision: SecondInfusionDecided | None) -> None:
    """A second infusion of a subject whose programme has a second-infusion policy."""
    if decision is None:
        raise SecondInfusionNotDecided(f"subject {subject_id}'s programme decides a second infusion at the day-28 "
                                       "assessment, which is not recorded yet")
    if not decision.indicated:
        raise SecondInfusionNotIndicated(f"the day-28 decision ({decision.assessed_on.isoformat()}) did not indicate "
                                         "a second infusion: " + "; ".join(decision.reasons))
