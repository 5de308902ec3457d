"""Derive (time, event) pairs for time-to-event endpoints from a subject's dated facts.

Time origin is the CAR-T infusion date (day 0). Times are whole days; use
``days_to_months`` for reporting in months.

Endpoints (definitions cite their source; "ELN" = Döhner et al., European
LeukemiaNet recommendations, Blood 2017;129:424-447 and Blood
2022;140:1345-1377, section on outcome definitions):

* Overall survival (OS): death from any cause; alive subjects are censored at
  the date last known alive (ELN; Cheson et al., J Clin Oncol 2007;25:579-586).
* Event-free survival (EFS): event = treatment failure (no CR/CRi by a
  pre-defined landmark), relapse/progression, or death from any cause,
  whichever comes first. Treatment failure is dated at the time origin: ELN
  2022 assigns it to "day 1" of treatment, which is elapsed time 0 here
  (infusion day = day 0). Once failure is established (follow-up reached the
  landmark, or death/progression without response came first) the EFS event
  is at day 0, even for early deaths.
* Duration of response (DOR): from first CR/CRi to relapse or death from any
  cause, for responders only; non-responders give ``None``. Death as an event
  follows ELN's relapse-free survival for patients in CR (Cheson 2007's DOR
  counts progression only; CellTrail uses the stricter definition).
* Time to progression (TTP): event = relapse/progression; deaths without
  documented progression are censored at death (Cheson 2007, TTP; the facts
  carry no cause of death, so every death without progression is censored).

Allogeneic transplant after infusion is handled per programme
(``TransplantHandling``), since publications report both:
``CENSOR_AT_TRANSPLANT`` ends follow-up at the transplant date (facts dated
after it are not used; an event dated on the transplant day itself still
counts, as it was present before the transplant); ``IGNORE_TRANSPLANT`` uses
all follow-up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from pydantic import Field

from services.clinical.base import ClinicalInputError, check_fields, validated

__all__ = [
    "DAYS_PER_MONTH",
    "FactDateError",
    "FactOrderError",
    "InvalidLandmarkError",
    "SubjectFacts",
    "TimeToEvent",
    "TimeToEventError",
    "TransplantHandling",
    "days_to_months",
    "duration_of_response",
    "event_free_survival",
    "overall_survival",
    "time_to_progression",
]

# Mean month of the 365.25-day (Julian) year: 365.25 / 12 = 30.4375 days, the
# usual days-to-months factor in oncology survival reporting.
DAYS_PER_MONTH = 30.4375


class TimeToEventError(ClinicalInputError):
    """Base class for facts that cannot yield a time-to-event pair."""


class FactDateError(TimeToEventError):
    """A fact's date is missing where required or not a calendar date."""


class FactOrderError(TimeToEventError):
    """Two dated facts are in an impossible order."""


class InvalidLandmarkError(TimeToEventError):
    """The response landmark is not a whole number of days >= 0."""


class TransplantHandling(Enum):
    """How an allogeneic transplant after infusion affects follow-up."""

    CENSOR_AT_TRANSPLANT = "censor_at_transplant"
    IGNORE_TRANSPLANT = "ignore_transplant"


@dataclass(frozen=True)
class SubjectFacts:
    """Dated facts for one infused subject.

    ``relapse_date`` is the first relapse or progression; ``response_date``
    the first CR/CRi; ``transplant_date`` an allogeneic transplant *after*
    infusion (transplants before infusion are baseline history, not a fact
    here); ``last_contact_date`` the last date the subject was known alive
    (or the death date).  Checked when an endpoint is derived, not when built.
    """

    infusion_date: dt.date
    last_contact_date: dt.date
    death_date: dt.date | None = None
    relapse_date: dt.date | None = None
    response_date: dt.date | None = None
    transplant_date: dt.date | None = None


@dataclass(frozen=True)
class TimeToEvent:
    """Days from the endpoint's origin, and 1 if the event occurred, 0 if censored."""

    days: int
    event: int

    @property
    def months(self) -> float:
        return days_to_months(self.days)

    def as_pair(self) -> tuple[int, int]:
        """``(days, event)``, the input format of ``survival.kaplan_meier``."""
        return (self.days, self.event)

    def as_months_pair(self) -> tuple[float, int]:
        return (self.months, self.event)


def days_to_months(days: float) -> float:
    """Days divided by 30.4375 (= 365.25 / 12, the mean Gregorian month)."""
    return days / DAYS_PER_MONTH


@validated(TimeToEventError)
def overall_survival(
    facts: SubjectFacts, *, transplant_handling: TransplantHandling
) -> TimeToEvent:
    """OS from infusion: death from any cause, else censored at last contact."""
    window = _follow_up(facts, transplant_handling)
    death = window.seen(facts.death_date)
    if death is not None:
        return _since(facts.infusion_date, death, event=1)
    return _since(facts.infusion_date, window.end, event=0)


