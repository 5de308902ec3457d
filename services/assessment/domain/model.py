"""Response assessments of a subject after infusion (study day 0 = first infusion)."""

from __future__ import annotations

from dataclasses import dataclass, field
import uuid
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from contracts import events as ev
from contracts.base import EventPayload
from contracts.commands import (
    CorrectResponseAssessment,
    RecordDltEvaluation,
    RecordObservation,
    RecordResponseAssessment,
)
from contracts.errors import CommandRefused
from contracts.observations import AdverseEvent, MolecularMrd, Observation, TreatmentGiven
from services.clinical.response_all import (
    MARROW_BLAST_CR_LIMIT_PCT,
    AllAssessment,
    MrdStatus,
    PriorStatus,
    ResponseCategory,
    all_response,
    carcik_day28_readings,
)
from services.clinical.escalation.records import InvalidPatientRecordError, PatientDltRecord, level_states_from_records
from services.assessment.domain.counts import count_determinations, expansion_determination
from services.assessment.domain.toxicity import AgeAtEnrolment, determinations
from services.clinical.escalation.dlt import AdverseEventFacts, is_dose_limiting
from services.kernel.aggregate import Aggregate
from services.kernel.clinical_dates import clinical_date, study_day
from services.kernel.programmes import dlt_definition_of


class SubjectNotInfused(CommandRefused):
    code = "SUBJECT_NOT_INFUSED"


class NotInEscalation(CommandRefused):
    code = "NOT_IN_DOSE_ESCALATION"


class DltAlreadyEvaluated(CommandRefused):
    code = "DLT_ALREADY_EVALUATED"


class OutsideDltWindow(CommandRefused):
    code = "OUTSIDE_DLT_WINDOW"


class DltWindowOpen(CommandRefused):
    code = "DLT_WINDOW_OPEN"


class AssessmentBeforeInfusion(CommandRefused):
    code = "ASSESSMENT_BEFORE_INFUSION"


class BaselineAfterInfusion(CommandRefused):
    code = "BASELINE_AFTER_INFUSION"


class BaselineAlreadyRecorded(CommandRefused):
    code = "BASELINE_ALREADY_RECORDED"


class AssessmentBeforeBirth(CommandRefused):
    """A record of the subject (a response assessment, an observation, a DLT evaluation) dated
    before the subject was born (issue 12 item 5). The date of birth stays in enrollment; what
    this service knows is the age at enrolment, so it refuses a date before the earliest date
    of birth that age allows (`AgeAtEnrolment.earliest_birth`): exactly the dates certainly
    before the birth. A date before the enrolment but after that (a baseline) is accepted."""

    code = "ASSESSMENT_BEFORE_BIRTH"


def check_after_birth(what: str, subject_id: str, day: date, age: AgeAtEnrolment | None) -> None:
    """Refuses `what` dated `day` if the subject was certainly not born yet then."""
    earliest = age.earliest_birth() if age is not None else None
    if age is not None and earliest is not None and day < earliest:
        raise AssessmentBeforeBirth(
            f"{what} dated {day.isoformat()} is before subject {subject_id}'s birth: aged {age.age_years} "
            f"at enrolment on {age.enrolled_on.isoformat()}, the subject was born on {earliest.isoformat()} "
            "at the earliest")


class NoAssessmentToCorrect(CommandRefused):
    code = "NO_ASSESSMENT_TO_CORRECT"


class CorrectionChangesNothing(CommandRefused):
    code = "CORRECTION_CHANGES_NOTHING"


class DuplicateObservation(CommandRefused):
    code = "DUPLICATE_OBSERVATION"


class NoObservationToCorrect(CommandRefused):
    code = "NO_OBSERVATION_TO_CORRECT"


class DltEvaluationDisagrees(CommandRefused):
    code = "DLT_EVALUATION_DISAGREES"


class EscalationOf(Protocol):
    """A subject's place in a dose escalation (application/ports.py, `Escalation`)."""

    programme_id: str
    dose_level: int
    dlt_window_days: int
    dlt_rule: dict[str, Any] | None


def assessment_stream(subject_id: str) -> str:
    return f"assessments-{subject_id}"


