"""Kaplan-Meier survival estimation for right-censored data.

Pure functions over ``(time, event)`` pairs: ``time`` is a finite number >= 0
(any unit; CellTrail uses days or months), ``event`` is 1 when the endpoint
event was observed at ``time`` and 0 when the subject was censored there.

Conventions (each cites its source; they reproduce R ``survival``'s
``survfit(..., conf.type = "log-log")`` and lifelines' ``KaplanMeierFitter``):

* Product-limit estimator: Kaplan & Meier, JASA 1958;53:457-481.
* Ties: at a shared time, events are taken to precede censorings, so subjects
  censored at ``t`` are still in the risk set at ``t`` (Kaplan & Meier 1958,
  section 2; Kalbfleisch & Prentice, *The Statistical Analysis of Failure
  Time Data*, 2nd ed. 2002, section 1.4.1).
* Variance: Greenwood, *Reports on Public Health and Medical Subjects* 33, 1926.
* Pointwise confidence interval, ``conf_type`` (R ``survfit``'s ``conf.type``):
  ``"log-log"`` (the default here: Kalbfleisch & Prentice 2002, section 1.4.1;
  lifelines' default; R ``conf.type = "log-log"``), ``"log"`` (R's own default:
  exp(log S -/+ z se(log S)), the upper limit capped at 1) or ``"plain"``
  (S -/+ z se(S), clipped to [0, 1]); R ``survfit_confint``.
* Median and its confidence interval: R ``survival`` ``print.survfit``
  (``survmean``/``minmin``), i.e. the Brookmeyer & Crowley (Biometrics
  1982;38:29-41) interval got by inverting the pointwise intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Real
from typing import Annotated, Literal

from pydantic import Field, SkipValidation
from scipy.stats import norm

from services.clinical.base import ClinicalInputError, Probability, validated

__all__ = [
    "EmptySurvivalDataError",
    "InvalidConfidenceLevelError",
    "InvalidEventFlagError",
    "InvalidTimeError",
    "KaplanMeierEstimate",
    "KaplanMeierRow",
    "MedianSurvival",
    "SurvivalAtTime",
    "SurvivalDataError",
    "TimeBeyondFollowUpError",
    "ConfType",
    "kaplan_meier",
    "survival_at",
]

ConfType = Literal["log-log", "log", "plain"]

# R survival's print.survfit compares survival with 0.5 using
# .Machine$double.eps^0.5 ("same as used in all.equal()"), so that
# survfit(Surv(1:100) ~ 1), whose S is 0.5 + 1.1e-16, still counts as 0.5.
_HALF_TOLERANCE = math.sqrt(2.0**-52)


class SurvivalDataError(ClinicalInputError):
    """Base class for invalid input to the survival estimators."""


class EmptySurvivalDataError(SurvivalDataError):
    """No observations were given."""


class InvalidTimeError(SurvivalDataError):
    """A time is not a finite number >= 0."""


class InvalidEventFlagError(SurvivalDataError):
    """An event flag is not 0 or 1."""


class InvalidConfidenceLevelError(SurvivalDataError):
    """The confidence level is not strictly between 0 and 1."""


class TimeBeyondFollowUpError(SurvivalDataError):
    """Survival was requested after the last follow-up time."""


@dataclass(frozen=True)
class KaplanMeierRow:
    """One distinct event time of the product-limit table.

    ``n_censored`` counts subjects censored in ``[time, next event time)``,
    the layout of Kleinbaum & Klein, *Survival Analysis: A Self-Learning
    Text*, 3rd ed. 2012, chapter 2 (column q(f)).

    ``std_error``, ``ci_lower`` and ``ci_upper`` are ``None`` where
    ``survival`` is 0: Greenwood's variance and the log(-log) interval are
    undefined there, and R reports them as NA.
    """

    time: float
    n_at_risk: int
    n_events: int
    n_censored: int
    survival: float
    std_error: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class MedianSurvival:
    """Median survival time and its confidence limits (``None`` = not reached)."""

    estimate: float | None
    ci_lower: float | None
    ci_upper: float | None


@dataclass(frozen=True)
class KaplanMeierEstimate:
    """Product-limit estimate: the table of event times plus summaries."""

    rows: tuple[KaplanMeierRow, ...]
    n_subjects: int
    n_events: int
    n_censored_before_first_event: int
    max_follow_up: float
    confidence_level: float
    median: MedianSurvival
    conf_type: str = "log-log"


@dataclass(frozen=True)
class SurvivalAtTime:
    """The step function and its interval read at one time."""

    time: float
    survival: float
    std_error: float | None
    ci_lower: float | None
    ci_upper: float | None


@validated(InvalidConfidenceLevelError, {"conf_type": InvalidConfidenceLevelError})
def kaplan_meier(
    observations: SkipValidation[Iterable[tuple[float, int]]],
    confidence_level: Probability = 0.95,
    conf_type: ConfType = "log-log",
) -> KaplanMeierEstimate:
    """Kaplan-Meier estimate over ``(time, event)`` pairs, in any order; the pointwise
    interval by ``conf_type`` (module docstring)."""
    # Two-sided normal quantile, as R (qnorm(1 - (1 - conf.int)/2)) and lifelines.
    z = float(norm.ppf(1.0 - (1.0 - confidence_level) / 2.0))
    pairs = _validated(observations)

    events_at: dict[float, int] = {}
    censored_at: dict[float, int] = {}
    for time, event in pairs:
        bucket = events_at if event == 1 else censored_at
        bucket[time] = bucket.get(time, 0) + 1

    at_risk = len(pairs)
    survival = 1.0
    greenwood_sum = 0.0  # sum of d / (n (n - d)): variance of log S
    greenwood_defined = True
    built: list[dict] = []
    censored_before_first = 0

    for time in sorted(set(events_at) | set(censored_at)):
        deaths = events_at.get(time, 0)
        censored = censored_at.get(time, 0)
        if deaths:
            # Product-limit step (Kaplan & Meier 1958, eq. 2.2): S(t) is the
            # product over event times t_j <= t of (n_j - d_j) / n_j, with
            # n_j counting everyone whose time is >= t_j (events first on ties).
            survival *= (at_risk - deaths) / at_risk
            # Greenwood (1926): Var S(t) = S(t)^2 * sum d_j / (n_j (n_j - d_j));
            # the term is infinite once n_j = d_j, i.e. when S drops to 0.
            if at_risk > deaths:
                greenwood_sum += deaths / (at_risk * (at_risk - deaths))
            else:
                greenwood_defined = False
            std_error, lower, upper = _INTERVALS[conf_type](
                survival, greenwood_sum if greenwood_defined else None, z
            )
            built.append(
                dict(
                    time=time,
                    n_at_risk=at_risk,
                    n_events=deaths,
                    n_censored=censored,
                    survival=survival,
                    std_error=std_error,
                    ci_lower=lower,
                    ci_upper=upper,
                )
            )
        elif built:
            built[-1]["n_censored"] += censored
        else:
            censored_before_first += censored
        at_risk -= deaths + censored

    rows = tuple(KaplanMeierRow(**row) for row in built)
    times = [row.time for row in rows]
    median = MedianSurvival(
        estimate=_first_time_at_or_below_half(times, [r.survival for r in rows]),
        # Brookmeyer & Crowley (1982) as computed by R print.survfit: the
        # lower limit is where the LOWER pointwise curve first reaches 0.5
        # (it gets there no later than S does), the upper limit where the
        # UPPER curve first reaches 0.5; None (R: NA) if it never does.
        ci_lower=_first_time_at_or_below_half(times, [r.ci_lower for r in rows]),
        ci_upper=_first_time_at_or_below_half(times, [r.ci_upper for r in rows]),
    )
    return KaplanMeierEstimate(
        rows=rows,
        n_subjects=len(pairs),
        n_events=sum(events_at.values()),
        n_censored_before_first_event=censored_before_first,
        max_follow_up=max(time for time, _ in pairs),
        confidence_level=confidence_level,
        median=median,
        conf_type=conf_type,
    )


@validated(InvalidTimeError)
def survival_at(estimate: KaplanMeierEstimate, time: Annotated[float, Field(ge=0)]) -> SurvivalAtTime:
    """Read the right-continuous KM step function at ``time``.

    Returns the row of the last event time <= ``time`` (R
    ``summary(fit, times = ...)``, which also refuses times past the last
    follow-up unless ``extend = TRUE``). Before the first event S = 1 with
    standard error 0 and a degenerate interval [1, 1] (lifelines fills the
    undefined interval at S = 1 the same way). Times after the last
    follow-up raise ``TimeBeyondFollowUpError``: the curve is not estimable
    there.
    """
    if time > estimate.max_follow_up:
        raise TimeBeyondFollowUpError(
            f"time = {time!r} is after the last follow-up time "
            f"{estimate.max_follow_up!r}; survival is not estimable there"
        )
    current: KaplanMeierRow | None = None
    for row in estimate.rows:
        if row.time > time:
            break
        current = row
    if current is None:
        return SurvivalAtTime(time, 1.0, 0.0, 1.0, 1.0)
    return SurvivalAtTime(
        time, current.survival, current.std_error, current.ci_lower, current.ci_upper
    )


def _validated(observations: Iterable[tuple[float, int]]) -> list[tuple[float, int]]:
    pairs: list[tuple[float, int]] = []
    for index, observation in enumerate(observations):
        try:
            time, event = observation
        except (TypeError, ValueError):
            raise SurvivalDataError(
                f"observations[{index}] = {observation!r}: expected a (time, event) pair"
            ) from None
        if isinstance(time, bool) or not isinstance(time, Real) or not math.isfinite(time):
            raise InvalidTimeError(
                f"observations[{index}].time = {time!r}: must be a finite number"
            )
        if time < 0:
            raise InvalidTimeError(
                f"observations[{index}].time = {time!r}: negative time; must be >= 0"
            )
        if isinstance(event, float) or event not in (0, 1):
            raise InvalidEventFlagError(
                f"observations[{index}].event = {event!r}: event flag must be 0 or 1"
            )
        pairs.append((time, int(event)))
    if not pairs:
        raise EmptySurvivalDataError("observations: empty data; need at least one (time, event)")
    return pairs


def _greenwood_and_log_log(
    survival: float, greenwood_sum: float | None, z: float
) -> tuple[float | None, float | None, float | None]:
    """Greenwood standard error of S and the log(-log) interval at one row."""
    if survival <= 0.0 or greenwood_sum is None:
        # S = 0: Greenwood's sum is infinite and log(-log S) undefined (R: NA).
        return None, None, None
    sigma = math.sqrt(greenwood_sum)  # standard error of log S (and of the cumulative hazard)
    std_error = survival * sigma  # Greenwood (1926): SE(S) = S * sqrt(sum)
    # Kalbfleisch & Prentice (2002) section 1.4.1; R survfit_confint
    # (conf.type "log-log"): with u = z * sigma / log S (negative, since
    # log S < 0), lower = exp(-exp(log(-log S) - u)), upper = exp(-exp(log(-log S) + u)).
    # exp(-exp(.)) is decreasing, so "- u" (adding |u|) gives the lower limit;
    # lifelines' KaplanMeierFitter._bounds uses the same expression.
    log_s = math.log(survival)
    u = z * sigma / log_s
    centre = math.log(-log_s)
    lower = math.exp(-math.exp(centre - u))
    upper = math.exp(-math.exp(centre + u))
    return std_error, lower, upper


def _greenwood_and_log(
    survival: float, greenwood_sum: float | None, z: float
) -> tuple[float | None, float | None, float | None]:
    """Greenwood standard error and R's default interval (``conf.type = "log"``): exp(log S
    -/+ z * sqrt(sum)), the upper limit capped at 1 (R survfit_confint)."""
    if survival <= 0.0 or greenwood_sum is None:
        return None, None, None
    sigma = math.sqrt(greenwood_sum)
    log_s = math.log(survival)
    return survival * sigma, math.exp(log_s - z * sigma), min(1.0, math.exp(log_s + z * sigma))


def _greenwood_and_plain(
    survival: float, greenwood_sum: float | None, z: float
) -> tuple[float | None, float | None, float | None]:
    """Greenwood standard error and the untransformed interval (``conf.type = "plain"``):
    S -/+ z * SE(S), clipped to [0, 1] (R survfit_confint)."""
    if survival <= 0.0 or greenwood_sum is None:
        return None, None, None
    std_error = survival * math.sqrt(greenwood_sum)
    return std_error, max(0.0, survival - z * std_error), min(1.0, survival + z * std_error)


_INTERVALS = {"log-log": _greenwood_and_log_log, "log": _greenwood_and_log, "plain": _greenwood_and_plain}


def _first_time_at_or_below_half(
    times: list[float], values: list[float | None]
) -> float | None:
    """First time a decreasing step curve reaches 0.5 (R print.survfit ``minmin``).

    Rows whose value is undefined (None, R's NA) are skipped. If the curve
    sits exactly on 0.5 (within sqrt(machine epsilon)) and drops further
    later, the answer is the midpoint between the time it reached 0.5 and
    the time it next drops (the usual midpoint rule for medians); if it stays
    at 0.5 to the end, the time it reached 0.5. None if it never reaches 0.5.
    """
    kept = [
        (time, value)
        for time, value in zip(times, values)
        if value is not None and value < 0.5 + _HALF_TOLERANCE
    ]
    if not kept:
        return None
    first_time, first_value = kept[0]
    if abs(first_value - 0.5) < _HALF_TOLERANCE:
        for time, value in kept[1:]:
            if value < first_value:
                return (first_time + time) / 2.0
    return first_time