@validated(TimeToEventError, {"response_landmark_days": InvalidLandmarkError})
def event_free_survival(
    facts: SubjectFacts,
    *,
    transplant_handling: TransplantHandling,
    response_landmark_days: Annotated[int, Field(ge=0)],
) -> TimeToEvent:
    """EFS from infusion; non-response by the landmark is an event at day 0.

    A subject without a response on or before ``infusion + landmark`` is a
    treatment failure (event at day 0) once that is known: follow-up reached
    the landmark, or the subject died or progressed first (ELN 2022).
    A later response does not undo the failure. Until then, a subject with no
    response yet is censored at the end of follow-up. Responders have their
    event at the earlier of relapse and death, else are censored at the end of
    follow-up.
    """
    window = _follow_up(facts, transplant_handling)
    landmark = facts.infusion_date + dt.timedelta(days=response_landmark_days)
    response = window.seen(facts.response_date)
    relapse = window.seen(facts.relapse_date)
    death = window.seen(facts.death_date)

    if response is not None and response <= landmark:
        failure = _earliest(relapse, death)
        if failure is not None:
            return _since(facts.infusion_date, failure, event=1)
        return _since(facts.infusion_date, window.end, event=0)

    if window.end >= landmark or relapse is not None or death is not None:
        # ELN 2022: failure to achieve CR by the landmark is an EFS event dated
        # at the start of treatment (their "day 1" = elapsed day 0 here).
        return TimeToEvent(days=0, event=1)
    return _since(facts.infusion_date, window.end, event=0)


@validated(TimeToEventError)
def duration_of_response(
    facts: SubjectFacts, *, transplant_handling: TransplantHandling
) -> TimeToEvent | None:
    """DOR from first response to relapse or death; None for non-responders.

    Under ``CENSOR_AT_TRANSPLANT`` a response dated after the transplant is
    not observed, so that subject is a non-responder here.
    """
    window = _follow_up(facts, transplant_handling)
    response = window.seen(facts.response_date)
    if response is None:
        return None
    failure = _earliest(window.seen(facts.relapse_date), window.seen(facts.death_date))
    if failure is not None:
        return _since(response, failure, event=1)
    return _since(response, window.end, event=0)


@validated(TimeToEventError)
def time_to_progression(
    facts: SubjectFacts, *, transplant_handling: TransplantHandling
) -> TimeToEvent:
    """TTP from infusion: relapse/progression; death without it is censored at death."""
    window = _follow_up(facts, transplant_handling)
    relapse = window.seen(facts.relapse_date)
    if relapse is not None:
        return _since(facts.infusion_date, relapse, event=1)
    # Cheson et al. 2007 (TTP): deaths without progression are censored at the
    # death date, which is then also the end of follow-up.
    return _since(facts.infusion_date, window.end, event=0)


@dataclass(frozen=True)
class _FollowUp:
    end: dt.date

    def seen(self, date: dt.date | None) -> dt.date | None:
        """The date if it falls within follow-up, else None (not observed)."""
        if date is None or date > self.end:
            return None
        return date


def _follow_up(facts: SubjectFacts, handling: TransplantHandling) -> _FollowUp:
    _validate(facts)
    end = facts.death_date if facts.death_date is not None else facts.last_contact_date
    if handling is TransplantHandling.CENSOR_AT_TRANSPLANT and facts.transplant_date is not None:
        end = min(end, facts.transplant_date)
    return _FollowUp(end=end)


def _validate(facts: SubjectFacts) -> None:
    named = {
        "infusion_date": facts.infusion_date,
        "last_contact_date": facts.last_contact_date,
        "death_date": facts.death_date,
        "relapse_date": facts.relapse_date,
        "response_date": facts.response_date,
        "transplant_date": facts.transplant_date,
    }
    # Declared as dates: a datetime (a subclass of date) is refused, as a time of
    # day would make day counts ambiguous.
    check_fields(facts, FactDateError)

    infusion = facts.infusion_date
    for field, value in named.items():
        if field != "infusion_date" and value is not None and value < infusion:
            raise FactOrderError(
                f"{field} = {value.isoformat()} is before infusion_date = {infusion.isoformat()}"
            )
    if facts.death_date is not None:
        for field, value in named.items():
            if field != "death_date" and value is not None and value > facts.death_date:
                raise FactOrderError(
                    f"{field} = {value.isoformat()} is after death_date = "
                    f"{facts.death_date.isoformat()}"
                )
    for field in ("relapse_date", "response_date", "transplant_date"):
        value = named[field]
        # For living subjects the last contact closes follow-up; for deaths the
        # death date does (checked above), as contact may not be updated after it.
        if facts.death_date is None and value is not None and value > facts.last_contact_date:
            raise FactOrderError(
                f"{field} = {value.isoformat()} is after last_contact_date = "
                f"{facts.last_contact_date.isoformat()}"
            )
    if (
        facts.response_date is not None
        and facts.relapse_date is not None
        and facts.relapse_date < facts.response_date
    ):
        raise FactOrderError(
            f"relapse_date = {facts.relapse_date.isoformat()} is before the first "
            f"response_date = {facts.response_date.isoformat()}"
        )


def _earliest(*dates: dt.date | None) -> dt.date | None:
    present = [date for date in dates if date is not None]
    return min(present) if present else None


def _since(origin: dt.date, end: dt.date, *, event: int) -> TimeToEvent:
    return TimeToEvent(days=(end - origin).days, event=event)
