"""Per-patient DLT records of a 3+3 programme, read into per-level state.

A patient is evaluable once they had a DLT or once their DLT window has closed;
until then they are pending (``core.DoseLevelState.pending``).
Pure functions over frozen dataclasses; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from pydantic import Field, SkipValidation

from services.clinical.base import check, check_fields, validated
from services.clinical.escalation.core import (
    Decision,
    DoseEscalationError,
    DoseLevelState,
    InvalidDesignError,
    SampleSizeCap,
)
from services.clinical.escalation.three_plus_three import decide

__all__ = [
    "EscalationProgramme",
    "InvalidPatientRecordError",
    "NK_PH_POSITIVE_ALL_PHASE_I",
    "PatientDltRecord",
    "decide_from_records",
    "level_states_from_records",
]

PositiveInt = Annotated[int, Field(ge=1)]


class InvalidPatientRecordError(DoseEscalationError):
    """A per-patient DLT record is impossible (dates, level, duplicates)."""


@dataclass(frozen=True)
class EscalationProgramme:
    """Programme-level parameters of a 3+3 escalation."""

    name: str
    n_dose_levels: PositiveInt
    max_sample_size: SampleSizeCap
    dlt_window_days: PositiveInt

    def __post_init__(self) -> None:
        check_fields(self, InvalidDesignError)


# Seed 001 (phase I, autologous NK cells in Ph+ ALL): "A maximum of 6 patients
# will be enrolled in two different steps" with "escalating doses" -> read as
# two dose levels, 6 patients at most.  The seed does not state the DLT window:
# 28 days is a PLACEHOLDER to be confirmed from the protocol.
NK_PH_POSITIVE_ALL_PHASE_I = EscalationProgramme(
    name="Autologous NK cells in Ph+ ALL in CHR with MRD (seed 001)",
    n_dose_levels=2,
    max_sample_size=6,
    dlt_window_days=28,
)


@dataclass(frozen=True)
class PatientDltRecord:
    """One treated patient: dose level, infusion date, date of first DLT (or None).

    Checked when read (``level_states_from_records``), not when built.
    """

    patient_id: str
    dose_level: int
    infusion_date: date
    dlt_date: date | None = None


@validated(InvalidDesignError, {"records": InvalidPatientRecordError, "today": InvalidPatientRecordError})
def level_states_from_records(
    records: SkipValidation[Iterable[PatientDltRecord]],
    today: date,
    dlt_window_days: PositiveInt,
    n_dose_levels: PositiveInt,
) -> tuple[DoseLevelState, ...]:
    """Build per-level state from per-patient records.

    A patient is evaluable once they had a DLT or once their DLT window has
    closed, i.e. ``(today - infusion_date).days >= dlt_window_days``; otherwise
    they are pending.  A DLT must fall within the window (days 0..window after
    infusion): a later toxicity is not a DLT and is refused here.
    """
    patients = list(records)
    check("records", patients, list[PatientDltRecord], InvalidPatientRecordError)
    evaluable = [0] * n_dose_levels
    dlts = [0] * n_dose_levels
    pending = [0] * n_dose_levels
    seen: set[str] = set()
    for r in patients:
        try:
            check_fields(r, InvalidPatientRecordError)
        except InvalidPatientRecordError as exc:
            raise InvalidPatientRecordError(f"patient {r.patient_id!r}: {exc}") from exc
        if r.patient_id in seen:
            raise InvalidPatientRecordError(f"patient_id {r.patient_id!r} appears more than once")
        seen.add(r.patient_id)
        if not 1 <= r.dose_level <= n_dose_levels:
            raise InvalidPatientRecordError(
                f"dose_level of patient {r.patient_id!r} must be 1..{n_dose_levels}, got {r.dose_level!r}"
            )
        if r.infusion_date > today:
            raise InvalidPatientRecordError(
                f"infusion_date of patient {r.patient_id!r} ({r.infusion_date}) is after today ({today})"
            )
        i = r.dose_level - 1
        if r.dlt_date is not None:
            if r.dlt_date < r.infusion_date or r.dlt_date > today:
                raise InvalidPatientRecordError(
                    f"dlt_date of patient {r.patient_id!r} ({r.dlt_date}) must lie between the infusion "
                    f"({r.infusion_date}) and today ({today})"
                )
            day = (r.dlt_date - r.infusion_date).days
            if day > dlt_window_days:
                raise InvalidPatientRecordError(
                    f"dlt_date of patient {r.patient_id!r} is day {day}, outside the "
                    f"{dlt_window_days}-day DLT window: not a DLT"
                )
            evaluable[i] += 1
            dlts[i] += 1
        elif (today - r.infusion_date).days >= dlt_window_days:
            evaluable[i] += 1
        else:
            pending[i] += 1
    return tuple(
        DoseLevelState(level=i + 1, evaluable=evaluable[i], dlts=dlts[i], pending=pending[i])
        for i in range(n_dose_levels)
    )


def decide_from_records(
    programme: EscalationProgramme, records: Iterable[PatientDltRecord], today: date
) -> Decision:
    """3+3 decision for a programme from per-patient records (window and cap from the programme)."""
    levels = level_states_from_records(records, today, programme.dlt_window_days, programme.n_dose_levels)
    return decide(levels, programme.max_sample_size)
