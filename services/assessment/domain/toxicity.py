"""Cytokine release syndrome and ICANS graded by the service from the observations (issue 11
item 2): per study day after the first infusion, and per episode, by the ASTCT consensus (Lee
DW et al., Biol Blood Marrow Transplant 2019;25:625-638: the CRS table, services/clinical/crs.py;
the ICANS tables with the ICE score from 12 years and the CAPD below, services/clinical/icans.py)
and the episode rule (services/clinical/episodes.py).

- A day's grade is the worst of its readings' grades. Vital signs are graded for CRS with the
  treatments for CRS given up to them (Lee 2019, CRS table footnote: once a patient with CRS
  has had antipyretic or anti-cytokine therapy, fever is no longer needed and hypotension and
  hypoxia grade it); neurological assessments for ICANS, the encephalopathy tool judged
  against the subject's age (from the age at enrolment: ICE from 12 years, CAPD below, or
  with developmental delay); a tool the age does not allow is refused.
- Each determination names the observations it was taken from and is recorded only when it
  changes: a late observation records the day's grade again, with the next revision, which
  supersedes the earlier one, and the episodes again. Nothing is edited.
- Observations before the first infusion are a baseline: recorded, never graded.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from contracts.base import EventPayload
from contracts.errors import CommandRefused
from contracts.events import ObservationRecorded, ToxicityEpisode, ToxicityEpisodesDetermined, ToxicityGraded, ToxicityKind
from contracts.observations import Agent, NeurologicalAssessment, TreatmentGiven, VitalSigns
from services.clinical import icans
from services.clinical.crs import CrsObservation, Hypotension, OxygenSupport, grade_crs
from services.clinical.eligibility import age_in_completed_years
from services.clinical.episodes import DailyToxicityObservation
from services.clinical.episodes import ToxicityKind as RuleKind
from services.clinical.episodes import toxicity_episodes
from services.clinical.study_days import date_for_study_day
from services.kernel.clinical_dates import clinical_date, study_day


class InvalidObservation(CommandRefused):
    code = "INVALID_OBSERVATION"


@dataclass(frozen=True)
class AgeAtEnrolment:
    """The subject's age in completed years on the day of enrolment (90: 90 or older)."""

    enrolled_on: date
    age_years: int | None

    def ages_on(self, day: date) -> tuple[int, int] | None:
        """The ages the subject may have on `day`: the birthday is known to enrollment only, so
        a year's anniversary of the enrolment may or may not have passed it."""
        if self.age_years is None:
            return None
        lowest = self.age_years + (age_in_completed_years(self.enrolled_on, day) if day >= self.enrolled_on else -1)
        return max(lowest, 0), max(lowest, 0) + 1

    def earliest_birth(self) -> date | None:
        """The earliest date of birth the age allows: the day after the enrolment's date
        `age_years + 1` years before (a person born on that date would have been a year older),
        29 February read as 28 February in a common year. Exact: every day from it to the
        enrolment's date `age_years` years before is a date of birth giving that age, and no
        earlier one is. None when the age is unknown or 90, which stands for 90 or older
        (`SubjectEnrolled.age_years`): no earliest then."""
        if self.age_years is None or self.age_years >= OR_OLDER:
            return None
        year, e = self.enrolled_on.year - self.age_years - 1, self.enrolled_on
        try:
            anniversary = e.replace(year=year)
        except ValueError:  # 29 February, in a common year
            anniversary = date(year, 2, 28)
        return anniversary + timedelta(days=1)


# SubjectEnrolled.age_years: 90 stands for 90 or older (HIPAA Safe Harbor)
OR_OLDER = 90


Reading = tuple[int, tuple[str, ...], uuid.UUID, list[uuid.UUID]]  # grade, drivers, its id, treatments it weighed


@dataclass(frozen=True)
class _Kind:
    kind: ToxicityKind
    rule_kind: RuleKind
    grade: Callable[[ObservationRecorded], Reading | None]  # a reading of this kind, None for another


