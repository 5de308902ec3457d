"""Lymphodepletion and the cell dose at infusion (issue 10 item 4), and the bedside's dose
no-go (issue 9 item 5), by the subject's programme version (`Dosing`, carried on
`SubjectEnrolled`).

- The treating physician prescribes the lymphodepleting regimen for the infusion planned on
  a day (day 0): the body-surface area from height and weight (services/clinical/bsa.py), each
  administration's dose and date (services/clinical/lymphodepletion.py). Each administration
  given is recorded against that schedule; once the last is given the regimen is complete,
  and the infusion falls in the window after it that the programme states.
- The physician prescribes the cell dose to give from a bag: a dose per kg times the weight,
  or a flat dose, at the subject's dose level; the volume to infuse follows from the bag's
  released concentration, checked against the tolerance (services/clinical/cell_dose.py).
- The bedside gate and the infusion then refuse a first infusion before the regimen is
  complete or outside its window, a bag without a cell-dose prescription, and a volume that
  gives a dose outside the prescription's tolerance.

Sources: FACT-JACIE International Standards (8th ed.) B7 (the attending physician prescribes
the cellular therapy product and its preparative regimen) and D7/D8 (the dose is verified at
the bedside against the order); the rules' own sources in services/clinical.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from contracts.commands import PrescribeCellDose, PrescribeLymphodepletion, RecordInfusion, RecordLymphodepletionDose
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import (
    CellDosePrescribed,
    InfusionWindow,
    LymphodepletionAdministered,
    LymphodepletionCompleted,
    LymphodepletionPrescribed,
    ScheduledDose,
)
from contracts.programmes import Dosing
from services.clinical.base import ClinicalInputError
from services.clinical.bsa import BsaFormula, body_surface_area
from services.clinical.cell_dose import (
    CellDoseOutOfToleranceError,
    CellDoseProgramme,
    VolumeExceedsBagError,
    check_cell_dose,
    plan_cell_dose,
    plan_volume,
)
from services.clinical.lymphodepletion import (
    InfusionOutsideWindowError,
    LymphodepletionRegimen,
    check_infusion_window,
    infusion_window,
    lymphodepletion_dates,
    lymphodepletion_doses,
)
from services.infusion.domain.bedside import NoGo, UnitView
from services.infusion.domain.model import GivenDose, InfusionHistory, ReleasedProduct
from services.kernel.clinical_dates import clinical_date
from services.kernel.programmes import regimen_of


@dataclass(frozen=True)
class Treatment:
    """What infusion obeys for one subject: its programme version's dosing sections."""

    subject_id: str
    programme_id: str
    programme_version: int
    dosing: Dosing
    dose_level: int | None = None  # the level a dose-escalation design assigned the subject

    @property
    def regimen(self) -> LymphodepletionRegimen | None:
        section = self.dosing.lymphodepletion
        return None if section is None else regimen_of(self.dosing.title, section)


class TreatmentUnknown(CommandRefused):
    code = "TREATMENT_UNKNOWN"


class NoLymphodepletion(CommandRefused):
    code = "NO_LYMPHODEPLETION"


class LymphodepletionAfterInfusion(CommandRefused):
    code = "LYMPHODEPLETION_AFTER_INFUSION"


class InvalidPrescription(CommandRefused):
    code = "INVALID_PRESCRIPTION"


class ScheduleInThePast(CommandRefused):
    code = "SCHEDULE_IN_THE_PAST"


class LymphodepletionNotPrescribed(CommandRefused):
    code = "LYMPHODEPLETION_NOT_PRESCRIBED"


class AdministrationNotScheduled(CommandRefused):
    code = "ADMINISTRATION_NOT_SCHEDULED"


class AlreadyAdministered(CommandRefused):
    code = "ALREADY_ADMINISTERED"


class DoseDeviationUnexplained(CommandRefused):
    code = "DOSE_DEVIATION_UNEXPLAINED"


