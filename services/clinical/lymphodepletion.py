"""Lymphodepletion: per-day chemotherapy doses from the body-surface area, and their dates.

Each DAILY dose is rounded half-up to the agent's ``rounding_mg`` increment
(default 1 mg) from mg/m2 x BSA; per-agent totals are the sum of the rounded
daily doses, i.e. what is actually given.  Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from pydantic import Field, StringConstraints

from services.clinical.base import ClinicalInputError, check_fields, round_half_up, validated
from services.clinical.bsa import InvalidAnthropometryError
from services.clinical.study_days import StudyDayError, date_for_study_day, study_day

__all__ = [
    "AgentSchedule",
    "DailyDose",
    "FLU_CY_AUTOIMMUNE",
    "FLU_CY_SEED_CAR_T",
    "InfusionOutsideWindowError",
    "InvalidRegimenError",
    "LymphodepletionPlan",
    "LymphodepletionRegimen",
    "ScheduledAdministration",
    "check_infusion_window",
    "infusion_window",
    "lymphodepletion_dates",
    "lymphodepletion_doses",
]


class InvalidRegimenError(ClinicalInputError):
    pass


class InfusionOutsideWindowError(ClinicalInputError):
    """The infusion falls outside the regimen's window after its last administration."""


Positive = Annotated[float, Field(gt=0)]


@dataclass(frozen=True)
class AgentSchedule:
    """One agent of a lymphodepleting regimen: mg/m2 per day on the given study days."""

    agent: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    mg_per_m2_per_day: Positive
    # Lymphodepletion precedes the infusion (day 0): every day is negative.
    study_days: Annotated[tuple[Annotated[int, Field(lt=0)], ...], Field(min_length=1)]
    rounding_mg: Positive = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "study_days", tuple(self.study_days))
        check_fields(self, InvalidRegimenError)
        if len(set(self.study_days)) != len(self.study_days):
            raise InvalidRegimenError(f"study_days of {self.agent} has duplicates: {self.study_days}")
        object.__setattr__(self, "study_days", tuple(sorted(self.study_days)))


Days = Annotated[int, Field(ge=0, le=60)]


@dataclass(frozen=True)
class LymphodepletionRegimen:
    """``infusion_window_days``: (earliest, latest) calendar days from the regimen's last
    administration to the infusion, inclusive, as the protocol or label states it (e.g.
    tisagenlecleucel in B-ALL: "2 to 14 days after completion of the lymphodepleting
    chemotherapy", KYMRIAH USPI section 2.2); None: the protocol states none.
    ``source``: where the regimen and its window come from."""

    name: str
    agents: Annotated[tuple[AgentSchedule, ...], Field(min_length=1)]
    infusion_window_days: tuple[Days, Days] | None = None
    source: Annotated[str, StringConstraints(max_length=500)] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "agents", tuple(self.agents))
        if self.infusion_window_days is not None:
            object.__setattr__(self, "infusion_window_days", tuple(self.infusion_window_days))
        check_fields(self, InvalidRegimenError)
        names = [a.agent for a in self.agents]
        if len(set(names)) != len(names):
            raise InvalidRegimenError(f"agents of {self.name!r} lists an agent twice: {names}")
        if self.infusion_window_days is not None:
            earliest, latest = self.infusion_window_days
            if earliest > latest:
                raise InvalidRegimenError(f"infusion_window_days of {self.name!r} runs backwards: "
                                          f"{earliest} to {latest}")
            last = max(day for a in self.agents for day in a.study_days)
            if not earliest <= -last <= latest:
                raise InvalidRegimenError(
                    f"infusion_window_days of {self.name!r} ({earliest} to {latest} days after the last "
                    f"administration) excludes the regimen's own day 0, {-last} days after its last day {last}")


# Seed 002 (Italian CAR-T programme, r/r B-ALL): "fludarabina 25 mg/m2 x 3 giorni
# e ciclofosfamide 900 mg/m2".  The seed gives no study days; the days used here
# (fludarabine days -4, -3, -2; cyclophosphamide day -2) are those of the
# brexucabtagene autoleucel (Tecartus) label for adult B-ALL, the CAR-T the seed
# discusses.  ASSUMPTION: confirm against the programme's protocol.
FLU_CY_SEED_CAR_T = LymphodepletionRegimen(
    name="Flu/Cy 25/900 (seed 002)",
    agents=(
        AgentSchedule("fludarabine", 25.0, (-4, -3, -2)),
        AgentSchedule("cyclophosphamide", 900.0, (-2,)),
    ),
)