def determinations(subject_id: str, observations: list[ObservationRecorded], infused_on: date | None,
                   graded: dict[tuple[ToxicityKind, int], ToxicityGraded],
                   episodes: dict[ToxicityKind, ToxicityEpisodesDetermined],
                   age: AgeAtEnrolment | None = None) -> list[EventPayload]:
    """The CRS and ICANS determinations that changed with `observations` (all of the
    subject's, in the order recorded): the days whose grade, drivers or sources changed, then
    the episodes if they changed. `graded`: the latest grade of each kind and day; `episodes`:
    the latest episodes of each kind. Raises InvalidObservation for a reading a rule refuses."""
    if infused_on is None:
        return []
    treatments = [o for o in observations if isinstance(o.observation, TreatmentGiven)
                  and study_day(clinical_date(o.observed_at), infused_on) >= 0]

    def crs(o: ObservationRecorded) -> Reading | None:
        if not isinstance(o.observation, VitalSigns):
            return None
        treated = [t for t in treatments if t.observation.indication == "crs" and t.observed_at <= o.observed_at]
        v = o.observation
        g = grade_crs(CrsObservation(temperature_c=v.temperature_c, hypotension=Hypotension(v.hypotension.value),
                                     oxygen=OxygenSupport(v.oxygen.value), oxygen_flow_l_min=v.oxygen_flow_l_min,
                                     antipyretic_or_anticytokine_given=bool(treated)))
        return g.grade, tuple(d.value for d in g.drivers), o.observation_id, [t.observation_id for t in treated]

    def neuro(o: ObservationRecorded) -> Reading | None:
        if not isinstance(o.observation, NeurologicalAssessment):
            return None
        g = icans.grade_icans(_icans_observation(o.observation, age, clinical_date(o.observed_at)))
        return g.grade, tuple(d.value for d in g.drivers), o.observation_id, []

    new: list[EventPayload] = []
    for k in (_Kind(ToxicityKind.CRS, RuleKind.CRS, crs), _Kind(ToxicityKind.ICANS, RuleKind.ICANS, neuro)):
        new += _of_kind(k, subject_id, observations, treatments, infused_on, graded, episodes.get(k.kind))
    return new


def _of_kind(k: _Kind, subject_id: str, observations: list[ObservationRecorded], treatments: list[ObservationRecorded],
             infused_on: date, graded: dict[tuple[ToxicityKind, int], ToxicityGraded],
             previous: ToxicityEpisodesDetermined | None) -> list[EventPayload]:
    by_day: dict[int, list[Reading]] = defaultdict(list)
    for o in observations:
        day = study_day(clinical_date(o.observed_at), infused_on)
        if day < 0:
            continue  # a baseline
        reading = k.grade(o)
        if reading is not None:
            by_day[day].append(reading)
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
        latest = graded.get((k.kind, day))
        if latest is None or (latest.grade, latest.drivers, latest.observation_ids) != (worst, drivers, sources):
            new.append(ToxicityGraded(subject_id=subject_id, kind=k.kind, study_day=day,
                                      revision=latest.revision + 1 if latest is not None else 1,
                                      on=date_for_study_day(day, infused_on), grade=worst, drivers=drivers,
                                      observation_ids=sources))
    if not daily:
        return new
    found = [ToxicityEpisode(onset_day=e.onset_day, max_grade=e.max_grade, resolution_day=e.resolution_day,
                             duration_days=e.duration_days, tocilizumab_given=e.tocilizumab_given,
                             steroids_given=e.steroids_given)
             for e in toxicity_episodes(k.rule_kind, daily)]
    days = [d.study_day for d in daily]
    if previous is None or (previous.episodes, previous.graded_days) != (found, days):
        new.append(ToxicityEpisodesDetermined(subject_id=subject_id, kind=k.kind,
                                              revision=previous.revision + 1 if previous is not None else 1,
                                              episodes=found, graded_days=days))
    return new


def _icans_observation(n: NeurologicalAssessment, age: AgeAtEnrolment | None, on: date) -> icans.IcansObservation:
    """The assessment as the ICANS rule reads it, at the age the subject may have on `on`: the
    age that allows the tool given where the age is uncertain by a birthday; where the age is
    not known (an identity erased), the tool given stands for it (ICE: 12 or older)."""
    ages = age.ages_on(on) if age is not None else None
    if ages is None:
        years = 0.0 if n.ice is None and not n.developmental_delay else float(icans.CAPD_MIN_AGE_FOR_ICE_YEARS)
    elif n.ice is not None:
        years = float(ages[1] if ages[1] >= icans.CAPD_MIN_AGE_FOR_ICE_YEARS else ages[0])
    else:
        years = float(ages[0])
    try:
        ice = None if n.ice is None else icans.IceScore(
            n.ice.orientation, n.ice.naming, n.ice.following_commands, n.ice.writing, n.ice.attention,
            n.ice.unarousable)
        capd = None
        if n.capd is not None:
            capd = icans.CapdScore.from_answers(icans.CapdAnswers(
                *(icans.CapdFrequency(getattr(n.capd, f).value) for f in (
                    "eye_contact", "purposeful_actions", "aware_of_surroundings", "communicates_needs", "restless",
                    "inconsolable", "underactive", "slow_to_respond"))))
        elif n.capd_unable_to_perform:
            capd = icans.CapdScore.not_performable()
        return icans.IcansObservation(
            age_years=years, ice=ice, capd=capd, consciousness=icans.Consciousness(n.consciousness.value),
            seizure=icans.Seizure(n.seizure.value), motor=icans.MotorFinding(n.motor.value),
            raised_icp=icans.RaisedIcp(n.raised_icp.value), developmental_delay=n.developmental_delay)
    except icans.InvalidIcansObservationError as exc:
        known = "" if ages is None else f" (the subject is {ages[0]} or {ages[1]} on {on.isoformat()})"
        raise InvalidObservation(f"{exc}{known}") from None
