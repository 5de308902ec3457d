"""Inbound commands: verbs, which a service may accept or refuse.

Every command except `RegisterPatient`, `EraseIdentity` and `ScreenCandidate` travels on its
service's command topic.
`RegisterPatient` carries direct identifiers and therefore never touches Kafka: it is
accepted only by enrollment's HTTP API, which keeps the identifiers in its own schema;
`EraseIdentity`, which removes them, is accepted there too.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from contracts.base import CommandPayload
from contracts.events import DoseLimitingToxicity, QcResult, SignatureMeaning, SpecificationCriterion
from contracts.custody import CustodyStep, Disposition, SlotKind, StorageCondition
from contracts.ids import CentreId, CoiId, ProgrammeId, SubjectId, UnitId
from contracts.observations import Observation
from contracts.programmes import ProgrammeDefinition
from contracts.times import BirthDate, ClinicalDate, Instant, TimeZoneName
from contracts import topics

Percent = Annotated[float, Field(ge=0, le=100)]


class RegisterCentre(CommandPayload):
    command_type = "RegisterCentre"
    topic: ClassVar[str | None] = topics.ENROLLMENT_COMMANDS
    centre_id: CentreId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    # its named time zone (IANA, e.g. "Europe/Rome"): what the site's dates and times are shown
    # in (issue 11 item 5); None: the UTC offset recorded with each time stands for it
    time_zone: TimeZoneName | None = None


class RegisterPatient(CommandPayload):
    """Direct identifiers: HTTP to enrollment only, never on a topic."""

    command_type = "RegisterPatient"
    topic: ClassVar[str | None] = None
    centre_id: CentreId
    hospital_record_number: Annotated[str, Field(min_length=1, max_length=40)]
    family_name: Annotated[str, Field(min_length=1, max_length=120)]
    given_name: Annotated[str, Field(min_length=1, max_length=120)]
    date_of_birth: BirthDate  # a ClinicalDate whose refusal does not repeat it
    registered_on: ClinicalDate


class EraseIdentity(CommandPayload):
    """Delete a subject's direct identifiers (and the key they are readable with), keeping every
    event. HTTP to enrollment only, beside registration: `reason` is recorded, so it must not
    name the person."""

    command_type = "EraseIdentity"
    topic: ClassVar[str | None] = None
    subject_id: SubjectId
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class EnrollSubject(CommandPayload):
    """Enrol a screened subject. In a programme with a dose escalation the design assigns the
    dose level (issue 10 item 3); `dose_level`, if given, is the level the centre expects, and
    the enrolment is refused if the design does not allow it."""

    command_type = "EnrollSubject"
    topic: ClassVar[str | None] = topics.ENROLLMENT_COMMANDS
    subject_id: SubjectId
    programme_id: ProgrammeId
    centre_id: CentreId
    enrolled_on: ClinicalDate
    dose_level: Annotated[int, Field(ge=-3, le=20)] | None = None


class PublishProgramme(CommandPayload):
    """Publish a programme's definition (contracts/programmes.py) as its next version, in force
    from when enrollment applies it (the log says which version was in force when); refused
    when the clinical rules refuse it or nothing changed."""

    command_type = "PublishProgramme"
    topic: ClassVar[str | None] = topics.ENROLLMENT_COMMANDS
    definition: ProgrammeDefinition


class ScreenCandidate(CommandPayload):
    """Screen a registered subject for a programme (issue 10 item 2): the candidate's clinical
    facts (`facts`: services/clinical/eligibility.Candidate's fields, age aside: enrollment
    computes the age on `screened_on` from the date of birth it keeps, which never leaves it),
    judged against the programme's current eligibility criteria. HTTP only
    (`POST /screenings` on enrollment): the age needs the identity table."""

    command_type = "ScreenCandidate"
    topic: ClassVar[str | None] = None
    subject_id: SubjectId
    programme_id: ProgrammeId
    centre_id: CentreId
    screened_on: ClinicalDate
    facts: dict[str, Any]


class RecordApheresisCollection(CommandPayload):
    """Starting material collected under `coi_id` for the recipient `subject_id`, at its
    treating centre. `donor_id`: for a donor-derived product (seed 000's CAR-CIK), the donor
    it was collected from, a person registered in the network (`POST /patients`, so the
    donor's identity stays in enrollment) and not the recipient; None: autologous."""

    command_type = "RecordApheresisCollection"
    schema_version = 2  # v2: `coi_id` ISBT 128-shaped with its check character (issue 9)
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    coi_id: CoiId
    subject_id: SubjectId
    centre_id: CentreId
    collected_at: Instant
    donor_id: SubjectId | None = None


class RecordProductRelease(CommandPayload):
    """Reported by the GMP facility. Names both the COI and the subject it believes the
    product belongs to: a mismatch is refused, never corrected."""

    command_type = "RecordProductRelease"
    schema_version = 2  # v2: `coi_id` ISBT 128-shaped with its check character (issue 9)
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    coi_id: CoiId
    subject_id: SubjectId
    lot_number: Annotated[str, Field(min_length=1, max_length=40)]
    released_at: Instant
    released_by: Annotated[str, Field(min_length=1, max_length=80)]
    viable_cells_per_ml: Annotated[float, Field(gt=0)]
    volume_ml: Annotated[float, Field(gt=0)]
    facility_id: CentreId | None = None  # the releasing GMP facility (see ProductReleased)


Location = Annotated[str, Field(min_length=1, max_length=120)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class RegisterProductUnits(CommandPayload):
    """The GMP facility filled and labelled the product made from a COI's starting material:
    one unit per bag, each named by its division code (`A0`, `B0`, ...: split doses, or the
    bags of a second infusion from the same lot), so the units are the COI's by their very
    identifiers (docs/identifiers.md). `org_id` is the facility; it must hold the starting
    material, in manufacturing."""

    command_type = "RegisterProductUnits"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    coi_id: CoiId
    org_id: CentreId
    lot_number: Annotated[str, Field(min_length=1, max_length=40)]
    divisions: Annotated[list[Annotated[str, Field(pattern=r"^[A-Z][0-9a-z]$")]], Field(min_length=1, max_length=26)]
    location: Location
    registered_at: Instant
    storage: StorageCondition  # how the product is kept and shipped (its temperature range)


class RecordCustodyStep(CommandPayload):
    """A hand-off or handling of one unit (docs/custody.md), by `org_id`, which must hold the
    unit (or, for `received`, be where it was shipped to), at `location` and time `at`.
    `scanned_id` is what was read off the bag's label; it must be the unit named.
    `destination_org_id` says where a unit is `shipped` or `returned` to; `reason` why it is
    `discarded` or `returned`."""

    command_type = "RecordCustodyStep"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    unit_id: UnitId
    scanned_id: UnitId
    step: CustodyStep
    org_id: CentreId
    location: Location
    at: Instant
    destination_org_id: CentreId | None = None
    reason: Reason | None = None


class RecordQaDisposition(CommandPayload):
    """Quality assurance's decision on a quarantined unit (a temperature excursion): accept it,
    with the justification, or discard it. By the qualified person of the facility that made
    it (`org_id`)."""

    command_type = "RecordQaDisposition"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    unit_id: UnitId
    org_id: CentreId
    decision: Disposition
    justification: Reason
    decided_at: Instant


def _once(what: str, names: list[str]) -> None:
    """Each attribute named once in a specification's criteria or a unit's results."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{what} name {', '.join(twice)} more than once")


class SetProductSpecification(CommandPayload):
    """Set the product specification the facility `org_id` releases the programme's product
    against (a new version; earlier results keep the version they were judged by), by its
    qualified person. Limits are data, each criterion with its source."""

    command_type = "SetProductSpecification"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    programme_id: ProgrammeId
    org_id: CentreId
    criteria: Annotated[list[SpecificationCriterion], Field(min_length=1, max_length=50)]
    shelf_life_hours: Annotated[int, Field(ge=1, le=87_600)] | None = None
    thaw_to_infusion_minutes: Annotated[int, Field(ge=1, le=10_080)] | None = None
    set_at: Instant

    @model_validator(mode="after")
    def _attributes_once(self) -> "SetProductSpecification":
        _once("criteria", [c.attribute for c in self.criteria])
        return self


class RecordQcResults(CommandPayload):
    """A unit's quality-control results, by the facility that made it (`org_id`), after
    scanning the bag (`scanned_id`): judged against its programme's product specification in
    force, every criterion answered; the unit is then quality-control complete or out of
    specification."""

    command_type = "RecordQcResults"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    unit_id: UnitId
    scanned_id: UnitId
    org_id: CentreId
    location: Location
    tested_at: Instant
    results: Annotated[list[QcResult], Field(min_length=1, max_length=50)]

    @model_validator(mode="after")
    def _attributes_once(self) -> "RecordQcResults":
        _once("results", [r.attribute for r in self.results])
        return self


class RequestExceptionalRelease(CommandPayload):
    """The treating physician of the subject's centre (`org_id`) asks for out-of-specification
    units to be released for this patient, and why (EU GMP Part IV 11.5)."""

    command_type = "RequestExceptionalRelease"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    coi_id: CoiId
    unit_ids: Annotated[list[UnitId], Field(min_length=1, max_length=26)]
    org_id: CentreId
    justification: Annotated[str, Field(min_length=1, max_length=2000)]
    requested_at: Instant


class RecordOosRiskAssessment(CommandPayload):
    """The manufacturer's evaluation of the requested out-of-specification units: the
    deviation and the risks, for the treating physician, by the qualified person of the
    facility that made them (`org_id`); the physician accepts it by signature."""

    command_type = "RecordOosRiskAssessment"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    coi_id: CoiId
    org_id: CentreId
    deviation: Annotated[str, Field(min_length=1, max_length=2000)]
    risk_assessment: Annotated[str, Field(min_length=1, max_length=4000)]
    assessed_at: Instant


class RecordSponsorNotified(CommandPayload):
    """The facility's qualified person (`org_id`) notified the sponsor of an out-of-specification
    release (its `reference`), closing the task."""

    command_type = "RecordSponsorNotified"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    coi_id: CoiId
    org_id: CentreId
    reference: Annotated[str, Field(min_length=1, max_length=200)]
    notified_at: Instant


class SetSlotCapacity(CommandPayload):
    """How many `kind` slots `org_id` has on day `on` (capacity as data: 0 closes the day).
    For manufacturing, `turnaround_days`: from the manufacturing start to the product's
    arrival at the centre, as the facility plans it (what a booking's forecast uses)."""

    command_type = "SetSlotCapacity"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    org_id: CentreId
    kind: SlotKind
    on: ClinicalDate
    capacity: Annotated[int, Field(ge=0, le=1000)]
    turnaround_days: Annotated[int, Field(ge=1, le=365)] | None = None


class BookSlot(CommandPayload):
    """Book a `kind` slot at `slot_org_id` on day `on` for a subject, by the subject's centre."""

    command_type = "BookSlot"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    subject_id: SubjectId
    slot_org_id: CentreId
    kind: SlotKind
    on: ClinicalDate


class CancelSlotBooking(CommandPayload):
    """Cancel the subject's `kind` slot at `slot_org_id` on day `on`, with the reason (the slot
    is free again), by the subject's centre."""

    command_type = "CancelSlotBooking"
    topic: ClassVar[str | None] = topics.MANUFACTURING_COMMANDS
    subject_id: SubjectId
    slot_org_id: CentreId
    kind: SlotKind
    on: ClinicalDate
    reason: Reason


class RecordInfusion(CommandPayload):
    """Recorded at the bedside after scanning the bag's label and the patient's wristband;
    for a product labelled as units, only after a bedside check said go (docs/custody.md)."""

    command_type = "RecordInfusion"
    schema_version = 2  # v2: `coi_id` ISBT 128-shaped with its check character (issue 9)
    topic: ClassVar[str | None] = topics.INFUSION_COMMANDS
    subject_id: SubjectId
    coi_id: CoiId
    infused_at: Instant
    # A product labelled as units (issue 9): the bag infused, and the bedside check that
    # said go for it and this patient (`POST /bedside-checks`); required for such a product.
    unit_id: UnitId | None = None
    bedside_check_id: uuid.UUID | None = None
    # the volume infused from the bag (issue 10 item 4), checked against the bag's cell-dose
    # prescription; None: the prescribed volume. A dose outside the prescription's tolerance
    # (an infusion stopped early) is recorded only with `dose_deviation_reason`.
    volume_ml: Annotated[float, Field(gt=0, le=5000)] | None = None
    dose_deviation_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class PrescribeLymphodepletion(CommandPayload):
    """The treating physician prescribes the subject's programme's lymphodepleting regimen
    before the infusion planned on `planned_infusion_on` (day 0); infusion computes the
    body-surface area and each day's dose (docs/dosing.md). Supersedes an earlier one."""

    command_type = "PrescribeLymphodepletion"
    topic: ClassVar[str | None] = topics.INFUSION_COMMANDS
    subject_id: SubjectId
    height_cm: Annotated[float, Field(gt=0, le=300)]
    weight_kg: Annotated[float, Field(gt=0, le=500)]
    bsa_formula: Literal["mosteller", "dubois"] = "mosteller"
    planned_infusion_on: ClinicalDate
    prescribed_at: Instant


class RecordLymphodepletionDose(CommandPayload):
    """A lymphodepleting agent was given: which, how much, when. It must be an administration
    the current prescription schedules on that day; a dose other than the prescribed one is
    recorded only with `deviation_reason`."""

    command_type = "RecordLymphodepletionDose"
    topic: ClassVar[str | None] = topics.INFUSION_COMMANDS
    subject_id: SubjectId
    agent: Annotated[str, Field(min_length=1, max_length=60)]
    dose_mg: Annotated[float, Field(gt=0, le=20000)]
    administered_at: Instant
    deviation_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class PrescribeCellDose(CommandPayload):
    """The treating physician prescribes the cell dose to give from bag `unit_id`: the
    subject's dose level (None: the programme's only level), and the dose where the programme
    does not state it (`cells_per_kg` with `weight_kg`, or `flat_cells`), and the tolerance
    where the programme does not state it. Infusion computes the volume from the bag's
    released concentration (docs/dosing.md)."""

    command_type = "PrescribeCellDose"
    topic: ClassVar[str | None] = topics.INFUSION_COMMANDS
    subject_id: SubjectId
    unit_id: UnitId
    weight_kg: Annotated[float, Field(gt=0, le=500)] | None = None
    dose_level: Annotated[int, Field(ge=-3, le=20)] | None = None
    cells_per_kg: Annotated[float, Field(gt=0)] | None = None
    flat_cells: Annotated[float, Field(gt=0)] | None = None
    tolerance_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None
    prescribed_at: Instant

    @model_validator(mode="after")
    def _one_dose(self) -> "PrescribeCellDose":
        if self.cells_per_kg is not None and self.flat_cells is not None:
            raise ValueError("a dose is cells_per_kg or flat_cells, not both")
        return self


class RecordResponseAssessment(CommandPayload):
    command_type = "RecordResponseAssessment"
    topic: ClassVar[str | None] = topics.ASSESSMENT_COMMANDS
    subject_id: SubjectId
    assessed_on: ClinicalDate
    marrow_blasts_percent: Percent
    circulating_blasts: bool
    extramedullary_disease: bool
    anc_per_ul: Annotated[float, Field(ge=0, le=1_000_000)]
    platelets_per_ul: Annotated[float, Field(ge=0, le=5_000_000)]
    flow_mrd_percent: Percent | None = None
    molecular_mrd_percent: Percent | None = None
    # the disease before the first infusion (issue 11 item 1), dated on or before its day:
    # recorded as `assessment.BaselineAssessed`, the state a response is a change from
    baseline: bool = False


class CorrectResponseAssessment(RecordResponseAssessment):
    """Correct the subject's response assessment dated `assessed_on`: the readings as they
    should have been recorded, and why (EU GMP Annex 11 §9). The earlier record stays; the
    correction supersedes it (`assessment.ResponseAssessmentCorrected`)."""

    command_type = "CorrectResponseAssessment"
    topic: ClassVar[str | None] = topics.ASSESSMENT_COMMANDS
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class RecordDltEvaluation(CommandPayload):
    """The investigator's dose-limiting toxicity evaluation of a subject in a dose escalation
    (issue 10 item 3): a DLT (`dlt`: its onset within the programme's DLT window after the
    first infusion, its CTCAE v5 term and grade), or none (`dlt` null) once the window closed."""

    command_type = "RecordDltEvaluation"
    topic: ClassVar[str | None] = topics.ASSESSMENT_COMMANDS
    subject_id: SubjectId
    evaluated_on: ClinicalDate
    dlt: DoseLimitingToxicity | None = None
    # needed to find no DLT where the programme's DLT definition found one in the recorded
    # adverse events (issue 11 item 2): the investigator's reason
    disagreement_reason: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class RecordObservation(CommandPayload):
    """A clinical observation of the subject at its clinical time (issue 11 item 1): vital
    signs, a treatment given (contracts/observations.py); before the infusion, a baseline."""

    command_type = "RecordObservation"
    topic: ClassVar[str | None] = topics.ASSESSMENT_COMMANDS
    subject_id: SubjectId
    observed_at: Instant
    observation: Observation
    # A second, different observation of the same kind for the subject at the same time is
    # refused (DUPLICATE_OBSERVATION) unless it corrects the first, with its reason (EU GMP
    # Annex 11 §9; issue 12 item 4): then it supersedes it, and both stay in the store.
    correction_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class SignRecord(CommandPayload):
    """Sign an event of the receiving service's store (21 CFR 11.50, 11.70). HTTP only
    (`POST /signatures`): signing needs the signer's password (11.200(a)), which never
    travels on a topic; the password is part of the request, not of this command, so a
    refusal recorded with the command never holds it.

    `record_hash` is the content hash the signer was shown with the record
    (`GET /records/{event_id}`); a signature is made only if it is the hash of the record the
    service holds."""

    command_type = "SignRecord"
    topic: ClassVar[str | None] = None
    record_event_id: uuid.UUID
    record_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    meaning: SignatureMeaning


COMMAND_PAYLOADS: tuple[type[CommandPayload], ...] = (
    RegisterCentre,
    RegisterPatient,
    EraseIdentity,
    EnrollSubject,
    PublishProgramme,
    ScreenCandidate,
    RecordApheresisCollection,
    RecordProductRelease,
    RegisterProductUnits,
    RecordCustodyStep,
    RecordQaDisposition,
    SetProductSpecification,
    RecordQcResults,
    RequestExceptionalRelease,
    RecordOosRiskAssessment,
    RecordSponsorNotified,
    SetSlotCapacity,
    BookSlot,
    CancelSlotBooking,
    RecordInfusion,
    PrescribeLymphodepletion,
    RecordLymphodepletionDose,
    PrescribeCellDose,
    RecordResponseAssessment,
    CorrectResponseAssessment,
    RecordDltEvaluation,
    RecordObservation,
    SignRecord,
)
