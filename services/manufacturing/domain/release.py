"""Release (issue 9 item 4): quality-control results judged against the product
specification held as data, and the exceptional release of a product out of specification.

- **Specification.** Each facility keeps, per programme, the specification it releases the
  programme's product against, as versioned data set by its qualified person
  (`SetProductSpecification`; EU GMP Annex 16 §1.7: the batch complies with its
  specification; Part IV 11.5). Each criterion names its attribute, how it is judged
  (`CriterionKind`), its limits and unit, the test method and the source of the limit. A
  unit's results must answer every criterion and no other; each is judged, and one
  failure makes the unit out of specification. The specification also gives the product's
  shelf life from the end of manufacture and the time allowed from thawing (or
  preparation) to infusion: the bedside gate refuses a unit past either
  (services/infusion/domain/bedside.py).
- **Release** needs the qualified person's electronic signature: `RecordProductRelease`
  records the release record, and the QP's approval signature of that record
  (`POST /signatures`, infra/runtime/signing.py; 21 CFR 11.50, 11.70) puts it into effect
  (`ReleaseCertified`), so a release is always bound to one signed record.
- **Exceptional release** (EU GMP Part IV, Guidelines on GMP specific to ATMPs, 11.5:
  "Release of out of specification products"): the treating physician requests it with the
  clinical justification; the manufacturer's qualified person records the evaluation of the
  risks and the nature of the deviation; the physician accepts it by signing that record;
  a notification task for the sponsor is raised; only then may the units be released, and
  they stay flagged out of specification through infusion and into the reports.

Examples of criteria and their sources are in the bundled load files
(infra/tooling/examples/custody-*.jsonl): viability >= 70 % (FDA, Guidance for FDA
Reviewers and Sponsors: Content and Review of CMC Information for Human Somatic Cell
Therapy INDs, 2008, which recommends a minimum of 70 % viable cells), sterility by
Ph. Eur. 2.6.27, mycoplasma by Ph. Eur. 2.6.7, endotoxin within K/M with K = 5 IU/kg
(Ph. Eur. 5.1.10), and each programme's dose from its protocol (shared/seeds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from contracts.access import OrgKind, Role
from contracts.base import EventPayload
from contracts.commands import SetProductSpecification
from contracts.custody import CriterionKind
from contracts.errors import CommandRefused
from contracts.events import JudgedResult, ProductSpecificationSet, QcResult, SpecificationCriterion
from services.kernel.aggregate import Aggregate
from services.manufacturing.domain.custody import Acting, RoleNotPermitted, StepBeforePrevious


class NoSpecification(CommandRefused):
    code = "NO_SPECIFICATION"


class QcResultsIncomplete(CommandRefused):
    code = "QC_RESULTS_INCOMPLETE"


class UnknownQcAttribute(CommandRefused):
    code = "UNKNOWN_QC_ATTRIBUTE"


class QcResultInvalid(CommandRefused):
    code = "QC_RESULT_INVALID"


class NotOutOfSpecification(CommandRefused):
    code = "NOT_OUT_OF_SPECIFICATION"


class NoExceptionalReleaseRequest(CommandRefused):
    code = "NO_EXCEPTIONAL_RELEASE_REQUEST"


class AssessmentSuperseded(CommandRefused):
    code = "ASSESSMENT_SUPERSEDED"


class NoOpenNotification(CommandRefused):
    code = "NO_OPEN_NOTIFICATION"


# Who sets a specification, assesses an out-of-specification product and closes the
# sponsor's notification: the facility's qualified person (EU GMP Annex 16 §1, Part IV 11.5);
# the CLI's data loader submits what a QP decided in the facility's own system.
QUALIFIED = frozenset({Role.QUALIFIED_PERSON, Role.DATA_LOADER})
# Who requests an exceptional release: the treating physician (Part IV 11.5).
REQUESTERS = frozenset({Role.PHYSICIAN, Role.DATA_LOADER})


def spec_stream(programme_id: str, facility_id: str) -> str:
    return f"spec-{programme_id}-{facility_id}"


def criterion_text(c: SpecificationCriterion) -> str:
    unit = f" {c.unit}" if c.unit else ""
    if c.kind is CriterionKind.AT_LEAST:
        return f">= {c.low:g}{unit}"
    if c.kind is CriterionKind.AT_MOST:
        return f"<= {c.high:g}{unit}"
    if c.kind is CriterionKind.BETWEEN:
        return f"{c.low:g}-{c.high:g}{unit}"
    return "not detected"


def passes(c: SpecificationCriterion, r: QcResult) -> bool:
    if c.kind is CriterionKind.NOT_DETECTED:
        return r.detected is False
    value = r.value
    assert value is not None
    low_ok = c.low is None or value >= c.low
    high_ok = c.high is None or value <= c.high
    return low_ok and high_ok


def judge(criteria: list[SpecificationCriterion], results: list[QcResult]) -> list[JudgedResult]:
    """Each result judged by its criterion, in the specification's order; refused when a
    criterion is unanswered, a result answers none, or a result is of the wrong form."""
    by_attribute = {r.attribute: r for r in results}
    missing = [c.attribute for c in criteria if c.attribute not in by_attribute]
    if missing:
        raise QcResultsIncomplete(f"the specification also requires {', '.join(missing)}: every criterion is "
                                  "answered before a unit is judged")
    known = {c.attribute for c in criteria}
    extra = [a for a in by_attribute if a not in known]
    if extra:
        raise UnknownQcAttribute(f"{', '.join(extra)} is not a criterion of the specification "
                                 f"({', '.join(sorted(known))})")
    judged = []
    for c in criteria:
        r = by_attribute[c.attribute]
        qualitative = c.kind is CriterionKind.NOT_DETECTED
        if qualitative and r.detected is None:
            raise QcResultInvalid(f"{c.attribute} is a qualitative test: give `detected` (true or false), not a value")
        if not qualitative and r.value is None:
            raise QcResultInvalid(f"{c.attribute} is judged {criterion_text(c)}: give its `value`")
        judged.append(JudgedResult(attribute=c.attribute, value=r.value, detected=r.detected,
                                   criterion=criterion_text(c), passed=passes(c, r)))
    return judged


@dataclass(frozen=True)
class Limits:
    """What a specification version says about a unit's use, beyond its results."""

    version: int
    criteria: list[SpecificationCriterion]
    shelf_life_hours: int | None
    thaw_to_infusion_minutes: int | None

    def expires_at(self, made_at: datetime | None) -> datetime | None:
        if self.shelf_life_hours is None or made_at is None:
            return None
        return made_at + timedelta(hours=self.shelf_life_hours)


