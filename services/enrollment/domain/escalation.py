"""Dose escalation through the services (issue 10 item 3): each subject enrolled in a programme
with an escalation design is assigned a dose level by the design; each DLT evaluation
(assessment's `DltEvaluated`) is a new decision, recorded with the data it was taken on; when
the design stops, the MTD and the recommended dose level are declared.

One stream per programme, `escalation-<programme>`: two enrolments cannot both take a cohort's
last place, nor pass the sample-size cap. The decisions are the design's own
(services/clinical/escalation: 3+3 after Storer 1989 and Le Tourneau et al., JNCI 2009; BOIN
after Liu & Yuan 2015), on per-level counts where a subject assigned and not yet evaluated
is pending (inside its DLT window, or not yet infused).

Cohorts: a decision that treats more subjects (start, escalate, stay, expand, complete a
cohort, de-escalate) opens a cohort of `patients_to_enrol` at its level; the next
enrolments fill it, and only a full cohort asks the design again, so a cohort of three is
enrolled together, as the designs treat it. A design that waits for evaluations, or has
stopped, refuses the enrolment; so does the cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.commands import EnrollSubject
from contracts.errors import CommandRefused
from contracts.events import (
    DltEvaluated,
    DoseLevelAssigned,
    EscalationDecided,
    EscalationDecision,
    LevelCount,
    MtdDeclared,
    ProgrammePublished,
)
from contracts.base import EventPayload
from services.clinical.escalation import three_plus_three
from services.clinical.escalation.boin import BoinDesign, boin_decide
from services.clinical.escalation.core import Action, Decision, DoseLevelState
from services.kernel.aggregate import Aggregate

STOPS = {Action.STOP_MTD_FOUND, Action.STOP_MAX_SAMPLE_SIZE, Action.STOP_HIGHEST_DOSE_SAFE,
         Action.STOP_LOWEST_DOSE_TOXIC}


class EscalationStopped(CommandRefused):
    code = "ESCALATION_STOPPED"


class EscalationCapReached(CommandRefused):
    code = "ESCALATION_CAP_REACHED"


class CohortPending(CommandRefused):
    code = "COHORT_PENDING"


class DoseLevelNotAllowed(CommandRefused):
    code = "DOSE_LEVEL_NOT_ALLOWED"


def escalation_stream(programme_id: str) -> str:
    return f"escalation-{programme_id}"


@dataclass(frozen=True)
class Design:
    """A published version's escalation: its rule (3+3 with its cap, or BOIN), its levels
    1..K, its DLT window."""

    version: int
    n_levels: int
    dlt_window_days: int
    cap: int | None
    boin: BoinDesign | None = None

    def decide(self, levels: tuple[DoseLevelState, ...], current_level: int) -> Decision:
        if self.boin is not None:
            return boin_decide(self.boin, levels, current_level)
        return three_plus_three.decide(levels, self.cap)


def design_of(published: ProgrammePublished, built: BoinDesign | int | None) -> Design | None:
    """The escalation of a published version (`built`: domain/programmes.rules_of's)."""
    e = published.definition.escalation
    if e is None:
        return None
    n_levels = sum(1 for d in published.definition.dose_levels if d.level >= 1)
    return Design(published.version, n_levels, e.dlt_window_days, e.max_sample_size,
                  built if isinstance(built, BoinDesign) else None)


def _decision(d: Decision) -> EscalationDecision:
    return EscalationDecision(action=d.action.value, next_dose_level=d.next_dose_level,
                              patients_to_enrol=d.patients_to_enrol, mtd=d.mtd, reason=d.reason[:2000])


def _counts(levels: tuple[DoseLevelState, ...]) -> list[LevelCount]:
    return [LevelCount(level=s.level, evaluable=s.evaluable, dlts=s.dlts, pending=s.pending) for s in levels]


@dataclass
class Escalation(Aggregate):
    """A programme's dose escalation: who was assigned which level, in which cohort, and who
    was evaluated with or without a DLT."""

    programme_id: str
    assigned: dict[str, int] = field(default_factory=dict)  # subject -> level
    evaluated: dict[str, bool] = field(default_factory=dict)  # subject -> had a DLT
    cohort: DoseLevelAssigned | None = None  # the latest assignment: its cohort, level and size
    filled: int = 0  # subjects in the latest cohort
    declared: MtdDeclared | None = None

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, DoseLevelAssigned):
            self.assigned[event.subject_id] = event.dose_level
            same = self.cohort is not None and self.cohort.cohort == event.cohort
            self.filled = self.filled + 1 if same else 1
            self.cohort = event
        elif isinstance(event, EscalationDecided):
            self.evaluated[event.subject_id] = event.dlt
        elif isinstance(event, MtdDeclared):
            self.declared = event

    def levels(self, n_levels: int) -> tuple[DoseLevelState, ...]:
        """Per level 1..K: evaluable subjects, DLTs among them, subjects still pending."""
        counts = {level: [0, 0, 0] for level in range(1, n_levels + 1)}
        for subject, level in self.assigned.items():
            row = counts.setdefault(level, [0, 0, 0])
            if subject in self.evaluated:
                row[0] += 1
                row[1] += self.evaluated[subject]
            else:
                row[2] += 1
        return tuple(DoseLevelState(level, *counts[level]) for level in sorted(counts))

    def assign(self, cmd: EnrollSubject, design: Design) -> DoseLevelAssigned:
        """The level of the subject being enrolled: its cohort's while the cohort has room,
        else the design's next decision; refused when the design waits, has stopped, or the
        cap is reached, and when the centre expected another level."""
        if self.declared is not None:
            raise EscalationStopped(f"the dose escalation of {self.programme_id} stopped on "
                                    f"{self.declared.declared_on.isoformat()}: {self.declared.reason}")
        if design.cap is not None and len(self.assigned) >= design.cap:
            raise EscalationCapReached(f"{self.programme_id} enrols at most {design.cap} subjects in its dose "
                                       f"escalation; {len(self.assigned)} are enrolled")
        levels = self.levels(design.n_levels)
        current = self.cohort.dose_level if self.cohort is not None else 1
        if self.cohort is not None and self.filled < self.cohort.cohort_size:
            level, cohort, size = self.cohort.dose_level, self.cohort.cohort, self.cohort.cohort_size
            decision = EscalationDecision(
                action="fill_cohort", next_dose_level=level, patients_to_enrol=size - self.filled,
                reason=f"cohort {cohort} at level {level}: {self.filled} of {size} enrolled")
        else:
            d = design.decide(levels, current)
            if d.action in STOPS:
                raise EscalationStopped(f"the design has stopped the escalation of {self.programme_id}: {d.reason}")
            if d.next_dose_level is None or d.patients_to_enrol == 0:
                closed = EscalationCapReached if "cap of" in d.reason else CohortPending
                raise closed(f"{self.programme_id}: {d.reason}")
            level, size = d.next_dose_level, d.patients_to_enrol
            cohort = self.cohort.cohort + 1 if self.cohort is not None else 1
            decision = _decision(d)
        if cmd.dose_level is not None and cmd.dose_level != level:
            raise DoseLevelNotAllowed(f"the design of {self.programme_id} enrols the next subject at level {level}, "
                                      f"not {cmd.dose_level}: {decision.reason}")
        return DoseLevelAssigned(programme_id=self.programme_id, programme_version=design.version,
                                 subject_id=cmd.subject_id, dose_level=level, cohort=cohort, cohort_size=size,
                                 enrolled_on=cmd.enrolled_on, levels=_counts(levels), decision=decision)

    def evaluate(self, event: DltEvaluated, design: Design) -> list[EventPayload]:
        """The design's decision once a subject's DLT evaluation is known; the MTD and the
        recommended level, once it stops. An evaluation already counted, or of a subject the
        escalation did not assign, changes nothing."""
        if event.subject_id in self.evaluated or event.subject_id not in self.assigned:
            return []
        after = Escalation(self.programme_id, dict(self.assigned), {**self.evaluated, event.subject_id: event.dlt is not None})
        levels = after.levels(design.n_levels)
        current = self.cohort.dose_level if self.cohort is not None else 1
        d = design.decide(levels, current)
        new: list[EventPayload] = [EscalationDecided(
            programme_id=self.programme_id, programme_version=design.version, subject_id=event.subject_id,
            dlt=event.dlt is not None, evaluated_on=event.evaluated_on, levels=_counts(levels), decision=_decision(d))]
        if d.action in STOPS and self.declared is None:
            recommended = d.mtd if d.mtd is not None else d.highest_tolerated_level
            why = (f"MTD level {d.mtd}" if d.mtd is not None else "MTD not established") + (
                f"; recommended level {recommended} (the highest level with at most 1 DLT in 6)"
                if d.mtd is None and recommended is not None else "")
            new.append(MtdDeclared(programme_id=self.programme_id, programme_version=design.version,
                                   mtd_level=d.mtd, recommended_level=recommended, action=d.action.value,
                                   reason=f"{why}: {d.reason}"[:2000], declared_on=event.evaluated_on))
        return new