@dataclass
class Assessments(Aggregate):
    """A subject's assessment history. The status before an assessment (needed to call
    relapse) comes from the assessments dated before it, whatever order they were entered in."""

    subject_id: str
    history: list[ev.ResponseAssessed] = field(default_factory=list)
    dlt_evaluation: ev.DltEvaluated | None = None
    # issue 11: the observations in the order recorded, the latest CRS grade of each day, the
    # latest CRS episodes (domain/toxicity.py)
    observations: list[ev.ObservationRecorded] = field(default_factory=list)
    graded: dict[tuple[ev.ToxicityKind, int], ev.ToxicityGraded] = field(default_factory=dict)
    episodes: dict[ev.ToxicityKind, ev.ToxicityEpisodesDetermined] = field(default_factory=dict)
    counts: dict[str, ev.CountEpisodesDetermined] = field(default_factory=dict)  # neutropenia, B-cell aplasia
    expansion: ev.CarTExpansionDetermined | None = None
    # the baselines before the first infusion, the latest record of each date (a correction)
    baselines: dict[date, ev.BaselineAssessed] = field(default_factory=dict)
    dlts: ev.DoseLimitingToxicitiesDetermined | None = None  # the latest, from the adverse events

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, ev.BaselineAssessed):
            self.baselines[event.assessed_on] = event
        elif isinstance(event, ev.DoseLimitingToxicitiesDetermined):
            self.dlts = event
        elif isinstance(event, ev.DltEvaluated):
            self.dlt_evaluation = event
        elif isinstance(event, ev.ObservationRecorded):
            # a correction takes the place of what it corrects (which stays in the store)
            self.observations = [o for o in self.observations if o.observation_id != event.corrects] + [event]
        elif isinstance(event, ev.ToxicityGraded):
            self.graded[(event.kind, event.study_day)] = event
        elif isinstance(event, ev.ToxicityEpisodesDetermined):
            self.episodes[event.kind] = event
        elif isinstance(event, ev.CountEpisodesDetermined):
            self.counts[event.kind] = event
        elif isinstance(event, ev.CarTExpansionDetermined):
            self.expansion = event
        elif isinstance(event, ev.ResponseAssessmentCorrected):
            # supersedes what was recorded for its date; the superseded events stay in the store
            self.history = [e for e in self.history if e.assessed_on != event.assessed_on] + [event]
        elif isinstance(event, ev.ResponseAssessed):
            self.history.append(event)

    def observation_at(self, slot: tuple[str, str], observed_at: datetime) -> ev.ObservationRecorded | None:
        """The observation standing in `slot` (`observation_slot`) at that instant."""
        return next((o for o in reversed(self.observations)
                     if o.observed_at == observed_at and observation_slot(o.observation) == slot), None)

    def current_on(self, assessed_on: date) -> ev.ResponseAssessed | None:
        return next((e for e in reversed(self.history) if e.assessed_on == assessed_on), None)

    def prior_to(self, assessed_on: date) -> PriorStatus:
        """The status before `assessed_on`, from the assessments and baselines dated before it
        (a subject enrolled in CR, as seed 001's are, is in remission from its baseline)."""
        prior = PriorStatus.NOT_IN_REMISSION
        dated: list[ev.ResponseAssessed | ev.BaselineAssessed] = [*self.history, *self.baselines.values()]
        for event in sorted(dated, key=lambda e: e.assessed_on):
            if event.assessed_on >= assessed_on:
                continue
            if isinstance(event, ev.BaselineAssessed):
                prior = (PriorStatus.NOT_IN_REMISSION if not event.in_remission
                         else PriorStatus.MRD_NEGATIVE_REMISSION if event.mrd_status is ev.MrdStatus.NEGATIVE
                         else PriorStatus.HAEMATOLOGICAL_REMISSION)
                continue
            if event.response_category is None:
                continue
            category = ResponseCategory(event.response_category.value)
            if category in (ResponseCategory.CR, ResponseCategory.CRI):
                if event.mrd_status is ev.MrdStatus.NEGATIVE:
                    prior = PriorStatus.MRD_NEGATIVE_REMISSION
                elif prior is PriorStatus.NOT_IN_REMISSION:
                    prior = PriorStatus.HAEMATOLOGICAL_REMISSION
            elif category is ResponseCategory.HAEMATOLOGICAL_RELAPSE:
                prior = PriorStatus.NOT_IN_REMISSION
            elif category is ResponseCategory.MOLECULAR_RELAPSE:
                prior = PriorStatus.HAEMATOLOGICAL_REMISSION
        return prior

    def correct(self, cmd: CorrectResponseAssessment, first_infusion_on: date | None,
                age: AgeAtEnrolment | None = None) -> list[EventPayload]:
        """A new record superseding the assessment of `cmd.assessed_on`, with its reason (EU GMP
        Annex 11 §9); derived by the same rules as the original."""
        check_after_birth("the corrected assessment", cmd.subject_id, cmd.assessed_on, age)
        if cmd.baseline:
            return self.correct_baseline(cmd, first_infusion_on)
        current = self.current_on(cmd.assessed_on)
        if current is None:
            raise NoAssessmentToCorrect(f"subject {cmd.subject_id} has no assessment dated {cmd.assessed_on} "
                                        f"to correct")
        [assessed] = self.assess(cmd, first_infusion_on)
        fields = assessed.model_dump()
        if fields == {k: v for k, v in current.model_dump().items() if k in fields}:
            raise CorrectionChangesNothing(f"the correction of {cmd.assessed_on} repeats what is recorded")
        return [ev.ResponseAssessmentCorrected(**fields, reason=cmd.reason)]

    def correct_baseline(self, cmd: CorrectResponseAssessment, first_infusion_on: date | None) -> list[EventPayload]:
        current = self.baselines.get(cmd.assessed_on)
        if current is None:
            raise NoAssessmentToCorrect(f"subject {cmd.subject_id} has no baseline dated {cmd.assessed_on} to correct")
        [baseline] = self.baseline(cmd, first_infusion_on, correcting=True)
        if baseline.model_dump(exclude={"correction_reason"}) == current.model_dump(exclude={"correction_reason"}):
            raise CorrectionChangesNothing(f"the correction of the baseline of {cmd.assessed_on} repeats what is "
                                           "recorded")
        return [baseline.model_copy(update={"correction_reason": cmd.reason})]

    def baseline(self, cmd: RecordResponseAssessment, first_infusion_on: date | None,
                 correcting: bool = False) -> list[ev.BaselineAssessed]:
        """The disease before the first infusion (issue 11 item 1): on or before its day, once
        per date (a second record of the date is a correction)."""
        if first_infusion_on is not None and cmd.assessed_on > first_infusion_on:
            raise BaselineAfterInfusion(f"a baseline dated {cmd.assessed_on} follows the first infusion on "
                                        f"{first_infusion_on}: record it as a response assessment")
        if not correcting and cmd.assessed_on in self.baselines:
            raise BaselineAlreadyRecorded(f"subject {cmd.subject_id}'s baseline of {cmd.assessed_on} is recorded: "
                                          "CorrectResponseAssessment (with baseline true and a reason) corrects it")
        facts = self.facts(cmd)
        readings = carcik_day28_readings(facts)
        remission = (cmd.marrow_blasts_percent < MARROW_BLAST_CR_LIMIT_PCT and not cmd.circulating_blasts
                     and not cmd.extramedullary_disease)  # NCCN ALL, CR: the blasts' criteria
        return [ev.BaselineAssessed(
            subject_id=cmd.subject_id, assessed_on=cmd.assessed_on, marrow_blasts_percent=cmd.marrow_blasts_percent,
            circulating_blasts=cmd.circulating_blasts, extramedullary_disease=cmd.extramedullary_disease,
            anc_per_ul=cmd.anc_per_ul, platelets_per_ul=cmd.platelets_per_ul, flow_mrd_percent=cmd.flow_mrd_percent,
            molecular_mrd_percent=cmd.molecular_mrd_percent, mrd_status=ev.MrdStatus(facts.mrd_status.value),
            in_remission=remission, morphologic_disease=not readings.morphology_response,
            flow_disease=None if readings.flow_response is None else not readings.flow_response,
            molecular_disease=None if readings.molecular_response is None else not readings.molecular_response)]

    @staticmethod
    def facts(cmd: RecordResponseAssessment) -> AllAssessment:
        return AllAssessment(
            marrow_blasts_pct=cmd.marrow_blasts_percent, circulating_blasts=cmd.circulating_blasts,
            extramedullary_disease=cmd.extramedullary_disease, anc_per_ul=cmd.anc_per_ul,
            platelets_per_ul=cmd.platelets_per_ul, flow_mrd_pct=cmd.flow_mrd_percent,
            molecular_mrd_pct=cmd.molecular_mrd_percent)

    def assess(self, cmd: RecordResponseAssessment, first_infusion_on: date | None,
               age: AgeAtEnrolment | None = None) -> list[EventPayload]:
        """`age`: the subject's age at enrolment (a date before the birth is refused first,
        a baseline's too)."""
        check_after_birth("the baseline" if cmd.baseline else "the response assessment", cmd.subject_id,
                          cmd.assessed_on, age)
        if cmd.baseline:
            return list(self.baseline(cmd, first_infusion_on))
        if first_infusion_on is None:
            raise SubjectNotInfused(f"subject {cmd.subject_id} has no recorded infusion")
        day = study_day(cmd.assessed_on, first_infusion_on)
        if day < 0:
            raise AssessmentBeforeInfusion(
                f"assessment on {cmd.assessed_on} precedes the infusion on {first_infusion_on}: a baseline is "
                "recorded with baseline true")
        facts = self.facts(cmd)
        response = all_response(facts, self.prior_to(cmd.assessed_on))
        readings = carcik_day28_readings(facts)
        return [ev.ResponseAssessed(
            subject_id=cmd.subject_id, assessed_on=cmd.assessed_on, study_day=day,
            marrow_blasts_percent=cmd.marrow_blasts_percent, circulating_blasts=cmd.circulating_blasts,
            extramedullary_disease=cmd.extramedullary_disease, anc_per_ul=cmd.anc_per_ul,
            platelets_per_ul=cmd.platelets_per_ul, flow_mrd_percent=cmd.flow_mrd_percent,
            molecular_mrd_percent=cmd.molecular_mrd_percent,
            response_category=ev.ResponseCategory(response.category.value),
            mrd_status=ev.MrdStatus(MrdStatus(response.mrd).value),
            morphologic_response=readings.morphology_response, flow_response=readings.flow_response,
            molecular_response=readings.molecular_response,
        )]