class UnknownUnit(CommandRefused):
    code = "UNKNOWN_UNIT"


class UnitAlreadyInfused(CommandRefused):
    code = "ALREADY_INFUSED"


class UnitContentUnknown(CommandRefused):
    code = "UNIT_CONTENT_UNKNOWN"


class DoseLevelRequired(CommandRefused):
    code = "DOSE_LEVEL_REQUIRED"


class UnknownDoseLevel(CommandRefused):
    code = "UNKNOWN_DOSE_LEVEL"


class DoseNotPerProtocol(CommandRefused):
    code = "DOSE_NOT_PER_PROTOCOL"


class DoseNotStated(CommandRefused):
    code = "DOSE_NOT_STATED"


class ToleranceNotStated(CommandRefused):
    code = "TOLERANCE_NOT_STATED"


class WeightRequired(CommandRefused):
    code = "WEIGHT_REQUIRED"


class VolumeExceedsBag(CommandRefused):
    code = "VOLUME_EXCEEDS_BAG"


class DoseOutOfTolerance(CommandRefused):
    code = "DOSE_OUT_OF_TOLERANCE"


def _treatment(subject_id: str, treatment: Treatment | None) -> Treatment:
    if treatment is None:
        raise TreatmentUnknown(f"subject {subject_id} was not enrolled under a published programme version: "
                               "its regimen and doses are not known to infusion")
    return treatment


# --- lymphodepletion ----------------------------------------------------------------------

def prescribe_lymphodepletion(history: InfusionHistory, cmd: PrescribeLymphodepletion,
                              treatment: Treatment | None) -> list[LymphodepletionPrescribed]:
    """The regimen's doses for the subject's body-surface area, dated from the planned infusion.
    A later prescription supersedes an earlier one (the infusion was postponed)."""
    t = _treatment(cmd.subject_id, treatment)
    regimen = t.regimen
    if regimen is None:
        raise NoLymphodepletion(f"programme {t.programme_id} (version {t.programme_version}) gives no "
                                "lymphodepleting regimen")
    if history.infused_cois:
        raise LymphodepletionAfterInfusion(f"subject {cmd.subject_id} was infused already: lymphodepletion "
                                           "precedes the first infusion")
    try:
        bsa = body_surface_area(cmd.height_cm, cmd.weight_kg, BsaFormula(cmd.bsa_formula))
        plan = lymphodepletion_doses(regimen, bsa)
        dates = lymphodepletion_dates(regimen, cmd.planned_infusion_on)
    except ClinicalInputError as exc:
        raise InvalidPrescription(str(exc)) from None
    on = {(d.study_day, d.agent): d.on for d in dates}
    doses = [ScheduledDose(on=on[(d.study_day, d.agent)], study_day=d.study_day, agent=d.agent,
                           mg_per_m2=d.mg_per_m2, dose_mg=d.dose_mg) for d in plan.daily_doses]
    first = min(d.on for d in doses)
    if first < clinical_date(cmd.prescribed_at):
        raise ScheduleInThePast(f"the regimen's first administration would be on {first.isoformat()}, before the "
                                f"prescription on {clinical_date(cmd.prescribed_at).isoformat()}: plan the infusion "
                                "later")
    return [LymphodepletionPrescribed(
        prescription_id=uuid.uuid4(), subject_id=cmd.subject_id, programme_id=t.programme_id,
        programme_version=t.programme_version, regimen=regimen.name, height_cm=cmd.height_cm,
        weight_kg=cmd.weight_kg, bsa_formula=cmd.bsa_formula, bsa_m2=round(bsa, 4),
        planned_infusion_on=cmd.planned_infusion_on, doses=doses,
        infusion_window_days=regimen.infusion_window_days, prescribed_at=cmd.prescribed_at)]


