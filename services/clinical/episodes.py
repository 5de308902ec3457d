"""Episode view of daily CRS / ICANS grades.

The ASTCT consensus (Lee DW et al., Biol Blood Marrow Transplant
2019;25:625-638) grades a single assessment; it does not define episodes.
The episode rules below are the programme's derivation convention, written
to match how CAR-T trials report CRS/ICANS "time to onset" and "duration"
(onset = first day with grade >= 1; resolution = first later day back to
grade 0; duration = resolution - onset):

* observations are one per study day (day 0 = infusion; negative days are
  allowed); duplicated days are rejected, unsorted input is sorted;
* an episode starts at the first observed day with grade >= 1 and ends at
  the first later observed day with grade 0 (its resolution day); a later
  grade >= 1 starts a new episode;
* a missing day inside an episode does not resolve it (only an observed
  grade 0 does);
* grade 5 (death) ends the series: the episode stays unresolved and any
  observation after it is rejected;
* tocilizumab / steroid flags count for an episode when set on any day from
  onset to resolution day inclusive (or to the last observation if
  unresolved); flags on days outside every episode are not attributed.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import Field, SkipValidation

from services.clinical.base import ClinicalInputError, check, check_fields, validated

__all__ = [
    "InvalidEpisodeSeriesError",
    "DuplicateStudyDayError",
    "ToxicityKind",
    "DailyToxicityObservation",
    "ToxicityEpisode",
    "toxicity_episodes",
]


class InvalidEpisodeSeriesError(ClinicalInputError):
    """A daily toxicity series or one of its observations is invalid."""


class DuplicateStudyDayError(InvalidEpisodeSeriesError):
    """Two observations share the same study day."""


class ToxicityKind(str, Enum):
    CRS = "crs"
    ICANS = "icans"


@dataclass(frozen=True)
class DailyToxicityObservation:
    """Worst grade on one study day, with the treatments given that day."""

    study_day: int
    grade: Annotated[int, Field(ge=0, le=5)]  # ASTCT grades 0-4 plus grade 5 (death), Lee 2019
    tocilizumab: bool = False
    steroids: bool = False

    def __post_init__(self) -> None:
        check_fields(self, InvalidEpisodeSeriesError)


@dataclass(frozen=True)
class ToxicityEpisode:
    kind: ToxicityKind
    onset_day: int
    max_grade: int
    resolution_day: int | None
    duration_days: int | None
    tocilizumab_given: bool
    steroids_given: bool

    @property
    def resolved(self) -> bool:
        return self.resolution_day is not None


def _sorted_unique(
    observations: Iterable[DailyToxicityObservation],
) -> list[DailyToxicityObservation]:
    obs = list(observations)
    check("observations", obs, list[DailyToxicityObservation], InvalidEpisodeSeriesError)
    obs.sort(key=lambda o: o.study_day)
    for prev, cur in zip(obs, obs[1:]):
        if prev.study_day == cur.study_day:
            raise DuplicateStudyDayError(
                f"study_day={cur.study_day} appears more than once"
            )
    return obs


@validated(InvalidEpisodeSeriesError)
def toxicity_episodes(
    kind: ToxicityKind, observations: SkipValidation[Iterable[DailyToxicityObservation]]
) -> tuple[ToxicityEpisode, ...]:
    """Split a daily grade series into episodes (see module docstring)."""
    obs = _sorted_unique(observations)
    for o in obs:
        if o.grade == 5 and o is not obs[-1]:
            raise InvalidEpisodeSeriesError(
                f"study_day={o.study_day} has grade=5 (death) but later observations exist"
            )

    episodes: list[ToxicityEpisode] = []
    current: list[DailyToxicityObservation] = []

    def close(resolution: DailyToxicityObservation | None) -> None:
        days = current + ([resolution] if resolution is not None else [])
        onset = current[0].study_day
        episodes.append(
            ToxicityEpisode(
                kind=kind,
                onset_day=onset,
                max_grade=max(o.grade for o in current),
                resolution_day=None if resolution is None else resolution.study_day,
                duration_days=None if resolution is None else resolution.study_day - onset,
                tocilizumab_given=any(o.tocilizumab for o in days),
                steroids_given=any(o.steroids for o in days),
            )
        )

    for o in obs:
        if o.grade >= 1:
            current.append(o)
        elif current:
            close(o)
            current = []
    if current:
        close(None)
    return tuple(episodes)