def evaluate_dlt(assessments: Assessments, cmd: RecordDltEvaluation, first_infusion_on: date | None,
                 escalation: "EscalationOf | None", age: AgeAtEnrolment | None = None) -> list[EventPayload]:
    """The subject's one DLT evaluation (issue 10 item 3), judged by the programme's DLT window
    as the escalation rule reads it (services/clinical/escalation/records.py: a DLT falls on
    days 0..window after the infusion; a subject without one is evaluable once the window has
    closed)."""
    check_after_birth("the DLT evaluation", cmd.subject_id, cmd.evaluated_on, age)
    if escalation is None:
        raise NotInEscalation(f"subject {cmd.subject_id} is not in a dose escalation")
    if first_infusion_on is None:
        raise SubjectNotInfused(f"subject {cmd.subject_id} has no infusion recorded: the DLT window starts with it")
    if assessments.dlt_evaluation is not None:
        raise DltAlreadyEvaluated(f"subject {cmd.subject_id}'s DLT evaluation was recorded on "
                                  f"{assessments.dlt_evaluation.evaluated_on.isoformat()}")
    record = PatientDltRecord(cmd.subject_id, escalation.dose_level, first_infusion_on,
                              cmd.dlt.onset_on if cmd.dlt is not None else None)
    try:
        [level] = [s for s in level_states_from_records([record], cmd.evaluated_on, escalation.dlt_window_days,
                                                        escalation.dose_level) if s.level == escalation.dose_level]
    except InvalidPatientRecordError as exc:
        raise OutsideDltWindow(str(exc)) from None
    derived = assessments.dlts.toxicities if assessments.dlts is not None else []
    if cmd.dlt is None and derived and cmd.disagreement_reason is None:
        found = "; ".join(f"{t.ctcae_term} grade {t.grade} ({t.attribution}) from {t.onset_on.isoformat()}, "
                          f"observation {t.observation_id}" for t in derived)
        raise DltEvaluationDisagrees(
            f"subject {cmd.subject_id}'s adverse events hold a DLT by the programme's definition ({found}): an "
            "evaluation of no DLT gives its disagreement_reason")
    if level.pending:
        closes = first_infusion_on + timedelta(days=escalation.dlt_window_days)
        raise DltWindowOpen(f"subject {cmd.subject_id}'s {escalation.dlt_window_days}-day DLT window after the "
                            f"infusion on {first_infusion_on.isoformat()} closes on {closes.isoformat()}: without a "
                            "DLT the subject is evaluable from then")
    return [ev.DltEvaluated(subject_id=cmd.subject_id, programme_id=escalation.programme_id,
                            dose_level=escalation.dose_level, dlt_window_days=escalation.dlt_window_days,
                            infused_on=first_infusion_on, evaluated_on=cmd.evaluated_on, dlt=cmd.dlt,
                            disagreement_reason=cmd.disagreement_reason)]


