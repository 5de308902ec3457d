"""Chain of identity: one COI id binds starting material, product and subject for life.

The COI id is printed on the apheresis bag at collection (ISBT 128 practice: assigned by
the collecting facility) and must match at every later step; a mismatch is refused, never
corrected or warned about (FACT-JACIE Immune Effector Cell standards, chain of identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from contracts import isbt128
from contracts.access import OrgKind, Role
from contracts.base import EventPayload
from contracts.commands import (
    RecordApheresisCollection,
    RecordCustodyStep,
    RecordOosRiskAssessment,
    RecordProductRelease,
    RecordQaDisposition,
    RecordQcResults,
    RecordSponsorNotified,
    RegisterProductUnits,
    RequestExceptionalRelease,
)
from contracts.custody import CustodyState, Disposition, UnitKind
from contracts.errors import ChainOfIdentityMismatch, CommandRefused
from contracts.events import (
    ApheresisCollected,
    CertifiedUnit,
    CoiIssued,
    CustodyStepRecorded,
    ExceptionalReleaseAccepted,
    ExceptionalReleaseRequested,
    ExcursionDetected,
    OosRiskAssessed,
    ProductReleased,
    ProductUnitsRegistered,
    QaDispositionRecorded,
    QcResultsRecorded,
    RecordSigned,
    ReleaseCertified,
    SignatureMeaning,
    SponsorNotificationRaised,
    SponsorNotified,
    TemperatureReading,
    TemperatureReadingsRecorded,
    UnitInfusionRecorded,
)
from services.kernel.aggregate import Aggregate
from services.kernel.clinical_dates import clinical_date
from services.manufacturing.domain.condition import RANGES, Reading, excursions
from services.manufacturing.domain.custody import (
    QC_ROLES,
    Acting,
    NotHolder,
    OutOfSequence,
    Quarantined,
    RoleNotPermitted,
    StepBeforePrevious,
    Unit,
    UnknownUnit,
    apply_step,
    check_label,
    check_step,
)
from services.manufacturing.domain.release import (
    QUALIFIED,
    REQUESTERS,
    AssessmentSuperseded,
    Limits,
    NoExceptionalReleaseRequest,
    NoOpenNotification,
    NoSpecification,
    NotOutOfSpecification,
    judge,
)


class SubjectNotEnrolled(CommandRefused):
    code = "SUBJECT_NOT_ENROLLED"


class CollectionBeforeEnrolment(CommandRefused):
    """Starting material is collected from an enrolled subject: an apheresis dated before the
    subject's (first) enrolment is refused (issue 12 item 5)."""

    code = "COLLECTION_BEFORE_ENROLMENT"


class CoiAlreadyIssued(CommandRefused):
    code = "COI_ALREADY_ISSUED"


class UnknownCoi(CommandRefused):
    code = "UNKNOWN_COI"


class DonorIsRecipient(CommandRefused):
    code = "DONOR_IS_RECIPIENT"


class UnknownDonor(CommandRefused):
    code = "UNKNOWN_DONOR"


class AlreadyReleased(CommandRefused):
    code = "PRODUCT_ALREADY_RELEASED"


class ReleaseBeforeCollection(CommandRefused):
    code = "RELEASE_BEFORE_COLLECTION"


class UnitAlreadyRegistered(CommandRefused):
    code = "UNIT_ALREADY_REGISTERED"


class ReleaseBeforeQc(CommandRefused):
    code = "RELEASE_BEFORE_QC"


class NotQuarantined(CommandRefused):
    code = "NOT_QUARANTINED"


def coi_stream(coi_id: str) -> str:
    return f"coi-{coi_id}"