def administer(history: InfusionHistory, cmd: RecordLymphodepletionDose,
               treatment: Treatment | None) -> list[LymphodepletionAdministered | LymphodepletionCompleted]:
    """One scheduled administration given; the last one completes the regimen."""
    prescription = history.lymphodepletion
    if prescription is None:
        raise LymphodepletionNotPrescribed(f"no lymphodepletion is prescribed for subject {cmd.subject_id}")
    if history.infused_cois:
        raise LymphodepletionAfterInfusion(f"subject {cmd.subject_id} was infused already")
    if cmd.administered_at < prescription.prescribed_at:
        raise AdministrationNotScheduled(f"given at {cmd.administered_at.isoformat()}, before its prescription at "
                                         f"{prescription.prescribed_at.isoformat()}")
    on = clinical_date(cmd.administered_at)
    agent = cmd.agent.strip().lower()
    scheduled = [d for d in prescription.doses if d.agent.lower() == agent]
    if not scheduled:
        raise AdministrationNotScheduled(f"{cmd.agent} is not in the prescribed regimen ({prescription.regimen}: "
                                         f"{', '.join(sorted({d.agent for d in prescription.doses}))})")
    dose = next((d for d in scheduled if d.on == on), None)
    if dose is None:
        days = ", ".join(f"{d.on.isoformat()} (day {d.study_day})" for d in scheduled)
        raise AdministrationNotScheduled(f"{dose_name(scheduled[0])} is scheduled on {days}, not on {on.isoformat()}")
    if any(a.agent == dose.agent and a.on == on for a in history.administered):
        raise AlreadyAdministered(f"{dose_name(dose)} of {on.isoformat()} was recorded already")
    if abs(cmd.dose_mg - dose.dose_mg) > 1e-9 and cmd.deviation_reason is None:
        raise DoseDeviationUnexplained(
            f"{dose_name(dose)} {cmd.dose_mg:g} mg differs from the prescribed {dose.dose_mg:g} mg "
            f"({(cmd.dose_mg - dose.dose_mg) / dose.dose_mg:+.1%}): recorded only with deviation_reason")
    given = LymphodepletionAdministered(
        prescription_id=prescription.prescription_id, subject_id=cmd.subject_id, agent=dose.agent,
        study_day=dose.study_day, on=on, dose_mg=cmd.dose_mg, prescribed_mg=dose.dose_mg,
        administered_at=cmd.administered_at, deviation_reason=cmd.deviation_reason)
    if len(history.administered) + 1 < len(prescription.doses):
        return [given]
    last = max(d.on for d in prescription.doses)
    regimen = treatment.regimen if treatment is not None else None
    window = infusion_window(regimen, last) if regimen is not None else None
    return [given, LymphodepletionCompleted(
        prescription_id=prescription.prescription_id, subject_id=cmd.subject_id, completed_on=last,
        window=InfusionWindow(earliest=window[0], latest=window[1]) if window else None)]


def dose_name(dose: ScheduledDose) -> str:
    return f"{dose.agent} (day {dose.study_day})"


# --- the cell dose ------------------------------------------------------------------------