def derived_dlts(assessments: Assessments, observations: list[ev.ObservationRecorded], first_infusion_on: date | None,
                 escalation: "EscalationOf | None") -> list[EventPayload]:
    """The subject's DLTs by its programme's DLT definition (issue 11 item 2; services/clinical/
    escalation/dlt.py), from the adverse events in the window, recorded when they change."""
    if escalation is None or escalation.dlt_rule is None or first_infusion_on is None:
        return []
    definition = dlt_definition_of(escalation.dlt_rule)
    found = []
    for o in observations:
        ae = o.observation
        if not isinstance(ae, AdverseEvent):
            continue
        onset = clinical_date(o.observed_at)
        day = study_day(onset, first_infusion_on)
        if is_dose_limiting(AdverseEventFacts(ae.ctcae_term, ae.grade, ae.attribution.value, day), definition,
                            escalation.dlt_window_days):
            found.append(ev.DerivedDlt(observation_id=o.observation_id, onset_on=onset, study_day=day,
                                       ctcae_term=ae.ctcae_term, grade=ae.grade, attribution=ae.attribution.value))
    current = assessments.dlts
    if current is None and not found or current is not None and current.toxicities == found:
        return []
    return [ev.DoseLimitingToxicitiesDetermined(
        subject_id=assessments.subject_id, programme_id=escalation.programme_id, dose_level=escalation.dose_level,
        dlt_window_days=escalation.dlt_window_days, revision=(current.revision if current else 0) + 1,
        toxicities=found)]


