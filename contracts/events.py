"""Event payloads: facts, past tense, one class per stable `event_type`.

No payload carries a direct patient identifier (name, date of birth, hospital record
number): subjects are named only by their pseudonymous `subject_id`.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from contracts.base import Contract, EventPayload
from contracts.custody import (
    CriterionKind,
    CustodyState,
    CustodyStep,
    Disposition,
    SlotKind,
    StorageCondition,
    UnitKind,
)
from contracts.ids import CentreId, CoiId, ProgrammeId, RecordedCoiId, SubjectId, UnitId
from contracts.observations import Observation
from contracts.programmes import DltRule, Dosing, ProgrammeDefinition, ResponseDefinition
from contracts.times import ClinicalDate, Instant, TimeZoneName

Percent = Annotated[float, Field(ge=0, le=100)]


# --- enrollment -----------------------------------------------------------------------
class CentreRegistered(EventPayload):
    """A treating centre joined the network."""

    event_type = "enrollment.CentreRegistered"
    centre_id: CentreId
    name: Annotated[str, Field(min_length=1, max_length=200)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    time_zone: TimeZoneName | None = None  # IANA; None: registered without one


class PatientRegistered(EventPayload):
    """A patient was registered at a centre and given a pseudonymous subject id.
    The identifying data stay in enrollment's own schema."""

    event_type = "enrollment.PatientRegistered"
    subject_id: SubjectId
    centre_id: CentreId
    # the centre's named time zone, carried so the subject's view shows the site's dates and
    # times in it (issue 11 item 5); None: the centre has none
    time_zone: TimeZoneName | None = None


class SubjectEnrolled(EventPayload):
    """A registered subject was enrolled into a programme (trial or treatment programme), under
    version `programme_version` of its published definition, which the subject keeps (None:
    enrolled before definitions were published, issue 10)."""

    event_type = "enrollment.SubjectEnrolled"
    subject_id: SubjectId
    programme_id: ProgrammeId
    centre_id: CentreId
    enrolled_on: ClinicalDate
    programme_version: Annotated[int, Field(ge=1)] | None = None
    # the second-infusion policy of that version (contracts/programmes.py, `second_infusion`),
    # carried so the services that gate a second infusion keep the subject's own; None: the
    # programme has none
    second_infusion: dict[str, Any] | None = None
    # what infusion obeys of that version: the lymphodepletion regimen and its window, the
    # dose levels and the cell dose's tolerance (issue 10 item 4); None: enrolled before
    # definitions were published
    dosing: Dosing | None = None
    # a dose escalation (issue 10 item 3): the level its design assigned the subject, and the
    # window after the first infusion in which a toxicity is dose-limiting
    dose_level: Annotated[int, Field(ge=-3, le=20)] | None = None
    dlt_window_days: Annotated[int, Field(ge=1, le=365)] | None = None
    # and the programme's DLT definition, from which assessment derives the DLTs from the adverse
    # events (issue 11 item 2); None: the investigator's evaluation alone
    dlt_rule: DltRule | None = None
    # how that version defines response (issue 11 item 3): what the projection reports as
    # the subject's response; None: not stated (NCCN ALL CR or CRi at day 28)
    response: ResponseDefinition | None = None
    # the age in completed years on `enrolled_on`, from the date of birth enrollment keeps
    # (which never leaves it), for the rules that depend on age (ICANS: ICE from 12 years,
    # CAPD below); 90 stands for 90 or older (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(C));
    # None: not known (erased)
    age_years: Annotated[int, Field(ge=0, le=90)] | None = None


class LevelCount(Contract):
    """What a dose-escalation design knew of one dose level: subjects evaluable (their DLT
    window closed, or they had a DLT), DLTs among them, and subjects still pending."""

    level: Annotated[int, Field(ge=1, le=20)]
    evaluable: Annotated[int, Field(ge=0)]
    dlts: Annotated[int, Field(ge=0)]
    pending: Annotated[int, Field(ge=0)]


class EscalationDecision(Contract):
    """A design's decision (services/clinical/escalation): the action, the level of the next
    subjects and how many, the MTD when established or selected, and why."""

    action: Annotated[str, Field(min_length=1, max_length=40)]
    next_dose_level: Annotated[int, Field(ge=1, le=20)] | None = None
    patients_to_enrol: Annotated[int, Field(ge=0)] = 0
    mtd: Annotated[int, Field(ge=1, le=20)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


class DoseLevelAssigned(EventPayload):
    """The programme's dose-escalation design assigned the subject enrolled on `enrolled_on` to
    `dose_level`, in cohort `cohort` of `cohort_size` subjects, by its decision on what was
    known (`levels`; `fill_cohort`: a place in a cohort the design opened): stream
    `escalation-<programme>`, the design's one consistency boundary."""

    event_type = "enrollment.DoseLevelAssigned"
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)]
    subject_id: SubjectId
    dose_level: Annotated[int, Field(ge=1, le=20)]
    cohort: Annotated[int, Field(ge=1)]
    cohort_size: Annotated[int, Field(ge=1, le=12)]
    enrolled_on: ClinicalDate
    levels: Annotated[list[LevelCount], Field(min_length=1, max_length=20)]
    decision: EscalationDecision


class EscalationDecided(EventPayload):
    """A subject's DLT evaluation (`subject_id`, `dlt`) changed what the design knows; its
    decision on the levels as they now stand (escalate, stay, expand, de-escalate, wait, stop)."""

    event_type = "enrollment.EscalationDecided"
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)]
    subject_id: SubjectId
    dlt: bool
    evaluated_on: ClinicalDate
    levels: Annotated[list[LevelCount], Field(min_length=1, max_length=20)]
    decision: EscalationDecision


class MtdDeclared(EventPayload):
    """The dose escalation stopped: the maximum tolerated dose level (None: not established)
    and the recommended dose level for further investigation (None: no level), with why."""

    event_type = "enrollment.MtdDeclared"
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)]
    mtd_level: Annotated[int, Field(ge=1, le=20)] | None = None
    recommended_level: Annotated[int, Field(ge=1, le=20)] | None = None
    action: Annotated[str, Field(min_length=1, max_length=40)]
    reason: Annotated[str, Field(min_length=1, max_length=2000)]
    declared_on: ClinicalDate


