"""Haematological follow-up after CAR-T: neutropenia (CTCAE grade and
episodes), B-cell aplasia periods and CAR-T cell expansion/persistence.

Units: cells per microlitre (/uL), which equals cells per mm^3.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, SkipValidation

from services.clinical.base import CellsPerUl, ClinicalInputError, band, check_fields, validated

__all__ = [
    "InvalidLabValueError",
    "DuplicateLabDayError",
    "LabValue",
    "DEFAULT_ANC_LLN_PER_UL",
    "DEFAULT_B_CELL_APLASIA_THRESHOLD_PER_UL",
    "ANC_RECOVERY_CONSECUTIVE_VALUES",
    "neutrophil_count_decreased_grade",
    "NeutropeniaEpisode",
    "neutropenia_episodes",
    "BCellAplasiaPeriod",
    "b_cell_aplasia_periods",
    "CarTExpansion",
    "car_t_expansion",
]


class InvalidLabValueError(ClinicalInputError):
    """A laboratory value, series or parameter is invalid."""


class DuplicateLabDayError(InvalidLabValueError):
    """Two values of one series share the same study day."""


# CTCAE v5.0 grades "Neutrophil count decreased" against the local lower
# limit of normal (LLN) for grade 1 only.  LLN is laboratory-specific; the
# default of 2000/uL (2.0 x 10^9/L) is a programme choice (a common adult
# reference-range lower limit), to be overridden with the site's value.
DEFAULT_ANC_LLN_PER_UL = 2000.0
# Guard: grade 1 is "<LLN - 1500/mm3", so an LLN below 1500 would make the
# CTCAE scale incoherent; 5000/uL is far above any published ANC LLN.
AncLlnPerUl = Annotated[float, Field(ge=1500.0, le=5000.0)]

# CIBMTR Forms Manual (Post-TED, "ANC recovery"): recovery is ANC >= 500/mm3
# "for three consecutive laboratory values obtained on different days";
# the recovery date is "the first of three consecutive laboratory values".
# Same definition endorsed by ASTCT (Kharfan-Dabaja MA et al., Transplant Cell
# Ther 2021;27:642-649: "first of 3 successive days with an ANC >= 500/uL
# after post-transplantation nadir").
ANC_RECOVERY_CONSECUTIVE_VALUES = 3

# There is no consensus numeric definition of B-cell aplasia after CD19 CAR-T
# (publications use < 1 % or < 3 % of lymphocytes, "undetectable", or an
# absolute count).  The threshold is programme-configurable; the default of
# 20 CD19+ cells/uL is a programme choice, not a published standard.
DEFAULT_B_CELL_APLASIA_THRESHOLD_PER_UL = 20.0


# A threshold a count is compared with.
ThresholdPerUl = Annotated[float, Field(gt=0)]
# A lab series: LabValue objects or (study day, value) pairs, checked by _series.
Series = SkipValidation[Iterable["LabValue | tuple[int, float]"]]


@dataclass(frozen=True)
class LabValue:
    """One laboratory value on a study day (day 0 = infusion), in cells/uL."""

    study_day: int
    value_per_ul: CellsPerUl

    def __post_init__(self) -> None:
        check_fields(self, InvalidLabValueError)


def _series(values: Iterable[LabValue | tuple[int, float]]) -> list[LabValue]:
    out: list[LabValue] = []
    for i, v in enumerate(values):
        if isinstance(v, LabValue):
            out.append(v)
        elif isinstance(v, tuple) and len(v) == 2:
            out.append(LabValue(v[0], v[1]))
        else:
            raise InvalidLabValueError(
                f"series[{i}]={v!r} is neither a LabValue nor a (day, value) pair"
            )
    out.sort(key=lambda v: v.study_day)
    for prev, cur in zip(out, out[1:]):
        if prev.study_day == cur.study_day:
            raise DuplicateLabDayError(f"study_day={cur.study_day} appears more than once")
    return out


# --------------------------------------------------------------------------
# CTCAE v5.0 "Neutrophil count decreased"
# --------------------------------------------------------------------------
# CTCAE v5.0, "Neutrophil count decreased", below the LLN: (lowest ANC of the
# band in /mm3, grade).  G1 <LLN-1500; G2 <1500-1000; G3 <1000-500; G4 <500.
CTCAE_NEUTROPHIL_ROWS: tuple[tuple[float, int], ...] = ((1500.0, 1), (1000.0, 2), (500.0, 3), (0.0, 4))


@validated(InvalidLabValueError)
def neutrophil_count_decreased_grade(
    anc_per_ul: CellsPerUl, lln_per_ul: AncLlnPerUl = DEFAULT_ANC_LLN_PER_UL
) -> int:
    """CTCAE v5.0 grade for "Neutrophil count decreased".

    Source: Common Terminology Criteria for Adverse Events (CTCAE) v5.0,
    US DHHS / NIH / NCI, 27 Nov 2017, SOC "Investigations", term
    "Neutrophil count decreased":
        grade 1  <LLN - 1500/mm3
        grade 2  <1500 - 1000/mm3
        grade 3  <1000 - 500/mm3
        grade 4  <500/mm3
    ANC >= LLN -> grade 0.  So 1500 is grade 1, 1499 grade 2; 1000 grade 2,
    999 grade 3; 500 grade 3, 499 grade 4.
    """
    return band(anc_per_ul, ((lln_per_ul, 0), *CTCAE_NEUTROPHIL_ROWS))


# --------------------------------------------------------------------------
# Below-threshold episodes (shared by neutropenia and B-cell aplasia)
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    onset_day: int
    recovery_day: int | None
    below: tuple[LabValue, ...]


def _below_threshold_runs(
    series: list[LabValue], threshold: float, confirmations: int
) -> list[_Run]:
    """Onset = first value < threshold; recovery = first of ``confirmations``
    consecutive values >= threshold (consecutive in the series, each on a
    different day).  After recovery a new value < threshold opens a new run.
    """
    runs: list[_Run] = []
    onset: int | None = None
    below: list[LabValue] = []
    streak: list[LabValue] = []
    for v in series:
        if onset is None:
            if v.value_per_ul < threshold:
                onset, below, streak = v.study_day, [v], []
            continue
        if v.value_per_ul < threshold:
            below.append(v)
            streak = []
            continue
        streak.append(v)
        if len(streak) == confirmations:
            runs.append(_Run(onset, streak[0].study_day, tuple(below)))
            onset, below, streak = None, [], []
    if onset is not None:
        runs.append(_Run(onset, None, tuple(below)))
    return runs


@dataclass(frozen=True)
class NeutropeniaEpisode:
    threshold_per_ul: float
    onset_day: int
    recovery_day: int | None
    duration_days: int | None
    days_below_threshold: int  # observed days with ANC < threshold in the episode
    nadir_per_ul: float
    nadir_day: int

    @property
    def resolved(self) -> bool:
        return self.recovery_day is not None


@validated(InvalidLabValueError)
def neutropenia_episodes(
    series: Series,
    threshold_per_ul: ThresholdPerUl = 500.0,
    consecutive_values_for_recovery: Annotated[int, Field(ge=1)] = ANC_RECOVERY_CONSECUTIVE_VALUES,
) -> tuple[NeutropeniaEpisode, ...]:
    """Neutropenia episodes below ``threshold_per_ul`` (500 and 1000/uL are
    both in use, e.g. CTCAE grade 4 and grade >= 3 boundaries).

    onset = first day ANC < threshold; recovery = first of three consecutive
    values (on different days) with ANC >= threshold (CIBMTR/ASTCT, see
    ANC_RECOVERY_CONSECUTIVE_VALUES); duration = recovery - onset, None when
    recovery is not confirmed within the data.  ``days_below_threshold``
    counts the observed days below threshold, so with sparse sampling it can
    be smaller than the duration.
    """
    out = []
    for run in _below_threshold_runs(_series(series), threshold_per_ul, consecutive_values_for_recovery):
        nadir = min(run.below, key=lambda v: (v.value_per_ul, v.study_day))
        out.append(
            NeutropeniaEpisode(
                threshold_per_ul=threshold_per_ul,
                onset_day=run.onset_day,
                recovery_day=run.recovery_day,
                duration_days=None
                if run.recovery_day is None
                else run.recovery_day - run.onset_day,
                days_below_threshold=len(run.below),
                nadir_per_ul=nadir.value_per_ul,
                nadir_day=nadir.study_day,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------
# B-cell aplasia
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class BCellAplasiaPeriod:
    threshold_per_ul: float
    start_day: int
    recovery_day: int | None
    duration_days: int | None


@validated(InvalidLabValueError)
def b_cell_aplasia_periods(
    series: Series,
    threshold_per_ul: ThresholdPerUl = DEFAULT_B_CELL_APLASIA_THRESHOLD_PER_UL,
) -> tuple[BCellAplasiaPeriod, ...]:
    """B-cell aplasia from CD19+ B-cell counts (cells/uL).

    start = first day below threshold; recovery = first later day at or
    above threshold (a single value, programme convention); duration =
    recovery - start, None if not recovered within the data.  A later drop
    below threshold opens a new period.
    """
    return tuple(
        BCellAplasiaPeriod(
            threshold_per_ul=threshold_per_ul,
            start_day=run.onset_day,
            recovery_day=run.recovery_day,
            duration_days=None if run.recovery_day is None else run.recovery_day - run.onset_day,
        )
        for run in _below_threshold_runs(_series(series), threshold_per_ul, 1)
    )


# --------------------------------------------------------------------------
# CAR-T expansion and persistence
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class CarTExpansion:
    """Peak (Cmax) and its day (Tmax) over detectable values, and persistence
    as the last day with a detectable level.  All None if nothing detectable."""

    peak_per_ul: float | None
    peak_day: int | None
    last_detectable_day: int | None

    @property
    def detected(self) -> bool:
        return self.peak_day is not None


@validated(InvalidLabValueError)
def car_t_expansion(
    series: Series,
    limit_of_detection_per_ul: CellsPerUl = 0.0,
) -> CarTExpansion:
    """CAR-T cells/uL over time.  A value is detectable when it is > 0 and
    >= the assay's limit of detection (programme-configurable).  Ties for the
    peak go to the earliest day."""
    values = _series(series)
    if not values:
        raise InvalidLabValueError("series is empty: no CAR-T measurements")
    detectable = [v for v in values if v.value_per_ul > 0 and v.value_per_ul >= limit_of_detection_per_ul]
    if not detectable:
        return CarTExpansion(None, None, None)
    peak = max(detectable, key=lambda v: (v.value_per_ul, -v.study_day))
    return CarTExpansion(peak.value_per_ul, peak.study_day, detectable[-1].study_day)
