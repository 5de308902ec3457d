"""A subject's journey folded from every context's events, and the outcome events it
implies. Pure: `apply` takes a view and an event and returns the new view and outcomes.

Events reach the projection from four topics whose relative order is not guaranteed, so
the fold is order-insensitive: the timeline is kept sorted by clinical time, the phase is
the furthest milestone reached, and an outcome is emitted when its last input arrives.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from contracts import events as ev
from contracts.base import EventPayload

# Milestones in journey order; the phase is the furthest one reached.
PHASES = ("registered", "enrolled", "collected", "released", "infused", "assessed")

# Day-28 assessment window. The CAR-CIK protocol (seed 000) reads its primary endpoint
# "at day 28 after the first infusion"; a visit window of +/- 7 days is this projection's
# parameter (protocols commonly allow it), not a rule of the seed.
DAY28_WINDOW = (21, 35)


@dataclass(frozen=True)
class TimelineEntry:
    at: str  # ISO clinical time
    event_type: str
    summary: str


@dataclass(frozen=True)
class SubjectView:
    subject_id: str
    centre_id: str | None = None
    programme_id: str | None = None
    phase: str = "registered"
    timeline: tuple[TimelineEntry, ...] = ()
    coi_id: str | None = None
    collected_at: datetime | None = None
    infused_at: datetime | None = None
    day28: dict[str, Any] | None = None
    vein_to_vein_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("collected_at", "infused_at"):
            d[k] = d[k].isoformat() if d[k] else None
        d["timeline"] = [dataclasses.asdict(t) for t in self.timeline]
        return d


def _further(current: str, new: str) -> str:
    return new if PHASES.index(new) > PHASES.index(current) else current


def _with_entry(view: SubjectView, at: datetime | date, event_type: str, summary: str) -> tuple[TimelineEntry, ...]:
    entry = TimelineEntry(at.isoformat(), event_type, summary)
    return tuple(sorted((*view.timeline, entry), key=lambda e: (e.at, e.event_type, e.summary)))


def apply(view: SubjectView, event: EventPayload, occurred_at: datetime) -> SubjectView:
    """Fold one event into the view."""
    t = event.event_type
    if isinstance(event, ev.PatientRegistered):
        return dataclasses.replace(view, centre_id=event.centre_id,
                                   timeline=_with_entry(view, occurred_at, t, f"registered at {event.centre_id}"))
    if isinstance(event, ev.SubjectEnrolled):
        return dataclasses.replace(view, centre_id=event.centre_id, programme_id=event.programme_id,
                                   phase=_further(view.phase, "enrolled"),
                                   timeline=_with_entry(view, event.enrolled_on, t, f"enrolled in {event.programme_id}"))
    if isinstance(event, ev.ApheresisCollected):
        return dataclasses.replace(view, coi_id=event.coi_id, collected_at=event.collected_at,
                                   phase=_further(view.phase, "collected"),
                                   timeline=_with_entry(view, event.collected_at, t, f"apheresis, COI {event.coi_id}"))
    if isinstance(event, ev.ProductReleased):
        return dataclasses.replace(view, phase=_further(view.phase, "released"),
                                   timeline=_with_entry(view, event.released_at, t,
                                                        f"product lot {event.lot_number} released"))
    if isinstance(event, ev.ProductInfused):
        first = view.infused_at if view.infused_at and view.infused_at <= event.infused_at else event.infused_at
        return dataclasses.replace(view, infused_at=first, phase=_further(view.phase, "infused"),
                                   timeline=_with_entry(view, event.infused_at, t,
                                                        f"infusion {event.infusion_number}, COI {event.coi_id}"))
    if isinstance(event, ev.ResponseAssessed):
        category = event.response_category.value if event.response_category else "not derivable"
        v = dataclasses.replace(view, phase=_further(view.phase, "assessed"),
                                timeline=_with_entry(view, event.assessed_on, t,
                                                     f"day {event.study_day}: {category}, MRD {event.mrd_status.value}"))
        lo, hi = DAY28_WINDOW
        if lo <= event.study_day <= hi and (view.day28 is None or event.study_day < view.day28["study_day"]):
            v = dataclasses.replace(v, day28={
                "study_day": event.study_day,
                "response_category": event.response_category.value if event.response_category else None,
                "mrd_status": event.mrd_status.value,
                "morphologic_response": event.morphologic_response,
                "flow_response": event.flow_response,
                "molecular_response": event.molecular_response,
                "responder": is_responder(event),
            })
        return v
    return view


def is_responder(event: ev.ResponseAssessed) -> bool:
    """Overall response at day 28 = CR or CRi (NCCN ALL); for a v1 event without a
    category, the CAR-CIK protocol's morphology reading (marrow blasts < 5 %, seed 000)."""
    if event.response_category is None:
        return event.morphologic_response
    return event.response_category in (ev.ResponseCategory.CR, ev.ResponseCategory.CRI)


def with_vein_to_vein(view: SubjectView) -> SubjectView:
    if view.collected_at and view.infused_at:
        return dataclasses.replace(view, vein_to_vein_days=(view.infused_at.date() - view.collected_at.date()).days)
    return view


def outcomes(view: SubjectView) -> list[EventPayload]:
    """Outcome events the view now supports. Callers emit each at most once (stable ids)."""
    out: list[EventPayload] = []
    if view.programme_id and view.day28:
        d = view.day28
        out.append(ev.Day28ResponseDetermined(
            subject_id=view.subject_id, programme_id=view.programme_id, study_day=d["study_day"],
            response_category=d["response_category"], mrd_status=d["mrd_status"],
            morphologic_response=d["morphologic_response"], flow_response=d["flow_response"],
            molecular_response=d["molecular_response"], responder=d["responder"]))
    if view.programme_id and view.coi_id and view.vein_to_vein_days is not None:
        out.append(ev.VeinToVeinTimeDetermined(subject_id=view.subject_id, programme_id=view.programme_id,
                                               coi_id=view.coi_id, days=view.vein_to_vein_days))
    return out


def outcome_key(outcome: EventPayload) -> str:
    """What makes an outcome unique: one day-28 response and one vein-to-vein time per subject."""
    if isinstance(outcome, ev.Day28ResponseDetermined):
        return f"day28:{outcome.subject_id}:{outcome.study_day}"
    if isinstance(outcome, ev.VeinToVeinTimeDetermined):
        return f"v2v:{outcome.subject_id}:{outcome.coi_id}"
    raise ValueError(f"not an outcome: {outcome.event_type}")


def fold(view: SubjectView, event: EventPayload, occurred_at: datetime) -> SubjectView:
    """`apply` plus the derived vein-to-vein time."""
    return with_vein_to_vein(apply(view, event, occurred_at))