class EligibilityFailure(Contract):
    """One failed eligibility criterion and why (services/clinical/eligibility.py)."""

    criterion: Annotated[str, Field(min_length=1, max_length=80)]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CandidateScreened(EventPayload):
    """A subject was screened for a programme against version `programme_version` of its
    eligibility criteria: `eligible`, or every failed criterion with its reason. `facts` are
    the clinical facts judged; `age_years` was computed by enrollment from the date of birth
    it keeps (None: not known, e.g. erased), which never leaves it."""

    event_type = "enrollment.CandidateScreened"
    subject_id: SubjectId
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)]
    centre_id: CentreId
    screened_on: ClinicalDate
    age_years: Annotated[int, Field(ge=0, le=130)] | None = None
    facts: dict[str, Any]
    eligible: bool
    failures: list[EligibilityFailure] = Field(default_factory=list)


class ProgrammePublished(EventPayload):
    """Version `version` of a programme's definition (contracts/programmes.py) is in force from
    `published_at`: the protocol the services obey for the subjects enrolled under it."""

    event_type = "enrollment.ProgrammePublished"
    programme_id: ProgrammeId
    version: Annotated[int, Field(ge=1)]
    definition: ProgrammeDefinition
    published_at: Instant


class IdentityErased(EventPayload):
    """A subject's direct identifiers and the key they were readable with were deleted from
    enrollment's identity table (e.g. at the person's request, GDPR art. 17). Carries no
    identifier and changes no earlier event: the clinical history stays under the pseudonym,
    which no longer leads to a person; the same person registered again gets a new one.
    `reason` is free text for the audit trail and must not name the person."""

    event_type = "enrollment.IdentityErased"
    subject_id: SubjectId
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    erased_at: Instant


# --- manufacturing: chain of identity and custody ------------------------------------
class CoiIssued(EventPayload):
    """CellTrail issued a chain-of-identity id (ISBT 128-shaped, docs/identifiers.md) under
    the facility identification number of the subject's treating centre, for that subject's
    starting material: the label to print on the apheresis bag. Only that subject's
    collection may use it."""

    event_type = "manufacturing.CoiIssued"
    coi_id: CoiId
    subject_id: SubjectId
    centre_id: CentreId
    issued_at: Instant


class ApheresisCollected(EventPayload):
    """Starting material was collected; the COI id on the bag now belongs to this subject (the
    recipient) and, for a donor-derived product, to the donor it was collected from
    (`donor_id`, pseudonymous), for life: one COI binds donor, material, units and recipient."""

    event_type = "manufacturing.ApheresisCollected"
    schema_version = 2  # v2: `coi_id` may be ISBT 128-shaped (check character `*` included)
    coi_id: RecordedCoiId
    subject_id: SubjectId
    centre_id: CentreId
    collected_at: Instant
    donor_id: SubjectId | None = None


class ProductReleased(EventPayload):
    """The GMP facility released the product manufactured from this COI's starting material."""

    event_type = "manufacturing.ProductReleased"
    schema_version = 2  # v2: `coi_id` may be ISBT 128-shaped (check character `*` included)
    coi_id: RecordedCoiId
    subject_id: SubjectId
    lot_number: Annotated[str, Field(min_length=1, max_length=40)]
    released_at: Instant
    released_by: Annotated[str, Field(min_length=1, max_length=80)]
    viable_cells_per_ml: Annotated[float, Field(gt=0)]
    volume_ml: Annotated[float, Field(gt=0)]
    # The GMP facility that manufactured and released it (an organisation id of `access`):
    # whose qualified person may approve the release by signature (EU GMP Annex 16 §1).
    # None on releases recorded before it was carried; those cannot be approved by signature.
    facility_id: CentreId | None = None
    # A product labelled as units (issue 9 item 4): this is the release record the qualified
    # person signs (`POST /signatures`, meaning approval); it takes effect only with that
    # signature (`manufacturing.ReleaseCertified`). False: a release recorded before units,
    # in effect at once, as such releases always were.
    awaiting_signature: bool = False
    # units released out of specification under the exceptional-release path (EU GMP Part IV
    # 11.5): the treating physician accepted the manufacturer's risk assessment by signature
    out_of_specification_units: list[UnitId] = Field(default_factory=list)


class ProductUnitsRegistered(EventPayload):
    """The facility `facility_id` filled and labelled the product of this COI as units (bags),
    each its own identifier (the COI and a division code); they await quality control. The
    facility holds them; `role` is the role its principal (the envelope's actor) acted in."""

    event_type = "manufacturing.ProductUnitsRegistered"
    coi_id: CoiId
    subject_id: SubjectId
    facility_id: CentreId
    lot_number: Annotated[str, Field(min_length=1, max_length=40)]
    unit_ids: Annotated[list[UnitId], Field(min_length=1)]
    location: Annotated[str, Field(min_length=1, max_length=120)]
    registered_at: Instant
    role: Annotated[str, Field(min_length=1, max_length=40)]
    storage: StorageCondition


class CustodyStepRecorded(EventPayload):
    """One step in a unit's custody (docs/custody.md): which unit, the step and the states it
    moved the unit between, who took it (the envelope's actor, in `role`, for the
    organisation `org_id`), where, when, and the identifier read off the bag (`scanned_id`,
    which was the unit's). `destination_org_id`: where it was shipped or returned to;
    `reason`: why it was discarded or returned."""

    event_type = "manufacturing.CustodyStepRecorded"
    unit_id: UnitId
    coi_id: CoiId
    subject_id: SubjectId
    unit_kind: UnitKind
    step: CustodyStep
    from_state: CustodyState
    to_state: CustodyState
    org_id: CentreId
    role: Annotated[str, Field(min_length=1, max_length=40)]
    location: Annotated[str, Field(min_length=1, max_length=120)]
    at: Instant
    scanned_id: UnitId
    destination_org_id: CentreId | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class TemperatureReading(Contract):
    at: Instant
    celsius: Annotated[float, Field(ge=-273.15, le=200)]


class TemperatureReadingsRecorded(EventPayload):
    """A temperature logger's readings for units of this COI in a shipment or a storage
    location (`location`), loaded by `org_id` (the envelope's actor loaded them), in time order."""

    event_type = "manufacturing.TemperatureReadingsRecorded"
    coi_id: CoiId
    subject_id: SubjectId
    unit_ids: Annotated[list[UnitId], Field(min_length=1)]
    logger_id: Annotated[str, Field(min_length=1, max_length=80)]
    org_id: CentreId
    location: Annotated[str, Field(min_length=1, max_length=120)]
    readings: Annotated[list[TemperatureReading], Field(min_length=1, max_length=100_000)]