# Seed 003 (CD19 CAR-T in autoimmune disease, zorpocabtagene autoleucel):
# "Cyclophosphamide 500 mg/sqm/day (D-4/-3)", "Fludarabine 30 mg/sqm/day (D-5/-4/-3)".
FLU_CY_AUTOIMMUNE = LymphodepletionRegimen(
    name="Flu/Cy 30/500 (seed 003)",
    agents=(
        AgentSchedule("fludarabine", 30.0, (-5, -4, -3)),
        AgentSchedule("cyclophosphamide", 500.0, (-4, -3)),
    ),
)


@dataclass(frozen=True)
class DailyDose:
    study_day: int
    agent: str
    mg_per_m2: float
    dose_mg: float


@dataclass(frozen=True)
class LymphodepletionPlan:
    regimen_name: str
    bsa_m2: float
    bsa_used_m2: float  # after the optional dose-capping BSA
    daily_doses: tuple[DailyDose, ...]  # ordered by study day, then regimen agent order
    totals_mg: tuple[tuple[str, float], ...]  # (agent, total mg) in regimen order

    def total_mg(self, agent: str) -> float:
        for name, total in self.totals_mg:
            if name == agent:
                return total
        raise InvalidRegimenError(f"agent {agent!r} is not in regimen {self.regimen_name!r}")


@validated(InvalidRegimenError, {"bsa_m2": InvalidAnthropometryError})
def lymphodepletion_doses(
    regimen: LymphodepletionRegimen,
    bsa_m2: Annotated[float, Field(gt=0, le=5)],
    max_bsa_m2: Positive | None = None,
) -> LymphodepletionPlan:
    """Per-day doses (mg) and per-agent totals for a BSA.

    ``max_bsa_m2`` is the optional programme dose-capping BSA: doses are
    computed on min(bsa, cap).  Daily doses are rounded half-up to each agent's
    ``rounding_mg``; totals are sums of the rounded daily doses.
    """
    used = bsa_m2 if max_bsa_m2 is None else min(bsa_m2, max_bsa_m2)
    daily: list[DailyDose] = []
    totals: list[tuple[str, float]] = []
    for a in regimen.agents:
        dose = round_half_up(a.mg_per_m2_per_day * used, a.rounding_mg)
        for day in a.study_days:
            daily.append(DailyDose(day, a.agent, a.mg_per_m2_per_day, dose))
        totals.append((a.agent, float(sum(d.dose_mg for d in daily if d.agent == a.agent))))
    order = {a.agent: i for i, a in enumerate(regimen.agents)}
    daily.sort(key=lambda d: (d.study_day, order[d.agent]))
    return LymphodepletionPlan(regimen.name, bsa_m2, used, tuple(daily), tuple(totals))


@dataclass(frozen=True)
class ScheduledAdministration:
    on: date
    study_day: int
    agent: str


@validated(InvalidRegimenError, {"infusion_date": StudyDayError})
def lymphodepletion_dates(
    regimen: LymphodepletionRegimen, infusion_date: date
) -> tuple[ScheduledAdministration, ...]:
    """Calendar dates of each scheduled administration, ordered by date then regimen agent order."""
    out = [
        ScheduledAdministration(date_for_study_day(day, infusion_date), day, a.agent)
        for a in regimen.agents
        for day in a.study_days
    ]
    order = {a.agent: i for i, a in enumerate(regimen.agents)}
    return tuple(sorted(out, key=lambda s: (s.study_day, order[s.agent])))


@validated(InvalidRegimenError, {"last_administration_on": StudyDayError})
def infusion_window(regimen: LymphodepletionRegimen, last_administration_on: date) -> tuple[date, date] | None:
    """The first and last calendar dates on which the infusion may be given, counted from the
    date of the regimen's last administration (``infusion_window_days``); None: no window."""
    if regimen.infusion_window_days is None:
        return None
    earliest, latest = regimen.infusion_window_days
    return (date_for_study_day(earliest, last_administration_on), date_for_study_day(latest, last_administration_on))


@validated(InvalidRegimenError, {"last_administration_on": StudyDayError, "infusion_on": StudyDayError})
def check_infusion_window(regimen: LymphodepletionRegimen, last_administration_on: date, infusion_on: date) -> int:
    """Days from the regimen's last administration to the infusion; raises
    InfusionOutsideWindowError outside ``infusion_window_days`` (its ends are inside)."""
    days = study_day(infusion_on, last_administration_on)
    window = infusion_window(regimen, last_administration_on)
    if window is not None and not window[0] <= infusion_on <= window[1]:
        earliest, latest = regimen.infusion_window_days  # type: ignore[misc]
        raise InfusionOutsideWindowError(
            f"infusion on {infusion_on.isoformat()} is {days} days after the last lymphodepleting administration "
            f"({last_administration_on.isoformat()}); {regimen.name} allows {earliest} to {latest} days, "
            f"{window[0].isoformat()} to {window[1].isoformat()}")
    return days
