"""Outcomes of the events about a programme rather than a subject (the subjects' events fold
into their views, subject_view.py): the MTD and the recommended dose level of a dose
escalation (enrollment's MtdDeclared, on stream `escalation-<programme>`, with no subject).
Each is derived from its event alone, so a rebuild re-derives it, with the same key
(`outcome_key`), and publishes nothing twice."""

from __future__ import annotations

from contracts import events as ev
from contracts.base import EventPayload


def programme_outcomes(event: EventPayload) -> list[EventPayload]:
    """The outcomes `event` implies for its programme (none for an event about a subject)."""
    if isinstance(event, ev.MtdDeclared):
        return [ev.MtdDetermined(programme_id=event.programme_id, programme_version=event.programme_version,
                                 mtd_level=event.mtd_level, recommended_level=event.recommended_level,
                                 action=event.action, reason=event.reason, declared_on=event.declared_on)]
    return []