class ExcursionDetected(EventPayload):
    """The readings put a unit outside its storage condition's range: from `started_at` (the
    first reading out of range) to `ended_at` (the first back in range, or the last reading
    if it never came back: `ongoing`), `minutes` long, at worst `peak_celsius`, `deviation`
    degrees beyond the limit. The unit is quarantined until quality assurance decides."""

    event_type = "manufacturing.ExcursionDetected"
    unit_id: UnitId
    coi_id: CoiId
    subject_id: SubjectId
    storage: StorageCondition
    low_celsius: float | None
    high_celsius: float | None
    started_at: Instant
    ended_at: Instant
    ongoing: bool
    minutes: Annotated[float, Field(ge=0)]
    peak_celsius: float
    deviation: Annotated[float, Field(gt=0)]
    logger_id: Annotated[str, Field(min_length=1, max_length=80)]


class QaDispositionRecorded(EventPayload):
    """Quality assurance's decision on a quarantined unit: accepted with the justification (it
    leaves quarantine) or discarded. `role` is the role its principal (the actor) decided in."""

    event_type = "manufacturing.QaDispositionRecorded"
    unit_id: UnitId
    coi_id: CoiId
    subject_id: SubjectId
    decision: Disposition
    justification: Annotated[str, Field(min_length=1, max_length=500)]
    org_id: CentreId
    role: Annotated[str, Field(min_length=1, max_length=40)]
    decided_at: Instant


class UnitInfusionRecorded(EventPayload):
    """Manufacturing learnt from infusion's `infusion.ProductInfused` that the unit was infused
    into its subject: its custody ends (`infused`), and no later step is taken on it.
    `infusion_event_id` is infusion's record."""

    event_type = "manufacturing.UnitInfusionRecorded"
    unit_id: UnitId
    coi_id: CoiId
    subject_id: SubjectId
    infused_at: Instant
    infusion_event_id: uuid.UUID


class SpecificationCriterion(Contract):
    """One criterion of a product specification: the attribute tested, how its result is
    judged, the limits, the unit and test method, and where the limit comes from."""

    attribute: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    kind: CriterionKind
    low: float | None = None
    high: float | None = None
    unit: Annotated[str, Field(max_length=20)] = ""
    method: Annotated[str, Field(max_length=120)] = ""
    source: Annotated[str, Field(min_length=1, max_length=300)]

    @model_validator(mode="after")
    def _limits(self) -> "SpecificationCriterion":
        need = {CriterionKind.AT_LEAST: (True, False), CriterionKind.AT_MOST: (False, True),
                CriterionKind.BETWEEN: (True, True), CriterionKind.NOT_DETECTED: (False, False)}[self.kind]
        for name, wanted, value in (("low", need[0], self.low), ("high", need[1], self.high)):
            if wanted and value is None:
                raise ValueError(f"criterion {self.attribute} ({self.kind.value}) needs `{name}`")
            if not wanted and value is not None:
                raise ValueError(f"criterion {self.attribute} ({self.kind.value}) takes no `{name}`")
        if self.kind is CriterionKind.BETWEEN and self.low > self.high:  # type: ignore[operator]
            raise ValueError(f"criterion {self.attribute}: low {self.low} is above high {self.high}")
        return self


class ProductSpecificationSet(EventPayload):
    """Version `version` of the product specification the facility `org_id` releases the
    programme's product against (EU GMP Part IV 11.5, Annex 16 §1.7: release against the
    approved specification), set by its qualified person (the envelope's actor, in `role`).
    Each change is a new version; every QC result names the version it was judged by.
    `shelf_life_hours`: from the end of manufacture (labelling); `thaw_to_infusion_minutes`:
    from thawing or preparation at the centre to infusion. None: not limited by the
    specification."""

    event_type = "manufacturing.ProductSpecificationSet"
    programme_id: ProgrammeId
    org_id: CentreId
    version: Annotated[int, Field(ge=1)]
    criteria: Annotated[list[SpecificationCriterion], Field(min_length=1, max_length=50)]
    shelf_life_hours: Annotated[int, Field(ge=1, le=87_600)] | None = None
    thaw_to_infusion_minutes: Annotated[int, Field(ge=1, le=10_080)] | None = None
    role: Annotated[str, Field(min_length=1, max_length=40)]
    set_at: Instant


class QcResult(Contract):
    """A quality-control result: a measured `value` (in the criterion's unit) or, for a
    qualitative test, whether anything was `detected`."""

    attribute: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
    value: float | None = None
    detected: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> "QcResult":
        if (self.value is None) == (self.detected is None):
            raise ValueError(f"result {self.attribute} gives either a `value` or `detected`, not both or neither")
        return self


class JudgedResult(QcResult):
    """A result as judged against its criterion."""

    criterion: Annotated[str, Field(min_length=1, max_length=200)]  # e.g. ">= 70 %"
    passed: bool


class QcResultsRecorded(EventPayload):
    """A unit's quality-control results, judged against version `specification_version` of
    its programme's product specification: within it (the unit is quality-control complete)
    or out of specification (`failed` names the attributes). Recorded by `org_id`, the
    facility that made it, in `role`, after scanning the bag (`scanned_id`). `expires_at`:
    the end of its shelf life; `use_within_minutes`: its thaw-to-infusion limit."""

    event_type = "manufacturing.QcResultsRecorded"
    unit_id: UnitId
    coi_id: CoiId
    subject_id: SubjectId
    programme_id: ProgrammeId
    specification_version: Annotated[int, Field(ge=1)]
    results: Annotated[list[JudgedResult], Field(min_length=1, max_length=50)]
    within_specification: bool
    failed: list[Annotated[str, Field(max_length=48)]] = Field(default_factory=list)
    org_id: CentreId
    role: Annotated[str, Field(min_length=1, max_length=40)]
    location: Annotated[str, Field(min_length=1, max_length=120)]
    scanned_id: UnitId
    tested_at: Instant
    expires_at: Instant | None = None
    use_within_minutes: Annotated[int, Field(ge=1)] | None = None


class CertifiedUnit(Contract):
    """A unit a certification released, with its limits of use."""

    unit_id: UnitId
    out_of_specification: bool = False
    expires_at: Instant | None = None
    use_within_minutes: Annotated[int, Field(ge=1)] | None = None


