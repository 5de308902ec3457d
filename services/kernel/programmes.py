"""A programme's clinical sections as the clinical rules' own objects (issue 10): the sections
(contracts/programmes.py) are the rules' parameters, field for field, read by `as_rule`.
Shared by the services that obey them: enrollment builds every section when a definition is
published (services/enrollment/domain/programmes.py, `rules_of`), infusion the
lymphodepletion regimen and its window (`regimen_of`), assessment the DLT definition
(`dlt_definition_of`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pydantic import TypeAdapter

from services.clinical.escalation.dlt import DltDefinition
from services.clinical.lymphodepletion import AgentSchedule, LymphodepletionRegimen

__all__ = ["as_rule", "dlt_definition_of", "regimen_of"]


def dlt_definition_of(section: dict[str, Any]) -> DltDefinition:
    """An escalation's `dlt_rule` (its `source` aside) as the rule's DLT definition; raises what
    the rule raises."""
    fields_ = {k: v for k, v in section.items() if k != "source"}
    return as_rule(DltDefinition, {**fields_, "haematological_terms": frozenset(  # type: ignore[return-value]
        fields_.get("haematological_terms", ()))})


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