@dataclass
class ProductSpecification(Aggregate):
    """The versions of one facility's specification for one programme's product."""

    programme_id: str
    org_id: str
    versions: list[ProductSpecificationSet] = field(default_factory=list)

    def apply(self, event: EventPayload) -> None:
        if isinstance(event, ProductSpecificationSet):
            self.versions.append(event)

    def in_force(self, at: datetime) -> Limits | None:
        """The version in force at `at`: the latest set at or before it."""
        current = [v for v in self.versions if v.set_at <= at]
        if not current:
            return None
        v = current[-1]
        return Limits(v.version, list(v.criteria), v.shelf_life_hours, v.thaw_to_infusion_minutes)

    def set(self, cmd: SetProductSpecification, acting: Acting) -> list[EventPayload]:
        if acting.org_kind is not OrgKind.FACILITY:
            raise RoleNotPermitted(f"a product specification is a manufacturing facility's; {acting.org_id} is a "
                                   f"{acting.org_kind}")
        if acting.role not in QUALIFIED:
            raise RoleNotPermitted(f"a {acting.role} may not set a product specification; the qualified person does")
        if self.versions and cmd.set_at < self.versions[-1].set_at:
            raise StepBeforePrevious(f"version {len(self.versions) + 1} at {cmd.set_at.isoformat()} precedes version "
                                     f"{len(self.versions)} at {self.versions[-1].set_at.isoformat()}")
        return [ProductSpecificationSet(programme_id=cmd.programme_id, org_id=cmd.org_id,
                                        version=len(self.versions) + 1, criteria=cmd.criteria,
                                        shelf_life_hours=cmd.shelf_life_hours,
                                        thaw_to_infusion_minutes=cmd.thaw_to_infusion_minutes,
                                        role=acting.role.value, set_at=cmd.set_at)]