class ReleaseCertified(EventPayload):
    """The qualified person signed the release record (`release_event_id`, a
    `manufacturing.ProductReleased`) with the meaning approval (EU GMP Annex 16 §1; 21 CFR
    11.50, 11.70): the release takes effect and its units are released. `signer`,
    `printed_name`, `signed_at` and `record_hash` are the signature's (`common.RecordSigned`
    on the stream `signatures-<release_event_id>`)."""

    event_type = "manufacturing.ReleaseCertified"
    coi_id: CoiId
    subject_id: SubjectId
    facility_id: CentreId
    release_event_id: uuid.UUID
    units: Annotated[list[CertifiedUnit], Field(min_length=1)]
    signer: Annotated[str, Field(min_length=1, max_length=80)]
    printed_name: Annotated[str, Field(min_length=1, max_length=200)]
    signed_at: Instant
    record_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ExceptionalReleaseRequested(EventPayload):
    """The treating physician (the envelope's actor, in `role`, of the subject's centre
    `org_id`) asked for out-of-specification units to be released for this patient, and why:
    the first step of EU GMP Part IV 11.5 (administration is necessary to avoid an immediate
    significant hazard to the patient, taking into account the patient's clinical situation)."""

    event_type = "manufacturing.ExceptionalReleaseRequested"
    coi_id: CoiId
    subject_id: SubjectId
    unit_ids: Annotated[list[UnitId], Field(min_length=1)]
    org_id: CentreId
    role: Annotated[str, Field(min_length=1, max_length=40)]
    justification: Annotated[str, Field(min_length=1, max_length=2000)]
    requested_at: Instant


class OosRiskAssessed(EventPayload):
    """The manufacturer's evaluation of the out-of-specification units for the treating
    physician (EU GMP Part IV 11.5: the manufacturer provides the physician with its
    evaluation of the risks and the nature of the deviation), by the qualified person of the
    facility that made them. The physician accepts it by signing this record (meaning
    approval, `POST /signatures`), which records `ExceptionalReleaseAccepted`."""

    event_type = "manufacturing.OosRiskAssessed"
    assessment_id: uuid.UUID
    coi_id: CoiId
    subject_id: SubjectId
    unit_ids: Annotated[list[UnitId], Field(min_length=1)]
    facility_id: CentreId
    role: Annotated[str, Field(min_length=1, max_length=40)]
    deviation: Annotated[str, Field(min_length=1, max_length=2000)]
    risk_assessment: Annotated[str, Field(min_length=1, max_length=4000)]
    assessed_at: Instant


class ExceptionalReleaseAccepted(EventPayload):
    """The treating physician accepted the manufacturer's risk assessment (`assessment_id`) by
    electronic signature: the units may now be released out of specification, and the sponsor
    is to be notified (EU GMP Part IV 11.5)."""

    event_type = "manufacturing.ExceptionalReleaseAccepted"
    coi_id: CoiId
    subject_id: SubjectId
    unit_ids: Annotated[list[UnitId], Field(min_length=1)]
    assessment_id: uuid.UUID
    signer: Annotated[str, Field(min_length=1, max_length=80)]
    printed_name: Annotated[str, Field(min_length=1, max_length=200)]
    org_id: CentreId
    signed_at: Instant
    record_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SponsorNotificationRaised(EventPayload):
    """A task: the sponsor (and, through it, the competent authority) is to be told that units
    of this product are released out of specification (EU GMP Part IV 11.5). Open until
    `SponsorNotified` closes it."""

    event_type = "manufacturing.SponsorNotificationRaised"
    coi_id: CoiId
    subject_id: SubjectId
    programme_id: ProgrammeId | None = None
    unit_ids: Annotated[list[UnitId], Field(min_length=1)]
    failed: list[Annotated[str, Field(max_length=48)]] = Field(default_factory=list)
    facility_id: CentreId
    raised_at: Instant


class SponsorNotified(EventPayload):
    """The facility's qualified person recorded that the sponsor was notified (`reference`:
    the notification's own reference), closing the task."""

    event_type = "manufacturing.SponsorNotified"
    coi_id: CoiId
    subject_id: SubjectId
    org_id: CentreId
    role: Annotated[str, Field(min_length=1, max_length=40)]
    reference: Annotated[str, Field(min_length=1, max_length=200)]
    notified_at: Instant


class SlotCapacitySet(EventPayload):
    """`org_id` has `capacity` slots of `kind` on day `on` (and, for manufacturing, its planned
    `turnaround_days` from start to arrival at the centre); `role` is the setter's role."""

    event_type = "manufacturing.SlotCapacitySet"
    org_id: CentreId
    kind: SlotKind
    on: ClinicalDate
    capacity: Annotated[int, Field(ge=0)]
    turnaround_days: Annotated[int, Field(ge=1)] | None = None
    role: Annotated[str, Field(min_length=1, max_length=40)]


class SlotBooked(EventPayload):
    """A `kind` slot at `slot_org_id` on day `on` was booked for the subject: booking `number` of
    the day's `capacity`; `turnaround_days` as the facility planned it then (manufacturing)."""

    event_type = "manufacturing.SlotBooked"
    subject_id: SubjectId
    slot_org_id: CentreId
    kind: SlotKind
    on: ClinicalDate
    number: Annotated[int, Field(ge=1)]
    capacity: Annotated[int, Field(ge=1)]
    turnaround_days: Annotated[int, Field(ge=1)] | None = None


class SlotBookingCancelled(EventPayload):
    """The subject's `kind` slot at `slot_org_id` on day `on` was cancelled, and why; it is free."""

    event_type = "manufacturing.SlotBookingCancelled"
    subject_id: SubjectId
    slot_org_id: CentreId
    kind: SlotKind
    on: ClinicalDate
    reason: Annotated[str, Field(min_length=1, max_length=500)]


