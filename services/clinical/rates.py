"""Response rates with exact confidence intervals, and median/range summaries.

Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field
from scipy.stats import beta

from services.clinical.base import ClinicalInputError, Probability, check, validated

__all__ = [
    "EmptyValuesError",
    "InvalidCountError",
    "InvalidRateConfidenceLevelError",
    "InvalidValueError",
    "MedianRange",
    "Proportion",
    "RateInputError",
    "median_and_range",
    "response_rate",
]


class RateInputError(ClinicalInputError):
    """Base class for invalid input to rate and summary helpers."""


class InvalidCountError(RateInputError):
    """A count is not an integer, is negative, or successes exceed n."""


class InvalidRateConfidenceLevelError(RateInputError):
    """The confidence level is not strictly between 0 and 1."""


class EmptyValuesError(RateInputError):
    """No values were given to summarise."""


class InvalidValueError(RateInputError):
    """A value to summarise is not a finite number."""


@dataclass(frozen=True)
class Proportion:
    """successes / n with an exact (Clopper-Pearson) confidence interval."""

    successes: int
    n: int
    estimate: float
    ci_lower: float
    ci_upper: float
    confidence_level: float


@dataclass(frozen=True)
class MedianRange:
    """Median with minimum and maximum, as in "median 11 days (range 10-18)"."""

    n: int
    median: float
    minimum: float
    maximum: float


@validated(InvalidCountError, {"confidence_level": InvalidRateConfidenceLevelError})
def response_rate(
    successes: Annotated[int, Field(ge=0)],
    n: Annotated[int, Field(gt=0)],  # a rate needs at least one subject
    confidence_level: Probability = 0.95,
) -> Proportion:
    """Proportion of responders with the exact Clopper-Pearson interval."""
    if successes > n:
        raise InvalidCountError(f"successes = {successes} exceeds n = {n}")
    alpha = 1.0 - confidence_level
    # Clopper & Pearson, Biometrika 1934;26:404-413, written with beta
    # quantiles (e.g. Brown, Cai & DasGupta, Stat Sci 2001;16:101-133, sec. 4.2.1):
    #   lower = B(alpha/2; x, n - x + 1), upper = B(1 - alpha/2; x + 1, n - x).
    # The beta is undefined at x = 0 (lower) and x = n (upper); the limits
    # there are 0 and 1 by definition of the exact interval.
    lower = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    upper = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return Proportion(
        successes=successes,
        n=n,
        estimate=successes / n,
        ci_lower=lower,
        ci_upper=upper,
        confidence_level=confidence_level,
    )


def median_and_range(values: Iterable[float]) -> MedianRange:
    """Sample median (mean of the two middle values when n is even), minimum, maximum."""
    checked = list(values)
    check("values", checked, list[float], InvalidValueError)
    if not checked:
        raise EmptyValuesError("values: empty data; need at least one value")
    ordered = sorted(checked)
    n = len(ordered)
    middle = n // 2
    # Conventional sample median (R stats::median; Hyndman & Fan, Am Stat
    # 1996;50:361-365, definition 2 at p = 0.5): the middle order statistic
    # for odd n, the mean of the two middle ones for even n.
    if n % 2:
        median = float(ordered[middle])
    else:
        median = (ordered[middle - 1] + ordered[middle]) / 2
    return MedianRange(n=n, median=median, minimum=ordered[0], maximum=ordered[-1])
