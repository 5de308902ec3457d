"""Study-day arithmetic: day 0 is the infusion date.

Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import date, timedelta

from services.clinical.base import ClinicalInputError, validated

__all__ = ["StudyDayError", "date_for_study_day", "study_day"]


class StudyDayError(ClinicalInputError):
    pass


# Dates are declared as ``date``: a datetime is refused so times never leak into day counts.


@validated(StudyDayError)
def study_day(on: date, infusion_date: date) -> int:
    """Study day of ``on``: day 0 is the infusion date, the day before is -1, the day after +1.

    (Unlike CDISC SDTM --DY, which has no day 0, this programme counts the
    infusion day as day 0 so that "day -5 .. -3" and "day 28" read as in the seeds.)
    """
    return (on - infusion_date).days


@validated(StudyDayError)
def date_for_study_day(day: int, infusion_date: date) -> date:
    return infusion_date + timedelta(days=day)