# --- infusion ------------------------------------------------------------------------
class ProductInfused(EventPayload):
    """The released product named by `coi_id` was infused into its own subject (day 0)."""

    event_type = "infusion.ProductInfused"
    schema_version = 2  # v2: `coi_id` may be ISBT 128-shaped (check character `*` included)
    subject_id: SubjectId
    coi_id: RecordedCoiId
    infused_at: Instant
    infusion_number: Annotated[int, Field(ge=1)]
    # the bag infused and the bedside check that allowed it (None: a product recorded
    # before units existed, infused by its COI alone)
    unit_id: UnitId | None = None
    bedside_check_id: uuid.UUID | None = None
    # released out of specification under the exceptional-release path (EU GMP Part IV
    # 11.5): the flag travels with the bag to its infusion and to the reports
    out_of_specification: bool = False
    # the cell-dose prescription it gave (issue 10 item 4), the volume infused and the cells
    # it held (volume x the released concentration); `dose_deviation_reason`: why a dose
    # outside the prescription's tolerance was given (an infusion stopped early)
    cell_dose_prescription_id: uuid.UUID | None = None
    volume_ml: Annotated[float, Field(gt=0)] | None = None
    cells_infused: Annotated[float, Field(gt=0)] | None = None
    dose_deviation_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


Agent = Annotated[str, Field(min_length=1, max_length=60)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class ScheduledDose(Contract):
    """One administration of a lymphodepleting regimen: the agent, its day (study day: day 0 is
    the planned infusion) and date, the dose per m2 and the dose in mg for the subject."""

    on: ClinicalDate
    study_day: Annotated[int, Field(lt=0, ge=-60)]
    agent: Agent
    mg_per_m2: Annotated[float, Field(gt=0)]
    dose_mg: Annotated[float, Field(gt=0)]


class LymphodepletionPrescribed(EventPayload):
    """The treating physician prescribed the programme's lymphodepleting regimen before the
    infusion planned on `planned_infusion_on` (day 0): the body-surface area from the height
    and weight by `bsa_formula`, each administration's dose and date
    (services/clinical/lymphodepletion.py), and the window after the last administration in
    which the infusion is given. A later prescription supersedes it (a postponed infusion)."""

    event_type = "infusion.LymphodepletionPrescribed"
    prescription_id: uuid.UUID
    subject_id: SubjectId
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)]
    regimen: Annotated[str, Field(min_length=1, max_length=200)]
    height_cm: Annotated[float, Field(gt=0)]
    weight_kg: Annotated[float, Field(gt=0)]
    bsa_formula: Annotated[str, Field(min_length=1, max_length=20)]
    bsa_m2: Annotated[float, Field(gt=0)]
    planned_infusion_on: ClinicalDate
    doses: Annotated[list[ScheduledDose], Field(min_length=1, max_length=60)]
    # (earliest, latest) days from the last administration to the infusion; None: none stated
    infusion_window_days: tuple[int, int] | None = None
    prescribed_at: Instant


class LymphodepletionAdministered(EventPayload):
    """One administration of the prescription `prescription_id` was given: `dose_mg` of the
    prescribed `prescribed_mg`; a dose other than the prescribed one says why."""

    event_type = "infusion.LymphodepletionAdministered"
    prescription_id: uuid.UUID
    subject_id: SubjectId
    agent: Agent
    study_day: Annotated[int, Field(lt=0, ge=-60)]
    on: ClinicalDate
    dose_mg: Annotated[float, Field(gt=0)]
    prescribed_mg: Annotated[float, Field(gt=0)]
    administered_at: Instant
    deviation_reason: Reason | None = None


class InfusionWindow(Contract):
    """The first and last dates on which an infusion may be given."""

    earliest: ClinicalDate
    latest: ClinicalDate


class LymphodepletionCompleted(EventPayload):
    """Every administration of the prescription was given, the last on `completed_on`: the
    infusion may be given within `window` (None: the programme states none)."""

    event_type = "infusion.LymphodepletionCompleted"
    prescription_id: uuid.UUID
    subject_id: SubjectId
    completed_on: ClinicalDate
    window: InfusionWindow | None = None


class CellDosePrescribed(EventPayload):
    """The treating physician prescribed the cell dose to give from bag `unit_id`: a dose per kg
    times `weight_kg`, or a flat dose, at the subject's dose level; the volume to infuse from
    the bag's released concentration, and the dose that volume holds, within the tolerance
    (services/clinical/cell_dose.py). A later prescription for the bag supersedes it."""

    event_type = "infusion.CellDosePrescribed"
    prescription_id: uuid.UUID
    subject_id: SubjectId
    unit_id: UnitId
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)]
    dose_level: int
    weight_kg: Annotated[float, Field(gt=0)] | None = None
    cells_per_kg: Annotated[float, Field(gt=0)] | None = None
    flat_cells: Annotated[float, Field(gt=0)] | None = None
    target_cells: Annotated[float, Field(gt=0)]
    viable_cells_per_ml: Annotated[float, Field(gt=0)]
    bag_volume_ml: Annotated[float, Field(gt=0)]
    volume_ml: Annotated[float, Field(gt=0)]
    planned_cells: Annotated[float, Field(gt=0)]
    deviation_fraction: float
    tolerance_fraction: Annotated[float, Field(ge=0, lt=1)]
    prescribed_at: Instant


class SecondInfusionDecided(EventPayload):
    """At the day-28 assessment, the programme's second-infusion policy decided whether a
    second infusion is indicated, with every reason (services/clinical/second_infusion.py: the
    residual disease by each reading, the toxicity so far). A later decision (a corrected
    assessment) supersedes it. A second infusion the latest decision did not indicate is
    refused."""

    event_type = "infusion.SecondInfusionDecided"
    subject_id: SubjectId
    programme_id: ProgrammeId
    programme_version: Annotated[int, Field(ge=1)] | None = None
    assessed_on: ClinicalDate
    indicated: bool
    reasons: Annotated[list[Annotated[str, Field(min_length=1, max_length=500)]], Field(min_length=1)]


class NoGoReason(Contract):
    """Why a bedside check said no-go: a stable code and a sentence for the bedside."""

    code: Annotated[str, Field(pattern=r"^[A-Z_]+$")]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class BedsideCheckRecorded(EventPayload):
    """Two distinct qualified people scanned a bag's label (`unit_id`) and a patient's
    wristband (`subject_id`) at the bedside, and the infusion service answered at once from
    its own state: `go`, or no-go with every reason (docs/custody.md, "Bedside"). `verified_by`
    are the two principals (the first is the envelope's actor), in the roles they hold at
    the patient's centre. Only a go, the unit's latest check, allows its infusion."""

    event_type = "infusion.BedsideCheckRecorded"
    check_id: uuid.UUID
    unit_id: UnitId
    coi_id: CoiId
    subject_id: SubjectId
    centre_id: CentreId
    verified_by: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=2, max_length=2)]
    go: bool
    reasons: list[NoGoReason] = Field(default_factory=list)
    checked_at: Instant
    # a go for a unit released out of specification (EU GMP Part IV 11.5): said at the bedside
    out_of_specification: bool = False