def prescribe_cell_dose(history: InfusionHistory, cmd: PrescribeCellDose, treatment: Treatment | None,
                        unit: UnitView | None, product: ReleasedProduct | None) -> list[CellDosePrescribed]:
    """The volume of bag `cmd.unit_id` that gives the prescribed dose, within the tolerance."""
    t = _treatment(cmd.subject_id, treatment)
    if unit is None:
        raise UnknownUnit(f"unit {cmd.unit_id} is not known to infusion: never labelled")
    if unit.subject_id != cmd.subject_id:
        raise ChainOfIdentityMismatch(f"unit {cmd.unit_id} is subject {unit.subject_id}'s, not {cmd.subject_id}'s: "
                                      "prescription refused")
    if cmd.unit_id in history.infused_units:
        raise UnitAlreadyInfused(f"unit {cmd.unit_id} was infused already")
    if product is None or product.viable_cells_per_ml is None or product.volume_ml is None:
        raise UnitContentUnknown(f"the content of unit {cmd.unit_id} is not known: its product's release record "
                                 "(viable cells per mL, volume) has not reached infusion")
    level_no = cmd.dose_level
    if t.dose_level is not None:
        if level_no not in (None, t.dose_level):
            raise DoseNotPerProtocol(f"the dose escalation of {t.programme_id} assigned subject {cmd.subject_id} to "
                                     f"level {t.dose_level}, not {level_no}")
        level_no = t.dose_level
    elif level_no is None:
        if len(t.dosing.dose_levels) != 1:
            raise DoseLevelRequired(f"programme {t.programme_id} has dose levels "
                                    f"{[d.level for d in t.dosing.dose_levels]}: name the subject's dose_level")
        level_no = t.dosing.dose_levels[0].level
    level = t.dosing.level(level_no)
    if level is None:
        raise UnknownDoseLevel(f"programme {t.programme_id} has no dose level {level_no}")
    per_kg, flat = _dose(cmd, t, level.cells_per_kg, level.flat_cells)
    tolerance = _tolerance(cmd, t)
    try:
        if per_kg is not None:
            if cmd.weight_kg is None:
                raise WeightRequired(f"a dose of {per_kg:.3g} cells/kg needs the subject's weight_kg")
            plan = plan_cell_dose(CellDoseProgramme(target_cells_per_kg=per_kg, tolerance_fraction=tolerance),
                                  cmd.weight_kg, product.viable_cells_per_ml, product.volume_ml)
        else:
            plan = plan_volume(flat, product.viable_cells_per_ml, product.volume_ml, tolerance)
    except VolumeExceedsBagError as exc:
        raise VolumeExceedsBag(f"unit {cmd.unit_id}: {exc}") from None
    except CellDoseOutOfToleranceError as exc:
        raise DoseOutOfTolerance(f"unit {cmd.unit_id}: {exc}") from None
    except ClinicalInputError as exc:
        raise InvalidPrescription(str(exc)) from None
    return [CellDosePrescribed(
        prescription_id=uuid.uuid4(), subject_id=cmd.subject_id, unit_id=cmd.unit_id, programme_id=t.programme_id,
        programme_version=t.programme_version, dose_level=level_no,
        weight_kg=cmd.weight_kg if per_kg is not None else None, cells_per_kg=per_kg, flat_cells=flat,
        target_cells=plan.target_cells, viable_cells_per_ml=product.viable_cells_per_ml,
        bag_volume_ml=product.volume_ml, volume_ml=plan.volume_ml, planned_cells=plan.planned_cells,
        deviation_fraction=round(plan.deviation_fraction, 6), tolerance_fraction=tolerance,
        prescribed_at=cmd.prescribed_at)]


def _dose(cmd: PrescribeCellDose, t: Treatment, per_kg: float | None,
          flat: float | None) -> tuple[float | None, float | None]:
    """The protocol's dose where its level states one (a prescription may only repeat it),
    else the prescription's."""
    if per_kg is not None or flat is not None:
        if (cmd.cells_per_kg, cmd.flat_cells) not in {(None, None), (per_kg, flat)}:
            stated = f"{per_kg:.3g} cells/kg" if per_kg is not None else f"{flat:.3g} cells"
            raise DoseNotPerProtocol(f"programme {t.programme_id}'s dose level gives {stated}; the prescription "
                                     "may not give another dose")
        return per_kg, flat
    if cmd.cells_per_kg is None and cmd.flat_cells is None:
        raise DoseNotStated(f"programme {t.programme_id} does not state the dose of this level: prescribe "
                            "cells_per_kg (with weight_kg) or flat_cells")
    return cmd.cells_per_kg, cmd.flat_cells