@dataclass
class ChainOfIdentity(Aggregate):
    coi_id: str
    subject_id: str | None = None
    collected_at: datetime | None = None
    released: bool = False
    issued_to: str | None = None  # the subject CellTrail issued this COI for, if it did
    centre_id: str | None = None  # the collecting centre: the subject's treating centre
    donor_id: str | None = None  # the donor of a donor-derived product (seed 000); None: autologous
    units: dict[str, Unit] = field(default_factory=dict)  # custody of each unit (domain/custody.py)
    facility_id: str | None = None  # the facility that labelled the product's units
    programme_id: str | None = None  # the subject's programme, as its QC results named it
    release_pending: bool = False  # a release record awaits the QP's signature
    released_at: datetime | None = None  # the release record's time
    certified: bool = False  # the release took effect (ReleaseCertified)
    requested: frozenset[str] = frozenset()  # units the physician asked to release out of specification
    assessment: OosRiskAssessed | None = None  # the manufacturer's latest risk assessment of them
    accepted: frozenset[str] = frozenset()  # units the physician accepted by signature
    notification_open: bool = False  # the sponsor is yet to be told of an exceptional release
    notification_raised_at: datetime | None = None

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, CoiIssued):
            self.issued_to = event.subject_id
        elif isinstance(event, ApheresisCollected):
            self.subject_id, self.collected_at, self.centre_id = event.subject_id, event.collected_at, event.centre_id
            self.donor_id = event.donor_id
            material = isbt128.unit_id(event.coi_id, isbt128.STARTING_MATERIAL) if _isbt(event.coi_id) else None
            if material is not None:
                self.units[material] = Unit(material, UnitKind.STARTING_MATERIAL, CustodyState.COLLECTED,
                                            holder=event.centre_id, last_at=event.collected_at)
        elif isinstance(event, ProductUnitsRegistered):
            self.facility_id = event.facility_id
            for unit_id in event.unit_ids:
                self.units[unit_id] = Unit(unit_id, UnitKind.PRODUCT, CustodyState.AWAITING_QC,
                                           holder=event.facility_id, last_at=event.registered_at,
                                           storage=event.storage, made_at=event.registered_at)
        elif isinstance(event, QcResultsRecorded):
            unit = self.units[event.unit_id]
            unit.state = CustodyState.QC_COMPLETE if event.within_specification else CustodyState.OUT_OF_SPECIFICATION
            unit.last_at, unit.out_of_specification, unit.failed = event.tested_at, not event.within_specification, \
                list(event.failed)
            unit.expires_at, unit.use_within_minutes = event.expires_at, event.use_within_minutes
            self.programme_id = event.programme_id
        elif isinstance(event, ExceptionalReleaseRequested):
            self.requested, self.assessment, self.accepted = frozenset(event.unit_ids), None, frozenset()
        elif isinstance(event, OosRiskAssessed):
            self.assessment, self.accepted = event, frozenset()
        elif isinstance(event, ExceptionalReleaseAccepted):
            self.accepted = frozenset(event.unit_ids)
        elif isinstance(event, SponsorNotificationRaised):
            self.notification_open, self.notification_raised_at = True, event.raised_at
        elif isinstance(event, SponsorNotified):
            self.notification_open = False
        elif isinstance(event, ReleaseCertified):
            # Released as of the release record's time: the signature is dated by the service's
            # clock when it is made (21 CFR 11.50), which for records loaded after the fact is
            # later than the clinical times of the steps that follow.
            self.certified, self.release_pending = True, False
            for certified in event.units:
                unit = self.units[certified.unit_id]
                unit.state, unit.last_at = CustodyState.RELEASED, self.released_at or event.signed_at
        elif isinstance(event, CustodyStepRecorded):
            apply_step(self.units[event.unit_id], event)
        elif isinstance(event, ExcursionDetected):
            self.units[event.unit_id].quarantined = True
        elif isinstance(event, UnitInfusionRecorded):
            unit = self.units[event.unit_id]
            unit.state, unit.last_at = CustodyState.INFUSED, event.infused_at
        elif isinstance(event, QaDispositionRecorded):
            unit = self.units[event.unit_id]
            unit.quarantined = False
            if event.decision is Disposition.DISCARD:
                unit.state = CustodyState.DISCARDED
        elif isinstance(event, ProductReleased):
            self.released, self.released_at = True, event.released_at
            if event.awaiting_signature:
                self.release_pending = True
                return
            for unit in self.product_units():  # recorded before releases were signed: in effect at once
                if unit.state is CustodyState.QC_COMPLETE:
                    unit.state, unit.last_at = CustodyState.RELEASED, event.released_at

    def product_units(self) -> list[Unit]:
        return [u for u in self.units.values() if u.kind is UnitKind.PRODUCT]

    def issue(self, subject_id: str, centre_id: str, at: datetime) -> list[EventPayload]:
        """A COI id drawn for `subject_id` (its stream must be new: two issuers drawing the
        same sequence collide on the stream's first version, and one draws again)."""
        if self.issued_to is not None or self.subject_id is not None:
            raise CoiAlreadyIssued(f"COI {self.coi_id} was already issued")
        return [CoiIssued(coi_id=self.coi_id, subject_id=subject_id, centre_id=centre_id, issued_at=at)]

    def collect(self, cmd: RecordApheresisCollection, enrolled_centre: str | None, *,
                donor_known: bool = True, enrolled_on: date | None = None) -> list[EventPayload]:
        """`donor_known`: the donor named, if any, is a person registered in the network.
        `enrolled_on`: the day of the subject's first enrolment; the collection's clinical date
        (at the offset recorded with its time, services/kernel/clinical_dates.py) may not be
        earlier."""
        if self.subject_id is not None:
            raise CoiAlreadyIssued(f"COI {cmd.coi_id} was already issued to a collection")
        if self.issued_to is not None and self.issued_to != cmd.subject_id:
            raise ChainOfIdentityMismatch(
                f"COI {cmd.coi_id} was issued for subject {self.issued_to}, not {cmd.subject_id}: "
                "the bag is labelled for another patient")
        if enrolled_centre is None:
            raise SubjectNotEnrolled(f"subject {cmd.subject_id} is not enrolled in any programme")
        if enrolled_centre != cmd.centre_id:
            raise SubjectNotEnrolled(
                f"subject {cmd.subject_id} is enrolled at {enrolled_centre}, not at collecting centre {cmd.centre_id}")
        if enrolled_on is not None and clinical_date(cmd.collected_at) < enrolled_on:
            raise CollectionBeforeEnrolment(
                f"apheresis collected at {cmd.collected_at.isoformat()}, on {clinical_date(cmd.collected_at)}, before"
                f" subject {cmd.subject_id}'s enrolment on {enrolled_on.isoformat()}: starting material is collected"
                " from an enrolled subject")
        if cmd.donor_id is not None and cmd.donor_id == cmd.subject_id:
            raise DonorIsRecipient(f"{cmd.subject_id} is the recipient: an autologous collection names no donor")
        if not donor_known:
            raise UnknownDonor(f"donor {cmd.donor_id} is not a person registered in the network (POST /patients "
                               "registers a donor as any person, the identity kept in enrollment)")
        return [ApheresisCollected(coi_id=cmd.coi_id, subject_id=cmd.subject_id, centre_id=cmd.centre_id,
                                   collected_at=cmd.collected_at, donor_id=cmd.donor_id)]

    def release(self, cmd: RecordProductRelease, *, imported: bool = False) -> list[EventPayload]:
        """The release record of the product (its units, once tested), which the qualified
        person's signature puts into effect. `imported`: a record made and certified elsewhere
        (the data loader), the only way a product without labelled units is released."""
        if self.subject_id is None:
            raise UnknownCoi(f"COI {cmd.coi_id} has no recorded apheresis collection")
        if cmd.subject_id != self.subject_id:
            raise ChainOfIdentityMismatch(
                f"COI {cmd.coi_id} belongs to subject {self.subject_id}, but the release names {cmd.subject_id}")
        if self.released:
            raise AlreadyReleased(f"product for COI {cmd.coi_id} is already released")
        if self.collected_at and cmd.released_at < self.collected_at:
            raise ReleaseBeforeCollection(
                f"release at {cmd.released_at.isoformat()} precedes collection at {self.collected_at.isoformat()}")
        units = self.product_units()
        if units:  # labelled units: each tested, none out of specification, by their facility
            if cmd.facility_id is not None and cmd.facility_id != self.facility_id:
                raise NotHolder(f"the product of COI {cmd.coi_id} was labelled by {self.facility_id}, "
                                f"not by {cmd.facility_id}")
            held = [u.unit_id for u in units if u.quarantined and u.state is not CustodyState.DISCARDED]
            if held:
                raise Quarantined(f"unit(s) {', '.join(held)} of COI {cmd.coi_id} are quarantined after a "
                                  "temperature excursion: quality assurance decides first")
            waiting = [u.unit_id for u in units if u.state is CustodyState.AWAITING_QC]
            if waiting:
                raise ReleaseBeforeQc(f"unit(s) {', '.join(waiting)} of COI {cmd.coi_id} have no quality-control "
                                      "results yet (RecordQcResults)")
            oos = [u.unit_id for u in units if u.state is CustodyState.OUT_OF_SPECIFICATION]
            unaccepted = [u for u in oos if u not in self.accepted]
            if unaccepted:
                raise ReleaseBeforeQc(
                    f"unit(s) {', '.join(unaccepted)} of COI {cmd.coi_id} are out of specification: discard them, or "
                    "release them on the exceptional-release path (EU GMP Part IV 11.5: the treating physician's "
                    "request, the manufacturer's risk assessment, the physician's signed acceptance)")
            if not any(u.state is CustodyState.QC_COMPLETE for u in units) and not oos:
                raise ReleaseBeforeQc(f"COI {cmd.coi_id} has no unit left to release")
            return [ProductReleased(**{**cmd.model_dump(), "facility_id": self.facility_id,
                                       "awaiting_signature": True, "out_of_specification_units": oos})]
        if not imported:
            raise ReleaseBeforeQc(f"the product of COI {cmd.coi_id} has no labelled units: the facility labels its "
                                  "bags (RegisterProductUnits) and records their QC results before the release; "
                                  "only an import of a release certified elsewhere names a COI alone")
        return [ProductReleased(**cmd.model_dump())]

    def record_qc(self, cmd: RecordQcResults, acting: Acting, programme_id: str | None,
                  limits: Limits | None) -> list[EventPayload]:
        """A unit's QC results, judged against the specification in force (domain/release.py)."""
        if self.subject_id is None:
            raise UnknownCoi(f"COI {self.coi_id} has no recorded apheresis collection")
        check_label(cmd.scanned_id, cmd.unit_id)
        unit = self.units.get(cmd.unit_id)
        if unit is None:
            raise UnknownUnit(f"unit {cmd.unit_id} was never collected or labelled under COI {self.coi_id}")
        if unit.kind is not UnitKind.PRODUCT or unit.state is not CustodyState.AWAITING_QC:
            raise OutOfSequence(f"unit {cmd.unit_id} ({unit.kind}) is {unit.state}: QC results are recorded for a "
                                "product unit awaiting QC")
        if acting.org_id != unit.holder:
            raise NotHolder(f"unit {cmd.unit_id} is held by {unit.holder}, not by {acting.org_id}")
        if acting.org_kind is not OrgKind.FACILITY or acting.role not in QC_ROLES:
            raise RoleNotPermitted(f"QC results are recorded by a facility's {', '.join(sorted(QC_ROLES))}, not by "
                                   f"a {acting.role} of {acting.org_id}")
        if unit.last_at is not None and cmd.tested_at < unit.last_at:
            raise StepBeforePrevious(f"QC results at {cmd.tested_at.isoformat()} precede unit {cmd.unit_id}'s last "
                                     f"step at {unit.last_at.isoformat()}")
        if programme_id is None or limits is None:
            raise NoSpecification(f"no product specification of programme {programme_id} is in force at "
                                  f"{acting.org_id} on {cmd.tested_at.isoformat()}: its qualified person sets one "
                                  "(SetProductSpecification)")
        judged = judge(limits.criteria, cmd.results)
        failed = [j.attribute for j in judged if not j.passed]
        return [QcResultsRecorded(unit_id=cmd.unit_id, coi_id=self.coi_id, subject_id=self.subject_id,
                                  programme_id=programme_id, specification_version=limits.version, results=judged,
                                  within_specification=not failed, failed=failed, org_id=acting.org_id,
                                  role=acting.role.value, location=cmd.location, scanned_id=cmd.scanned_id,
                                  tested_at=cmd.tested_at, expires_at=limits.expires_at(unit.made_at),
                                  use_within_minutes=limits.thaw_to_infusion_minutes)]

    def request_exceptional_release(self, cmd: RequestExceptionalRelease, acting: Acting) -> list[EventPayload]:
        """The treating physician's request (EU GMP Part IV 11.5), for this subject's centre."""
        if self.subject_id is None:
            raise UnknownCoi(f"COI {self.coi_id} has no recorded apheresis collection")
        if acting.org_id != self.centre_id:
            raise NotHolder(f"the product of COI {self.coi_id} is for a subject of {self.centre_id}: its treating "
                            f"physician requests an exceptional release, not {acting.org_id}")
        if acting.role not in REQUESTERS:
            raise RoleNotPermitted(f"a {acting.role} may not request an exceptional release; the treating physician "
                                   "does (EU GMP Part IV 11.5)")
        if self.certified or self.release_pending:
            raise AlreadyReleased(f"the product of COI {self.coi_id} is already released")
        for unit_id in cmd.unit_ids:
            unit = self.units.get(unit_id)
            if unit is None:
                raise UnknownUnit(f"unit {unit_id} was never labelled under COI {self.coi_id}")
            if unit.state is not CustodyState.OUT_OF_SPECIFICATION:
                raise NotOutOfSpecification(f"unit {unit_id} is {unit.state}: only a unit out of specification is "
                                            "released on the exceptional-release path")
        return [ExceptionalReleaseRequested(coi_id=self.coi_id, subject_id=self.subject_id,
                                            unit_ids=sorted(set(cmd.unit_ids)), org_id=acting.org_id,
                                            role=acting.role.value, justification=cmd.justification,
                                            requested_at=cmd.requested_at)]

    def assess_risk(self, cmd: RecordOosRiskAssessment, acting: Acting, assessment_id: object) -> list[EventPayload]:
        """The manufacturer's evaluation of the requested units, by its qualified person."""
        if self.subject_id is None:
            raise UnknownCoi(f"COI {self.coi_id} has no recorded apheresis collection")
        self._by_own_qp(acting, "assesses the risk of an out-of-specification product")
        requested = [u for u in sorted(self.requested)
                     if self.units[u].state is CustodyState.OUT_OF_SPECIFICATION]
        if not requested:
            raise NoExceptionalReleaseRequest(f"no exceptional release of COI {self.coi_id} was requested by the "
                                              "treating physician (RequestExceptionalRelease)")
        return [OosRiskAssessed(assessment_id=assessment_id, coi_id=self.coi_id, subject_id=self.subject_id,
                                unit_ids=requested, facility_id=acting.org_id, role=acting.role.value,
                                deviation=cmd.deviation, risk_assessment=cmd.risk_assessment,
                                assessed_at=cmd.assessed_at)]

    def sponsor_notified(self, cmd: RecordSponsorNotified, acting: Acting) -> list[EventPayload]:
        if self.subject_id is None:
            raise UnknownCoi(f"COI {self.coi_id} has no recorded apheresis collection")
        self._by_own_qp(acting, "records the sponsor's notification")
        if not self.notification_open:
            raise NoOpenNotification(f"no notification of the sponsor is open for COI {self.coi_id}")
        if self.notification_raised_at is not None and cmd.notified_at < self.notification_raised_at:
            raise StepBeforePrevious(f"the sponsor's notification at {cmd.notified_at.isoformat()} precedes the "
                                     f"task raised at {self.notification_raised_at.isoformat()}")
        return [SponsorNotified(coi_id=self.coi_id, subject_id=self.subject_id, org_id=acting.org_id,
                                role=acting.role.value, reference=cmd.reference, notified_at=cmd.notified_at)]

    def _by_own_qp(self, acting: Acting, what: str) -> None:
        if acting.org_id != self.facility_id or acting.org_kind is not OrgKind.FACILITY:
            raise NotHolder(f"the product of COI {self.coi_id} was made by {self.facility_id}: its qualified person "
                            f"{what}, not {acting.org_id}")
        if acting.role not in QUALIFIED:
            raise RoleNotPermitted(f"a {acting.role} may not do this: the qualified person {what}")

    def signed(self, record_type: str, record: dict, record_event_id: object,
               signature: RecordSigned) -> list[EventPayload]:
        """What a signature of one of this chain's records puts into effect: the QP's approval of
        the pending release record certifies it; the treating physician's approval of the
        latest risk assessment accepts the exceptional release and raises the sponsor's task.
        Any other signature is a signature only."""
        if signature.meaning is not SignatureMeaning.APPROVAL or self.subject_id is None:
            return []
        if record_type == ProductReleased.event_type:
            if not self.release_pending or signature.role != Role.QUALIFIED_PERSON.value \
                    or signature.org_id != self.facility_id:
                return []
            units = [CertifiedUnit(unit_id=u.unit_id, out_of_specification=u.out_of_specification,
                                   expires_at=u.expires_at, use_within_minutes=u.use_within_minutes)
                     for u in self.product_units()
                     if u.state is CustodyState.QC_COMPLETE
                     or (u.state is CustodyState.OUT_OF_SPECIFICATION and u.unit_id in self.accepted)]
            if not units:
                raise NoExceptionalReleaseRequest(f"no unit of COI {self.coi_id} is left to release")
            return [ReleaseCertified(coi_id=self.coi_id, subject_id=self.subject_id, facility_id=self.facility_id,
                                     release_event_id=record_event_id, units=units, signer=signature.signer,
                                     printed_name=signature.printed_name, signed_at=signature.signed_at,
                                     record_hash=signature.record_hash)]
        if record_type == OosRiskAssessed.event_type:
            if signature.role != Role.PHYSICIAN.value or signature.org_id != self.centre_id:
                return []
            if self.assessment is None or str(self.assessment.assessment_id) != str(record.get("assessment_id")):
                raise AssessmentSuperseded(f"this risk assessment of COI {self.coi_id} was superseded by a later "
                                           "request or assessment: sign the latest")
            if self.accepted:
                return []
            assessed = self.assessment
            return [ExceptionalReleaseAccepted(coi_id=self.coi_id, subject_id=self.subject_id,
                                               unit_ids=assessed.unit_ids, assessment_id=assessed.assessment_id,
                                               signer=signature.signer, printed_name=signature.printed_name,
                                               org_id=signature.org_id, signed_at=signature.signed_at,
                                               record_hash=signature.record_hash),
                    SponsorNotificationRaised(coi_id=self.coi_id, subject_id=self.subject_id,
                                              programme_id=self.programme_id, unit_ids=assessed.unit_ids,
                                              failed=sorted({f for u in assessed.unit_ids
                                                             for f in self.units[u].failed}),
                                              facility_id=assessed.facility_id, raised_at=signature.signed_at)]
        return []

    def register_units(self, cmd: RegisterProductUnits, acting: Acting) -> list[EventPayload]:
        """The facility holding the starting material, in manufacturing, labels the product."""
        material = self.units.get(isbt128.unit_id(cmd.coi_id, isbt128.STARTING_MATERIAL))
        if self.subject_id is None or material is None:
            raise UnknownCoi(f"COI {cmd.coi_id} has no recorded apheresis collection")
        if material.state is not CustodyState.IN_MANUFACTURING:
            raise OutOfSequence(f"the starting material of COI {cmd.coi_id} is {material.state}: units are "
                                "labelled only once it is in manufacturing")
        if material.holder != acting.org_id:
            raise NotHolder(f"the starting material of COI {cmd.coi_id} is held by {material.holder}, "
                            f"not by {acting.org_id}")
        if acting.org_kind is not OrgKind.FACILITY or acting.role not in LABELLERS:
            raise RoleNotPermitted(f"units are labelled by a facility's {', '.join(sorted(LABELLERS))}, "
                                   f"not by a {acting.role} of {acting.org_id}")
        if len(set(cmd.divisions)) != len(cmd.divisions):
            raise UnitAlreadyRegistered(f"division codes repeat in {cmd.divisions}")
        unit_ids = [isbt128.unit_id(cmd.coi_id, d) for d in cmd.divisions]
        taken = [u for u in unit_ids if u in self.units]
        if taken:
            raise UnitAlreadyRegistered(f"unit(s) {', '.join(taken)} are already labelled")
        if material.last_at is not None and cmd.registered_at < material.last_at:
            raise OutOfSequence(f"labelling at {cmd.registered_at.isoformat()} precedes the start of manufacturing "
                                f"at {material.last_at.isoformat()}")
        return [ProductUnitsRegistered(coi_id=cmd.coi_id, subject_id=self.subject_id, facility_id=acting.org_id,
                                       lot_number=cmd.lot_number, unit_ids=unit_ids, location=cmd.location,
                                       registered_at=cmd.registered_at, role=acting.role.value, storage=cmd.storage)]

    def record_readings(self, unit_ids: list[str], logger_id: str, location: str,
                        readings: list[TemperatureReading], acting: Acting) -> list[EventPayload]:
        """A logger's readings for these units of this COI, by an organisation that holds them
        or that they were shipped to; and every excursion they show, each quarantining its
        unit (domain/condition.py)."""
        if self.subject_id is None:
            raise UnknownCoi(f"COI {self.coi_id} has no recorded apheresis collection")
        found = []
        for unit_id in unit_ids:
            unit = self.units.get(unit_id)
            if unit is None:
                raise UnknownUnit(f"unit {unit_id} was never collected or labelled under COI {self.coi_id}")
            if acting.org_id not in (unit.holder, unit.destination):
                raise NotHolder(f"unit {unit_id} is held by {unit.holder}, not by {acting.org_id}")
            limits = RANGES[unit.storage]
            for x in excursions([Reading(r.at, r.celsius) for r in readings], limits):
                found.append(ExcursionDetected(
                    unit_id=unit_id, coi_id=self.coi_id, subject_id=self.subject_id, storage=unit.storage,
                    low_celsius=limits.low, high_celsius=limits.high, started_at=x.started_at, ended_at=x.ended_at,
                    ongoing=x.ongoing, minutes=round(x.minutes, 2), peak_celsius=x.peak_celsius,
                    deviation=x.deviation, logger_id=logger_id))
        return [TemperatureReadingsRecorded(coi_id=self.coi_id, subject_id=self.subject_id, unit_ids=unit_ids,
                                            logger_id=logger_id, org_id=acting.org_id, location=location,
                                            readings=readings), *found]

    def infused(self, unit_id: str, subject_id: str, infused_at: datetime, event_id: object) -> list[EventPayload]:
        """Infusion recorded the unit infused (after its bedside go): its custody ends. Known
        already, or not a unit of this chain (a record from before units): nothing."""
        unit = self.units.get(unit_id)
        if unit is None or unit.state is CustodyState.INFUSED or subject_id != self.subject_id:
            return []
        return [UnitInfusionRecorded(unit_id=unit_id, coi_id=self.coi_id, subject_id=subject_id,
                                     infused_at=infused_at, infusion_event_id=event_id)]

    def dispose(self, cmd: RecordQaDisposition, acting: Acting) -> list[EventPayload]:
        """Quality assurance's decision on a quarantined unit, by the qualified person of the
        facility that made it (for starting material: a facility holding it or receiving it)."""
        unit = self.units.get(cmd.unit_id)
        if self.subject_id is None or unit is None:
            raise UnknownUnit(f"unit {cmd.unit_id} was never collected or labelled under COI {self.coi_id}")
        if not unit.quarantined:
            raise NotQuarantined(f"unit {cmd.unit_id} is not quarantined")
        responsible = ({self.facility_id} if unit.kind is UnitKind.PRODUCT
                       else {unit.holder, unit.destination} - {None})
        if acting.org_id not in responsible or acting.org_kind is not OrgKind.FACILITY:
            raise NotHolder(f"quality assurance of {', '.join(sorted(map(str, responsible)))} decides on unit "
                            f"{cmd.unit_id}, not {acting.org_id}")
        if acting.role not in DISPOSERS:
            raise RoleNotPermitted(f"a {acting.role} may not record a QA disposition; the qualified person does")
        return [QaDispositionRecorded(unit_id=cmd.unit_id, coi_id=self.coi_id, subject_id=self.subject_id,
                                      decision=cmd.decision, justification=cmd.justification, org_id=acting.org_id,
                                      role=acting.role.value, decided_at=cmd.decided_at)]

    def custody_step(self, cmd: RecordCustodyStep, acting: Acting,
                     destination_kind: OrgKind | None) -> list[EventPayload]:
        """A step of one unit's custody (domain/custody.py), or its refusal."""
        if self.subject_id is None or self.centre_id is None:
            raise UnknownCoi(f"COI {self.coi_id} has no recorded apheresis collection")
        return [check_step(self.units.get(cmd.unit_id), unit_id=cmd.unit_id,
                           scanned=cmd.scanned_id, step=cmd.step, acting=acting,
                           location=cmd.location, at=cmd.at, coi_id=self.coi_id, subject_id=self.subject_id,
                           subject_centre=self.centre_id, destination=cmd.destination_org_id,
                           destination_kind=destination_kind, reason=cmd.reason)]


LABELLERS = frozenset({Role.OPERATOR, Role.FACILITY_SYSTEM, Role.DATA_LOADER})
# EU GMP Annex 16 §1.7 / Part IV 11.5: the QP decides on a deviating batch
DISPOSERS = frozenset({Role.QUALIFIED_PERSON, Role.DATA_LOADER})
# who loads a logger's readings: whoever handles or tests units
READERS = frozenset({Role.NURSE, Role.PHYSICIAN, Role.OPERATOR, Role.COURIER, Role.FACILITY_SYSTEM,
                     Role.QC_ANALYST, Role.QUALIFIED_PERSON, Role.DATA_LOADER})


def _isbt(coi: str) -> bool:
    """A COI recorded before CellTrail checked them (free text) has no units."""
    try:
        isbt128.parse(coi)
    except isbt128.IdentifierError:
        return False
    return True