# --- assessment ----------------------------------------------------------------------
class ResponseCategory(StrEnum):
    """ALL response categories (NCCN ALL guidelines, response criteria)."""

    CR = "complete_remission"
    CRI = "complete_remission_incomplete_count_recovery"
    NO_RESPONSE = "no_response"
    HAEMATOLOGICAL_RELAPSE = "haematological_relapse"
    MOLECULAR_RELAPSE = "molecular_relapse"


class MrdStatus(StrEnum):
    NEGATIVE = "negative"  # < 0.01 % (10^-4)
    POSITIVE = "positive"
    NOT_ASSESSED = "not_assessed"


class ResponseAssessed(EventPayload):
    """A bone-marrow and blood response assessment with its NCCN response category, and
    the three readings the CAR-CIK protocol makes at day 28: morphology (blasts < 5 %),
    flow cytometry (< 5 %) and molecular (< 0.01 %); None where not measured.

    Version 2 added the blood counts, the response category and the three readings to
    version 1's blasts and single `mrd_percent`; `upcast_response_assessed_v1_to_v2`."""

    event_type = "assessment.ResponseAssessed"
    schema_version = 2
    subject_id: SubjectId
    assessed_on: ClinicalDate
    study_day: int
    marrow_blasts_percent: Percent
    circulating_blasts: bool | None = None
    extramedullary_disease: bool | None = None
    anc_per_ul: Annotated[float, Field(ge=0)] | None = None
    platelets_per_ul: Annotated[float, Field(ge=0)] | None = None
    flow_mrd_percent: Percent | None = None
    molecular_mrd_percent: Percent | None = None
    response_category: ResponseCategory | None = None  # None: not derivable from a v1 event
    mrd_status: MrdStatus
    morphologic_response: bool
    flow_response: bool | None = None
    molecular_response: bool | None = None


class DoseLimitingToxicity(Contract):
    """A toxicity the investigator judged dose-limiting by the protocol's definition: its onset,
    its CTCAE v5 term and grade."""

    onset_on: ClinicalDate
    ctcae_term: Annotated[str, Field(min_length=1, max_length=120)]
    grade: Annotated[int, Field(ge=1, le=5)]


class DltEvaluated(EventPayload):
    """The investigator's dose-limiting toxicity evaluation of a subject at `dose_level`,
    infused first on `infused_on`: a DLT (onset within the programme's window), or none
    (`dlt` null) once the window closed."""

    event_type = "assessment.DltEvaluated"
    subject_id: SubjectId
    programme_id: ProgrammeId
    dose_level: Annotated[int, Field(ge=1, le=20)]
    dlt_window_days: Annotated[int, Field(ge=1, le=365)]
    infused_on: ClinicalDate
    evaluated_on: ClinicalDate
    dlt: DoseLimitingToxicity | None = None
    # why the investigator finds no DLT where the programme's DLT definition found one in the
    # recorded adverse events (DoseLimitingToxicitiesDetermined); None: no disagreement
    disagreement_reason: Annotated[str, Field(min_length=1, max_length=1000)] | None = None


class DerivedDlt(Contract):
    """An adverse event the programme's DLT definition makes dose-limiting: the observation it
    was recorded by, its onset and study day, its CTCAE v5 term and grade, its attribution."""

    observation_id: uuid.UUID
    onset_on: ClinicalDate
    study_day: int
    ctcae_term: Annotated[str, Field(min_length=2, max_length=120)]
    grade: Annotated[int, Field(ge=1, le=5)]
    attribution: Literal["unrelated", "unlikely", "possible", "probable", "definite"]


class DoseLimitingToxicitiesDetermined(EventPayload):
    """The subject's dose-limiting toxicities as the programme's DLT definition reads its
    adverse events in the DLT window (issue 11 item 2; services/clinical/escalation/dlt.py,
    Le Tourneau et al., JNCI 2009), naming the observations; recorded when they change, the
    next `revision` superseding. The investigator's evaluation (`DltEvaluated`) stays the
    decision; one that finds no DLT where this finds one needs its reason."""

    event_type = "assessment.DoseLimitingToxicitiesDetermined"
    subject_id: SubjectId
    programme_id: ProgrammeId
    dose_level: Annotated[int, Field(ge=-3, le=20)]
    dlt_window_days: Annotated[int, Field(ge=1, le=365)]
    revision: Annotated[int, Field(ge=1)]
    toxicities: Annotated[list[DerivedDlt], Field(max_length=500)]


class ObservationRecorded(EventPayload):
    """A clinical observation of the subject at `observed_at` (issue 11 item 1); with
    `corrects`, a correction of an earlier one of the same kind and time."""

    event_type = "assessment.ObservationRecorded"
    observation_id: uuid.UUID
    subject_id: SubjectId
    observed_at: Instant
    observation: Observation
    # A correction (issue 12 item 4): the observation of the same kind and time it supersedes,
    # and why; both stay in the store, the correction stands.
    corrects: uuid.UUID | None = None
    correction_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class ToxicityKind(StrEnum):
    CRS = "crs"
    ICANS = "icans"


class ToxicityGraded(EventPayload):
    """The worst grade of a toxicity on one study day after the first infusion, by the ASTCT
    consensus (Lee et al. 2019), graded by the service from the day's observations
    (`observation_ids`, with the treatments given before them that the grading weighs). A
    later determination of the same day (a late observation) supersedes it."""

    event_type = "assessment.ToxicityGraded"
    subject_id: SubjectId
    kind: ToxicityKind
    study_day: Annotated[int, Field(ge=0, le=3650)]
    revision: Annotated[int, Field(ge=1)]  # 1, then each superseding determination of the day
    on: ClinicalDate
    grade: Annotated[int, Field(ge=0, le=5)]
    drivers: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(default_factory=list)
    observation_ids: Annotated[list[uuid.UUID], Field(min_length=1)]


class ToxicityEpisode(Contract):
    """An episode: from its onset (the first day graded >= 1) to its resolution (the first day
    graded 0 after it; None: not resolved), its maximum grade, and the treatments given."""

    onset_day: Annotated[int, Field(ge=0)]
    max_grade: Annotated[int, Field(ge=1, le=5)]
    resolution_day: Annotated[int, Field(ge=0)] | None = None
    duration_days: Annotated[int, Field(ge=0)] | None = None
    tocilizumab_given: bool = False
    steroids_given: bool = False


