"""Cytokine release syndrome graded by the service from the observations (issue 11 item 2): per
study day after the first infusion, and per episode, by the ASTCT consensus (Lee DW et al.,
Biol Blood Marrow Transplant 2019;25:625-638, the CRS table: services/clinical/crs.py) and
the episode rule (services/clinical/episodes.py).

- A day's grade is the worst of its vital signs' grades; each set of vital signs is graded
  with the treatments for CRS given up to it (Lee 2019, CRS table footnote: once a patient
  with CRS has had antipyretic or anti-cytokine therapy, fever is no longer needed and
  hypotension and hypoxia grade it).
- Each determination names the observations it was taken from and is recorded only when it
  changes: a late observation (a worse reading entered afterwards, a treatment recorded
  late) records the day's grade again, which supersedes the earlier one, and the episodes
  again. Nothing is edited.
- Observations before the first infusion are a baseline: recorded, never graded as CRS.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date

from contracts.base import EventPayload
from contracts.events import ObservationRecorded, ToxicityEpisode, ToxicityEpisodesDetermined, ToxicityGraded, ToxicityKind
from contracts.observations import Agent, TreatmentGiven, VitalSigns
from services.clinical.crs import CrsObservation, Hypotension, OxygenSupport, grade_crs
from services.clinical.episodes import DailyToxicityObservation
from services.clinical.episodes import ToxicityKind as RuleKind
from services.clinical.episodes import toxicity_episodes
from services.clinical.study_days import date_for_study_day
from services.kernel.clinical_dates import clinical_date, study_day


def crs_determinations(subject_id: str, observations: list[ObservationRecorded], infused_on: date | None,
                       graded: dict[int, ToxicityGraded],
                       episodes: ToxicityEpisodesDetermined | None) -> list[EventPayload]:
    """The CRS determinations that changed with `observations` (all of the subject's, in the
    order recorded): the days whose grade, drivers or sources changed, then the episodes if
    they changed. `graded`: the latest grade of each day; `episodes`: the latest episodes."""
    if infused_on is None:
        return []
    treatments = [o for o in observations if isinstance(o.observation, TreatmentGiven)]
    by_day: dict[int, list[tuple[int, tuple[str, ...], uuid.UUID, list[uuid.UUID]]]] = defaultdict(list)
    for o in observations:
        if not isinstance(o.observation, VitalSigns):
            continue
        day = study_day(clinical_date(o.observed_at), infused_on)
        if day < 0:
            continue  # a baseline
        treated = [t for t in treatments if t.observation.indication == "crs" and t.observed_at <= o.observed_at
                   and study_day(clinical_date(t.observed_at), infused_on) >= 0]
        v = o.observation
        g = grade_crs(CrsObservation(temperature_c=v.temperature_c, hypotension=Hypotension(v.hypotension.value),
                                     oxygen=OxygenSupport(v.oxygen.value), oxygen_flow_l_min=v.oxygen_flow_l_min,
                                     antipyretic_or_anticytokine_given=bool(treated)))
        by_day[day].append((g.grade, tuple(d.value for d in g.drivers), o.observation_id,
                            [t.observation_id for t in treated]))
    new: list[EventPayload] = []
    daily = []
    for day in sorted(by_day):
        readings = by_day[day]
        worst = max(r[0] for r in readings)
        drivers = sorted({d for r in readings if r[0] == worst for d in r[1]})
        sources = [r[2] for r in readings] + sorted({t for r in readings for t in r[3]}, key=str)
        given = [t.observation for t in treatments if study_day(clinical_date(t.observed_at), infused_on) == day]
        daily.append(DailyToxicityObservation(
            day, worst, tocilizumab=any(t.agent is Agent.TOCILIZUMAB for t in given),
            steroids=any(t.agent is Agent.CORTICOSTEROID for t in given)))
        latest = graded.get(day)
        if latest is None or (latest.grade, latest.drivers, latest.observation_ids) != (worst, drivers, sources):
            new.append(ToxicityGraded(subject_id=subject_id, kind=ToxicityKind.CRS, study_day=day,
                                      revision=latest.revision + 1 if latest is not None else 1,
                                      on=_date_of(day, infused_on), grade=worst, drivers=drivers,
                                      observation_ids=sources))
    if not daily:
        return new
    found = [ToxicityEpisode(onset_day=e.onset_day, max_grade=e.max_grade, resolution_day=e.resolution_day,
                             duration_days=e.duration_days, tocilizumab_given=e.tocilizumab_given,
                             steroids_given=e.steroids_given)
             for e in toxicity_episodes(RuleKind.CRS, daily)]
    days = [d.study_day for d in daily]
    if episodes is None or (episodes.episodes, episodes.graded_days) != (found, days):
        new.append(ToxicityEpisodesDetermined(subject_id=subject_id, kind=ToxicityKind.CRS,
                                              revision=episodes.revision + 1 if episodes is not None else 1,
                                              episodes=found, graded_days=days))
    return new


def _date_of(day: int, infused_on: date) -> date:
    return date_for_study_day(day, infused_on)
