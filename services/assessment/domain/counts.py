"""Neutropenia and B-cell aplasia determined by the service from the blood counts (issue 11
item 2), before and after the infusion (a patient may start lymphodepletion already
neutropenic, seed 002), by the rules of services/clinical/cytopenia.py: neutropenia below
500/uL (CTCAE v5 grade 4), recovered on the first of three values on different days at or
above it (CIBMTR/ASTCT, Kharfan-Dabaja et al., Transplant Cell Ther 2021); B-cell aplasia
below the programme's CD19+ threshold, recovered on the first value at or above it. A day's
value is its lowest count. A determination is recorded when it changes, with the next
revision, superseding the one before."""

from __future__ import annotations

from datetime import date

from contracts.base import EventPayload
from contracts.events import CarTExpansionDetermined, CountEpisode, CountEpisodesDetermined, ObservationRecorded
from contracts.observations import BloodCounts
from services.clinical.cytopenia import (
    DEFAULT_B_CELL_APLASIA_THRESHOLD_PER_UL,
    LabValue,
    b_cell_aplasia_periods,
    car_t_expansion,
    neutropenia_episodes,
)
from services.kernel.clinical_dates import clinical_date, study_day

NEUTROPENIA_THRESHOLD_PER_UL = 500.0  # CTCAE v5, neutrophil count decreased, grade 4: < 500/mm3


def count_determinations(subject_id: str, observations: list[ObservationRecorded], infused_on: date | None,
                         latest: dict[str, CountEpisodesDetermined]) -> list[EventPayload]:
    """The neutropenia and B-cell aplasia determinations that changed with `observations`."""
    if infused_on is None:
        return []
    new: list[EventPayload] = []
    for kind, field, threshold in (("neutropenia", "anc_per_ul", NEUTROPENIA_THRESHOLD_PER_UL),
                                   ("b_cell_aplasia", "b_cells_per_ul", DEFAULT_B_CELL_APLASIA_THRESHOLD_PER_UL)):
        by_day: dict[int, float] = {}
        for o in observations:
            value = getattr(o.observation, field, None) if isinstance(o.observation, BloodCounts) else None
            if value is not None:
                day = study_day(clinical_date(o.observed_at), infused_on)
                by_day[day] = min(value, by_day.get(day, value))
        if not by_day:
            continue
        series = [LabValue(day, value) for day, value in sorted(by_day.items())]
        if kind == "neutropenia":
            episodes = [CountEpisode(onset_day=e.onset_day, recovery_day=e.recovery_day, duration_days=e.duration_days,
                                     nadir_per_ul=e.nadir_per_ul, nadir_day=e.nadir_day)
                        for e in neutropenia_episodes(series, threshold)]
        else:
            episodes = []
            for p in b_cell_aplasia_periods(series, threshold):
                below = [v for v in series if v.study_day >= p.start_day
                         and (p.recovery_day is None or v.study_day < p.recovery_day)]
                nadir = min(below, key=lambda v: (v.value_per_ul, v.study_day))
                episodes.append(CountEpisode(onset_day=p.start_day, recovery_day=p.recovery_day,
                                             duration_days=p.duration_days, nadir_per_ul=nadir.value_per_ul,
                                             nadir_day=nadir.study_day))
        days = sorted(by_day)
        previous = latest.get(kind)
        if previous is None or (previous.episodes, previous.counted_days) != (episodes, days):
            new.append(CountEpisodesDetermined(subject_id=subject_id, kind=kind,
                                               revision=previous.revision + 1 if previous is not None else 1,
                                               threshold_per_ul=threshold, episodes=episodes, counted_days=days))
    return new


def expansion_determination(subject_id: str, observations: list[ObservationRecorded], infused_on: date | None,
                            latest: CarTExpansionDetermined | None) -> list[EventPayload]:
    """CAR-T expansion after the infusion (peak, its day, persistence) from the CAR-T counts of
    study days 0 on, the day's highest value; recorded when it changes, superseding the last."""
    if infused_on is None:
        return []
    by_day: dict[int, float] = {}
    for o in observations:
        value = o.observation.car_t_per_ul if isinstance(o.observation, BloodCounts) else None
        if value is not None:
            day = study_day(clinical_date(o.observed_at), infused_on)
            if day >= 0:
                by_day[day] = max(value, by_day.get(day, value))
    if not by_day:
        return []
    e = car_t_expansion([LabValue(day, value) for day, value in sorted(by_day.items())])
    found = (e.peak_per_ul, e.peak_day, e.last_detectable_day, sorted(by_day))
    if latest is not None and (latest.peak_per_ul, latest.peak_day, latest.last_detectable_day,
                               latest.counted_days) == found:
        return []
    return [CarTExpansionDetermined(subject_id=subject_id, revision=latest.revision + 1 if latest else 1,
                                    peak_per_ul=e.peak_per_ul, peak_day=e.peak_day,
                                    last_detectable_day=e.last_detectable_day, counted_days=sorted(by_day))]