class ToxicityEpisodesDetermined(EventPayload):
    """Every episode of a toxicity as the daily grades now give them (services/clinical/
    episodes.py), from the days graded (`graded_days`); supersedes the subject's previous
    determination of that toxicity."""

    event_type = "assessment.ToxicityEpisodesDetermined"
    subject_id: SubjectId
    kind: ToxicityKind
    revision: Annotated[int, Field(ge=1)]  # 1, then each superseding determination
    episodes: list[ToxicityEpisode]
    graded_days: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class CountEpisode(Contract):
    """A run of a count below its threshold: from the first day below it to its recovery (None:
    not recovered in the data), with the lowest value and its day."""

    onset_day: int
    recovery_day: int | None = None
    duration_days: Annotated[int, Field(ge=0)] | None = None
    nadir_per_ul: Annotated[float, Field(ge=0)]
    nadir_day: int


class CountEpisodesDetermined(EventPayload):
    """Every episode of neutropenia (ANC below `threshold_per_ul`; recovery: the first of three
    values on different days at or above it, CIBMTR/ASTCT) or of B-cell aplasia (CD19+ B cells
    below it; recovery: the first value at or above it), from the subject's counts on the study
    days `counted_days` (services/clinical/cytopenia.py); supersedes its previous revision."""

    event_type = "assessment.CountEpisodesDetermined"
    subject_id: SubjectId
    kind: Literal["neutropenia", "b_cell_aplasia"]
    revision: Annotated[int, Field(ge=1)]
    threshold_per_ul: Annotated[float, Field(gt=0)]
    episodes: list[CountEpisode]
    counted_days: Annotated[list[int], Field(min_length=1)]


class CarTExpansionDetermined(EventPayload):
    """CAR-T cells in the blood after the infusion (services/clinical/cytopenia.py): the peak
    (Cmax) and its study day (Tmax), the last day they were detectable; None where none was,
    from the counts of the study days `counted_days`; supersedes its previous revision."""

    event_type = "assessment.CarTExpansionDetermined"
    subject_id: SubjectId
    revision: Annotated[int, Field(ge=1)]
    peak_per_ul: Annotated[float, Field(gt=0)] | None = None
    peak_day: Annotated[int, Field(ge=0)] | None = None
    last_detectable_day: Annotated[int, Field(ge=0)] | None = None
    counted_days: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class BaselineAssessed(EventPayload):
    """The disease before the first infusion (issue 11 item 1): what a response at day 28 is a
    change from (seed 000: "change from baseline" by morphology, flow cytometry and molecular
    evaluation). No response category: there is nothing yet to respond to; `in_remission`: the
    marrow and blood met NCCN ALL's CR criteria of blasts (< 5 %, none circulating, no
    extramedullary disease), so a later relapse is called one (seed 001 enrols patients in
    CR with MRD). `correction_reason`: this record corrects the baseline of its date (EU GMP
    Annex 11 §9), superseding it; None: an original record."""

    event_type = "assessment.BaselineAssessed"
    subject_id: SubjectId
    assessed_on: ClinicalDate
    marrow_blasts_percent: Percent
    circulating_blasts: bool
    extramedullary_disease: bool
    anc_per_ul: Annotated[float, Field(ge=0)]
    platelets_per_ul: Annotated[float, Field(ge=0)]
    flow_mrd_percent: Percent | None = None
    molecular_mrd_percent: Percent | None = None
    mrd_status: MrdStatus
    in_remission: bool
    # seed 000's three readings of disease (the negation of its response readings): marrow
    # blasts >= 5 % by morphology, >= 5 % by flow cytometry, molecular positivity >= 0.01 %
    morphologic_disease: bool
    flow_disease: bool | None = None
    molecular_disease: bool | None = None
    correction_reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class ResponseAssessmentCorrected(ResponseAssessed):
    """A correction of the subject's response assessment dated `assessed_on`: the whole
    assessment as it should read, and why it was corrected. It supersedes the assessment (or
    the correction) of that date that was recorded before it, which stays in the store
    unchanged: a correction is a new record with its reason, never an edit (EU GMP Annex 11
    §9; 21 CFR 11.10(e): changes shall not obscure previously recorded information)."""

    event_type = "assessment.ResponseAssessmentCorrected"
    schema_version = 1
    reason: Annotated[str, Field(min_length=1, max_length=500)]


# --- common ------------------------------------------------------------------------
class SignatureMeaning(StrEnum):
    """What a signature means (21 CFR 11.50(a)(3)): the meanings a signer may give."""

    AUTHORSHIP = "authorship"
    REVIEW = "review"
    APPROVAL = "approval"
    RESPONSIBILITY = "responsibility"
    VERIFICATION = "verification"


class RecordSigned(EventPayload):
    """An electronic signature (21 CFR 11.50, 11.70), appended to the store of the service that
    holds the signed record, after the signer re-authenticated with their password (11.200(a)).

    - `signer`: the principal id; `printed_name`, `signed_at` (UTC) and `meaning`: the three
      parts of the signature's manifestation (11.50(a)(1)-(3)), taken from the access schema
      and the service's clock, never from the request;
    - `role`, `org_id`: the role and organisation the signer signed in (the one whose grant
      allowed this meaning on this record);
    - `record_event_id`, `record_event_type`: the signed record, an event of this store;
    - `record_hash`: SHA-256 (64 lower-case hex digits) of the signed event's canonical
      encoding, the very bytes its hash-chain link covers (infra/runtime/chain.py). The
      service computed it from the record it holds and refused the signature when the signer
      had been shown another, so a signature names one record's exact content and cannot be
      copied to another record or survive a change to it (11.70)."""

    event_type = "common.RecordSigned"
    signer: Annotated[str, Field(min_length=1, max_length=80)]
    printed_name: Annotated[str, Field(min_length=1, max_length=200)]
    signed_at: Instant
    meaning: SignatureMeaning
    role: Annotated[str, Field(min_length=1, max_length=40)]
    org_id: CentreId
    record_event_id: uuid.UUID
    record_event_type: Annotated[str, Field(min_length=1, max_length=120)]
    record_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    subject_id: SubjectId | None = None


class CommandRejected(EventPayload):
    """A command was refused. Recorded as a fact so every refusal is auditable."""

    event_type = "common.CommandRejected"
    command_id: str
    command_type: str
    reason_code: Annotated[str, Field(pattern=r"^[A-Z_]+$")]
    reason: str
    subject_id: SubjectId | None = None