def observation_slot(observation: Observation) -> tuple[str, str]:
    """What one observation at one instant is of: its kind, and for a treatment the agent (and
    its name), for an adverse event the CTCAE term, for a molecular MRD result the target, as
    two of those at one time are two observations, not one twice."""
    if isinstance(observation, TreatmentGiven):
        return observation.kind, f"{observation.agent.value}:{(observation.name or '').strip().lower()}"
    if isinstance(observation, AdverseEvent):
        return observation.kind, observation.ctcae_term.strip().lower()
    if isinstance(observation, MolecularMrd):
        return observation.kind, observation.target.value
    return observation.kind, ""


def observe(assessments: Assessments, cmd: RecordObservation, first_infusion_on: date | None,
            age: AgeAtEnrolment | None = None, escalation: "EscalationOf | None" = None) -> list[EventPayload]:
    """The observation, and the CRS and ICANS determinations it changes (domain/toxicity.py),
    the neutropenia and B-cell aplasia ones (domain/counts.py) and, in a dose escalation, its
    DLTs by the programme's definition. Before the first infusion is known it is recorded only
    (a baseline); one dated before the subject's birth is refused.

    One observation of a kind (`observation_slot`) per subject and instant (issue 12 item 4):
    another one then is refused as DUPLICATE_OBSERVATION, naming the first, whether it differs
    or repeats it (an identical resubmission without an idempotency key is refused too, not
    passed over: its sender learns it was recorded before), unless it is a correction
    (`correction_reason`): then it supersedes the one standing, whose id it carries
    (`corrects`), and the determinations are made again on the corrected record. A correction
    of nothing, or one that repeats what stands, is refused."""
    check_after_birth("the observation", cmd.subject_id, clinical_date(cmd.observed_at), age)
    slot = observation_slot(cmd.observation)
    standing = assessments.observation_at(slot, cmd.observed_at)
    what = f"{slot[0]}{f' ({slot[1]})' if slot[1] else ''} of subject {cmd.subject_id} at {cmd.observed_at.isoformat()}"
    if cmd.correction_reason is None and standing is not None:
        same = standing.observation == cmd.observation
        raise DuplicateObservation(
            f"observation {standing.observation_id} is recorded already for the {what}"
            + (": this repeats it" if same else "; a different one is recorded as its correction, with "
                                                 "correction_reason"))
    if cmd.correction_reason is not None:
        if standing is None:
            raise NoObservationToCorrect(f"no observation is recorded for the {what} to correct")
        if standing.observation == cmd.observation:
            raise CorrectionChangesNothing(f"the correction repeats observation {standing.observation_id}")
    recorded = ev.ObservationRecorded(observation_id=uuid.uuid4(), subject_id=cmd.subject_id,
                                      observed_at=cmd.observed_at, observation=cmd.observation,
                                      corrects=standing.observation_id if cmd.correction_reason else None,
                                      correction_reason=cmd.correction_reason)
    observations = [*(o for o in assessments.observations if o.observation_id != recorded.corrects), recorded]
    return [recorded, *determinations(cmd.subject_id, observations, first_infusion_on, assessments.graded,
                                      assessments.episodes, age),
            *count_determinations(cmd.subject_id, observations, first_infusion_on, assessments.counts),
            *expansion_determination(cmd.subject_id, observations, first_infusion_on, assessments.expansion),
            *derived_dlts(assessments, observations, first_infusion_on, escalation)]