def _tolerance(cmd: PrescribeCellDose, t: Treatment) -> float:
    stated = t.dosing.cell_dose_tolerance_fraction
    if stated is None:
        if cmd.tolerance_fraction is None:
            raise ToleranceNotStated(f"programme {t.programme_id} states no tolerance of the cell dose: prescribe "
                                     "tolerance_fraction")
        return cmd.tolerance_fraction
    if cmd.tolerance_fraction is not None and cmd.tolerance_fraction != stated:
        raise DoseNotPerProtocol(f"programme {t.programme_id}'s tolerance is {stated:.0%}, not "
                                 f"{cmd.tolerance_fraction:.0%}")
    return stated


# --- at the bedside and at the infusion ---------------------------------------------------

def readiness(history: InfusionHistory, treatment: Treatment | None, unit_id: str, at: datetime,
              volume_ml: float | None = None) -> list[NoGo]:
    """Every dosing reason not to infuse bag `unit_id` at `at`: the regimen not complete, or
    the infusion outside its window (a first infusion only); no cell-dose prescription for the
    bag; `volume_ml` (the volume prepared, or infused) giving a dose outside its tolerance.
    None for a subject enrolled before programmes were published (nothing to obey)."""
    if treatment is None:
        return []
    reasons = []
    regimen = treatment.regimen
    if regimen is not None and not history.infused_cois:
        reasons.extend(_lymphodepleted(history, regimen, at))
    prescription = history.cell_doses.get(unit_id)
    if prescription is None:
        reasons.append(NoGo("NOT_PRESCRIBED", f"no cell dose is prescribed for unit {unit_id} (PrescribeCellDose)"))
    elif volume_ml is not None:
        try:
            check_cell_dose(prescription.target_cells, volume_ml * prescription.viable_cells_per_ml,
                            prescription.tolerance_fraction)
        except CellDoseOutOfToleranceError as exc:
            reasons.append(NoGo("DOSE_OUT_OF_TOLERANCE", f"{volume_ml:g} mL of unit {unit_id} at "
                                                         f"{prescription.viable_cells_per_ml:.3g} cells/mL: {exc}"))
    return reasons


def _lymphodepleted(history: InfusionHistory, regimen: LymphodepletionRegimen, at: datetime) -> list[NoGo]:
    prescription, completed = history.lymphodepletion, history.lymphodepletion_completed
    if prescription is None:
        return [NoGo("LYMPHODEPLETION_INCOMPLETE", f"no lymphodepletion was prescribed ({regimen.name})")]
    if completed is None:
        given = {(a.agent, a.on) for a in history.administered}
        outstanding = [d for d in prescription.doses if (d.agent, d.on) not in given]
        return [NoGo("LYMPHODEPLETION_INCOMPLETE", f"{len(given)} of {len(prescription.doses)} administrations "
                                                   "given; outstanding: " + ", ".join(
                                                       f"{dose_name(d)} on {d.on.isoformat()}" for d in outstanding))]
    last = max(history.administered, key=lambda a: a.administered_at)
    try:  # the day at the clock of the centre that gave the regimen
        check_infusion_window(regimen, completed.completed_on, at.astimezone(last.administered_at.tzinfo).date())
    except InfusionOutsideWindowError as exc:
        return [NoGo("OUTSIDE_INFUSION_WINDOW", str(exc))]
    return []


def given_dose(history: InfusionHistory, cmd: RecordInfusion, reasons: list[NoGo]) -> tuple[GivenDose | None,
                                                                                          list[NoGo]]:
    """The dose an infusion of a bag gave, and the reasons left to refuse it: a dose outside
    the tolerance is recorded when the infusion says why (it was stopped early)."""
    prescription = history.cell_doses.get(cmd.unit_id or "")
    if prescription is None:
        return None, reasons
    if cmd.dose_deviation_reason is not None:
        reasons = [r for r in reasons if r.code != "DOSE_OUT_OF_TOLERANCE"]
    volume = cmd.volume_ml if cmd.volume_ml is not None else prescription.volume_ml
    return GivenDose(prescription.prescription_id, volume, volume * prescription.viable_cells_per_ml,
                     cmd.dose_deviation_reason), reasons