class ChainHeadRecorded(EventPayload):
    """The head of a store's hash chain (infra/runtime/chain.py, docs/design.md "Tamper-evident
    log"): the last event linked so far and its chained hash. Recorded in the store it is
    about and published on that service's topic, so consumers and auditors hold copies a
    database superuser cannot change; `celltrail verify` checks the store against the latest.

    - `store`: the service schema whose chain this is (e.g. `assessment`);
    - `position`: the position of the last linked event;
    - `hash`: its link hash, SHA-256 as 64 lower-case hex digits."""

    event_type = "common.ChainHeadRecorded"
    store: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
    position: Annotated[int, Field(ge=1)]
    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


# --- outcomes (published by the projection for downstream consumers) ----------------
class Day28ResponseDetermined(EventPayload):
    """The day-28 response of a subject, for registries and sponsors: the in-window
    assessment closest to day 28 after the first infusion. Should an assessment closer to
    day 28 be recorded later, a new event supersedes this one: keep the latest per subject."""

    event_type = "outcomes.Day28ResponseDetermined"
    subject_id: SubjectId
    programme_id: ProgrammeId
    study_day: int
    response_category: ResponseCategory | None
    mrd_status: MrdStatus
    morphologic_response: bool
    flow_response: bool | None
    molecular_response: bool | None
    responder: bool


class VeinToVeinTimeDetermined(EventPayload):
    """Days from apheresis collection to infusion of the product made from it."""

    event_type = "outcomes.VeinToVeinTimeDetermined"
    schema_version = 2  # v2: `coi_id` may be ISBT 128-shaped (check character `*` included)
    subject_id: SubjectId
    programme_id: ProgrammeId
    coi_id: RecordedCoiId
    days: Annotated[int, Field(ge=0)]


class ToxicityEpisodeClosed(EventPayload):
    """A CRS or ICANS episode resolved (ASTCT grading from the observations, issue 11): its onset,
    maximum grade, resolution and duration in study days, and the treatments given. Should a
    late observation change it, a new event for the same (subject, kind, onset) supersedes
    this one: keep the latest."""

    event_type = "outcomes.ToxicityEpisodeClosed"
    subject_id: SubjectId
    programme_id: ProgrammeId
    kind: ToxicityKind
    onset_day: Annotated[int, Field(ge=0)]
    max_grade: Annotated[int, Field(ge=1, le=5)]
    resolution_day: Annotated[int, Field(ge=0)]
    duration_days: Annotated[int, Field(ge=0)]
    tocilizumab_given: bool
    steroids_given: bool


class ResponseDetermined(EventPayload):
    """A response assessment as it stands (a correction supersedes the record of its date):
    the date, its study day, the category and MRD status. Keep the latest per (subject,
    assessed_on)."""

    event_type = "outcomes.ResponseDetermined"
    subject_id: SubjectId
    programme_id: ProgrammeId
    assessed_on: ClinicalDate
    study_day: int | None = None  # None: no infusion known
    response_category: ResponseCategory | None
    mrd_status: MrdStatus


class DeathRecorded(EventPayload):
    """The subject died (an observation of the centre), on `died_on`, `study_day` days after
    the first infusion (None: not infused)."""

    event_type = "outcomes.DeathRecorded"
    subject_id: SubjectId
    programme_id: ProgrammeId
    died_on: ClinicalDate
    study_day: int | None = None


class RelapseRecorded(EventPayload):
    """A relapse or progression the centre observed (assessment's `relapse` observation): on
    `relapsed_on`, `study_day` days after the first infusion (None: not infused), at `site`
    (haematological, extramedullary, molecular). Should it change (the first infusion known
    later), a new event supersedes this one: keep the latest per (subject, relapsed_on, site).
    A relapse read from a response assessment is its ResponseDetermined's category."""

    event_type = "outcomes.RelapseRecorded"
    subject_id: SubjectId
    programme_id: ProgrammeId
    relapsed_on: ClinicalDate
    study_day: int | None = None
    site: Literal["haematological", "extramedullary", "molecular"]


class MtdDetermined(MtdDeclared):
    """A programme's dose escalation stopped (enrollment's MtdDeclared, issue 10 item 3): the
    maximum tolerated dose level (None: not established) and the recommended dose level for
    further investigation (None: no level), the design's action that stopped it and why. About
    the programme, not a subject: keyed by its stream, `outcomes-programme-<programme>`. A
    programme's escalation stops once; keep the latest per programme."""

    event_type = "outcomes.MtdDetermined"


EVENT_PAYLOADS: tuple[type[EventPayload], ...] = (
    CentreRegistered,
    PatientRegistered,
    SubjectEnrolled,
    ProgrammePublished,
    CandidateScreened,
    IdentityErased,
    CoiIssued,
    ApheresisCollected,
    ProductReleased,
    ProductUnitsRegistered,
    CustodyStepRecorded,
    TemperatureReadingsRecorded,
    ExcursionDetected,
    QaDispositionRecorded,
    UnitInfusionRecorded,
    ProductSpecificationSet,
    QcResultsRecorded,
    ReleaseCertified,
    ExceptionalReleaseRequested,
    OosRiskAssessed,
    ExceptionalReleaseAccepted,
    SponsorNotificationRaised,
    SponsorNotified,
    SlotCapacitySet,
    SlotBooked,
    SlotBookingCancelled,
    ProductInfused,
    SecondInfusionDecided,
    BedsideCheckRecorded,
    LymphodepletionPrescribed,
    LymphodepletionAdministered,
    LymphodepletionCompleted,
    CellDosePrescribed,
    ResponseAssessed,
    ResponseAssessmentCorrected,
    BaselineAssessed,
    DltEvaluated,
    DoseLimitingToxicitiesDetermined,
    ObservationRecorded,
    ToxicityGraded,
    ToxicityEpisodesDetermined,
    CountEpisodesDetermined,
    CarTExpansionDetermined,
    DoseLevelAssigned,
    EscalationDecided,
    MtdDeclared,
    CommandRejected,
    ChainHeadRecorded,
    RecordSigned,
    Day28ResponseDetermined,
    VeinToVeinTimeDetermined,
    ToxicityEpisodeClosed,
    ResponseDetermined,
    DeathRecorded,
    RelapseRecorded,
    MtdDetermined,
)
