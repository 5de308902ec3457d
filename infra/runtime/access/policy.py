"""The authorisation policy: one table and the small function that reads it. Pure: no I/O,
no framework (an import-linter contract holds it to that), so it is table-tested alone and
every entry point asks it the same question.

Sources:
- 21 CFR 11.10(d): "Limiting system access to authorized individuals."
- 21 CFR 11.10(g): "Use of authority checks to ensure that only authorized individuals can
  use the system, electronically sign a record, access the operation or computer system
  input or output device, alter a record, or perform the operation at hand."
- EU GMP Annex 11 §12.1: "Physical and/or logical controls should be in place to restrict
  access to computerised system to authorised persons"; §12.3 the creation, change and
  cancellation of access authorisations should be recorded (the `access.audit_log`).
- Issue 8, item 3: centre staff read and write only their own centre's subjects; a facility
  sees only the products it manufactures and never a patient identifier; the network
  operator reads across centres with identifiers removed; the auditor reads the audit
  trail; rebuild and republish need an administrator.

Least privilege: what the table does not grant is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.events import SignatureMeaning
from infra.runtime.access.principals import Membership, Principal


class Action(StrEnum):
    READ_SUBJECT = "read_subject"  # a subject's pseudonymous record and timeline
    WRITE_SUBJECT = "write_subject"  # register, enrol, record infusion or assessment
    READ_IDENTIFIERS = "read_identifiers"  # name, date of birth, hospital record number
    # and what links a subject to them outside CellTrail (see the projection's `deidentify`)
    ERASE_IDENTIFIERS = "erase_identifiers"  # delete a person's identifiers (GDPR Art. 17)
    READ_PRODUCT = "read_product"  # a product's chain of identity and custody
    WRITE_PRODUCT = "write_product"  # manufacturing records
    RELEASE_PRODUCT = "release_product"  # certification for release (EU GMP Annex 16)
    # the bedside check of a bag and a patient before infusion, by each of two people
    # (FACT-JACIE D7: two qualified persons verify recipient and product)
    VERIFY_AT_BEDSIDE = "verify_at_bedside"
    RECORD_CUSTODY = "record_custody"  # a step in a unit's custody, for the organisation holding it
    # the treating physician's signed acceptance of the manufacturer's risk assessment of an
    # out-of-specification product, which allows its exceptional release (EU GMP Part IV 11.5)
    ACCEPT_EXCEPTIONAL_RELEASE = "accept_exceptional_release"
    # prescribe the lymphodepleting chemotherapy and the cell dose (issue 10 item 4): a
    # medical act of the treating physician (FACT-JACIE 8th ed. B7: the attending physician
    # prescribes the cellular therapy product and its preparative regimen)
    PRESCRIBE = "prescribe"
    READ_REPORT = "read_report"  # aggregated endpoints (ORR, vein-to-vein time)
    READ_AUDIT = "read_audit"  # the audit trail (issue 8, item 7)
    READ_STATUS = "read_status"  # a service's consumer and relay lag (GET /status)
    ADMIN_REBUILD = "admin_rebuild"
    ADMIN_REPUBLISH = "admin_republish"
    # send dead letters back to their source topic after a fix (`celltrail deadletters replay`)
    REPLAY_DEAD_LETTERS = "replay_dead_letters"
    MANAGE_PRINCIPALS = "manage_principals"
    REGISTER_CENTRE = "register_centre"  # a treating centre joins the network (enrollment)
    # publish a programme's definition, a new version of its protocol as data (issue 10)
    MANAGE_PROGRAMMES = "manage_programmes"


class Scope(StrEnum):
    """Which resources a membership's grant reaches."""

    OWN_CENTRE = "own_centre"  # the resource belongs to the membership's centre
    OWN_FACILITY = "own_facility"  # the resource was manufactured by the membership's facility
    OWN_ORGANISATION = "own_organisation"  # either of the two (a courier serves both)
    NETWORK = "network"  # every resource, also those of no centre or facility


@dataclass(frozen=True)
class Resource:
    """What an action is applied to, reduced to whose it is. A subject has its centre; a
    product its centre and the facility that manufactures it; the audit trail, the read
    models as a whole and the principals belong to the network (neither set)."""

    centre_id: str | None = None
    facility_id: str | None = None


NETWORK_RESOURCE = Resource()


@dataclass(frozen=True)
class Rule:
    """What one role may do: the organisation kinds it may be held at, the actions it is
    granted and how far they reach, and where the rule comes from."""

    held_at: frozenset[OrgKind]
    actions: frozenset[Action]
    scope: Scope
    source: str


A = Action
CENTRE, FACILITY, NETWORK = frozenset({OrgKind.CENTRE}), frozenset({OrgKind.FACILITY}), frozenset({OrgKind.NETWORK})
_CENTRE_STAFF = "issue 8 item 3: centre staff read and write only their own centre's subjects"
_FACILITY = "issue 8 item 3: a facility sees only the products it manufactures, never a patient identifier"
# GDPR Art. 17: erasure is the controller's to carry out, here the treating centre (its
# physician or data manager) or, at its request, the network's administrator
# (`celltrail identities erase`).
_ERASURE = "GDPR Art. 17 (right to erasure): the controller, the treating centre, erases"
# A service's lag and health are the running of the system, not clinical data: for those
# who run the network (Annex 11 §12.1: access restricted to those who need it).
_OPERATIONS = "EU GMP Annex 11 §12.1: operating status only for who runs the network"

# The policy. Read by `decide`; tests/unit/runtime/access/test_policy.py runs every role x
# action x own/other organisation against it.
POLICY: Mapping[Role, Rule] = {
    Role.PHYSICIAN: Rule(CENTRE, frozenset({A.READ_SUBJECT, A.WRITE_SUBJECT, A.READ_IDENTIFIERS, A.READ_PRODUCT,
                                            A.READ_REPORT, A.ERASE_IDENTIFIERS, A.RECORD_CUSTODY,
                                            A.VERIFY_AT_BEDSIDE, A.ACCEPT_EXCEPTIONAL_RELEASE, A.PRESCRIBE}),
                         Scope.OWN_CENTRE,
                         f"{_CENTRE_STAFF}; {_ERASURE}; EU GMP Part IV 11.5 (the treating physician accepts an "
                         "out-of-specification product); FACT-JACIE 8th ed. B7 (the attending physician "
                         "prescribes the product and its preparative regimen)"),
    Role.NURSE: Rule(CENTRE, frozenset({A.READ_SUBJECT, A.WRITE_SUBJECT, A.READ_IDENTIFIERS, A.READ_PRODUCT,
                                        A.RECORD_CUSTODY, A.VERIFY_AT_BEDSIDE}),
                     Scope.OWN_CENTRE, _CENTRE_STAFF),
    Role.DATA_MANAGER: Rule(CENTRE, frozenset({A.READ_SUBJECT, A.WRITE_SUBJECT, A.READ_IDENTIFIERS, A.READ_PRODUCT,
                                               A.READ_REPORT, A.ERASE_IDENTIFIERS}), Scope.OWN_CENTRE,
                            f"{_CENTRE_STAFF}; {_ERASURE}"),
    # EU GMP Annex 16 §1: only a qualified person certifies a batch for release.
    Role.QUALIFIED_PERSON: Rule(FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RELEASE_PRODUCT,
                                                     A.RECORD_CUSTODY}),
                                Scope.OWN_FACILITY, _FACILITY + "; EU GMP Annex 16 §1 (QP certification)"),
    Role.QC_ANALYST: Rule(FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RECORD_CUSTODY}), Scope.OWN_FACILITY, _FACILITY),
    Role.OPERATOR: Rule(FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RECORD_CUSTODY}), Scope.OWN_FACILITY, _FACILITY),
    Role.FACILITY_SYSTEM: Rule(FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RECORD_CUSTODY}), Scope.OWN_FACILITY,
                               _FACILITY + " (its integration acts for it)"),
    Role.COURIER: Rule(CENTRE | FACILITY, frozenset({A.READ_PRODUCT, A.RECORD_CUSTODY}), Scope.OWN_ORGANISATION,
                       "issue 8 item 1: a courier carries the products of the organisations it serves"),
    Role.NETWORK_OPERATOR: Rule(NETWORK, frozenset({A.READ_SUBJECT, A.READ_PRODUCT, A.READ_REPORT, A.READ_STATUS}),
                                Scope.NETWORK, "issue 8 item 3: the network operator reads across centres with "
                                               f"identifiers removed; {_OPERATIONS}"),
    Role.AUDITOR: Rule(NETWORK, frozenset({A.READ_AUDIT}), Scope.NETWORK,
                       "issue 8 item 3: the auditor reads the audit trail"),
    Role.ADMINISTRATOR: Rule(NETWORK, frozenset({A.READ_AUDIT, A.ADMIN_REBUILD, A.ADMIN_REPUBLISH,
                                                 A.REPLAY_DEAD_LETTERS, A.MANAGE_PRINCIPALS, A.REGISTER_CENTRE,
                                                 A.READ_STATUS, A.ERASE_IDENTIFIERS, A.MANAGE_PROGRAMMES}),
                             Scope.NETWORK,
                             "issue 8 items 3 and 7: rebuild and republish need an administrator, who also "
                             "manages access and the organisations it is granted at (Annex 11 §12.3) and "
                             f"reads the audit trail; {_OPERATIONS}; {_ERASURE}, or the administrator at its "
                             "request; issue 10: publishes the programmes' definitions the network runs; "
                             "issue 12 item 3: sends dead letters back after a fix, as it republishes"),
    Role.OUTCOME_CONSUMER: Rule(NETWORK, frozenset({A.READ_REPORT}), Scope.NETWORK,
                                "issue 8 item 1: an outcome consumer reads the aggregated endpoints"),
    # The CLI's `celltrail load` submits records made and certified elsewhere (the demo and
    # seed scenarios, a migration) through the live path, for every centre; it certifies
    # nothing itself: a release it records was certified by a QP in the facility's own system.
    Role.DATA_LOADER: Rule(NETWORK, frozenset({A.REGISTER_CENTRE, A.WRITE_SUBJECT, A.WRITE_PRODUCT,
                                               A.RELEASE_PRODUCT, A.RECORD_CUSTODY, A.MANAGE_PROGRAMMES,
                                               A.PRESCRIBE}),
                           Scope.NETWORK,
                           "issue 8 items 1 and 9 (the CLI is a system principal; `make demo` loads its "
                           "scenario); EU GMP Annex 11 §4.8 (data transferred between systems, unaltered): "
                           "a prescription it loads was made in the centre's own prescribing system"),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def held_where_it_may_be(role: Role, org_kind: OrgKind) -> bool:
    """Whether `role` may be held at an organisation of `org_kind` (a physician at a centre,
    never at a facility); a membership that is not grants nothing."""
    rule = POLICY.get(role)
    return rule is not None and org_kind in rule.held_at


def reaches(scope: Scope, membership: Membership, resource: Resource) -> bool:
    """Whether a grant held through `membership` reaches `resource`."""
    if scope is Scope.NETWORK:
        return True
    own_centre = membership.org_kind is OrgKind.CENTRE and resource.centre_id == membership.org_id
    own_facility = membership.org_kind is OrgKind.FACILITY and resource.facility_id == membership.org_id
    if scope is Scope.OWN_CENTRE:
        return own_centre
    if scope is Scope.OWN_FACILITY:
        return own_facility
    return own_centre or own_facility


def _whose(resource: Resource) -> str:
    parts = [f"centre {resource.centre_id}" if resource.centre_id else "",
             f"facility {resource.facility_id}" if resource.facility_id else ""]
    return " and ".join(p for p in parts if p) or "the network"


def decide(principal: Principal, action: Action, resource: Resource) -> Decision:
    """Allowed when one of the principal's memberships holds a role, at an organisation of a
    kind the role may be held at, whose rule grants `action` with a scope reaching `resource`."""
    granted_elsewhere: list[str] = []
    for m in principal.memberships:
        rule = POLICY.get(m.role)
        if rule is None or not held_where_it_may_be(m.role, m.org_kind) or action not in rule.actions:
            continue
        if reaches(rule.scope, m, resource):
            return Decision(True, f"{m.role} at {m.org_id} may {action} ({rule.scope}; {rule.source})")
        granted_elsewhere.append(f"{m.role} at {m.org_id} ({rule.scope})")
    if granted_elsewhere:
        return Decision(False, f"{principal.principal_id} may {action} only as {', '.join(granted_elsewhere)}, "
                               f"not for a resource of {_whose(resource)}")
    return Decision(False, f"no role of {principal.principal_id} grants {action}")


def decide_anywhere(principal: Principal, action: Action) -> Decision:
    """Whether some membership grants `action` at all, whatever it reaches: asked of a
    request for many resources at once (a listing), whose items are then each `decide`d."""
    for m in principal.memberships:
        rule = POLICY.get(m.role)
        if rule is not None and held_where_it_may_be(m.role, m.org_kind) and action in rule.actions:
            return Decision(True, f"{m.role} at {m.org_id} may {action} ({rule.scope}; {rule.source})")
    return Decision(False, f"no role of {principal.principal_id} grants {action}")


# -- electronic signatures ----------------------------------------------------------------
# Which records may be signed with which meaning, and the action the signer must be granted
# over the record for it: 21 CFR 11.10(g) ("authority checks to ensure that only authorized
# individuals can ... electronically sign a record"). A meaning not listed for a record type
# is refused: the table is what may be signed.
M = SignatureMeaning
_PRODUCT_SIGNATURES = {M.AUTHORSHIP: A.WRITE_PRODUCT, M.REVIEW: A.WRITE_PRODUCT, M.VERIFICATION: A.WRITE_PRODUCT,
                       # EU GMP Annex 16 §1.5: only a qualified person certifies a batch;
                       # approving a release, or taking responsibility for it, is that act.
                       M.APPROVAL: A.RELEASE_PRODUCT, M.RESPONSIBILITY: A.RELEASE_PRODUCT}
SIGNING: Mapping[str, Mapping[SignatureMeaning, Action]] = {
    "manufacturing.ProductReleased": _PRODUCT_SIGNATURES,
    # QC results: their analyst's authorship, a reviewer's review (EU GMP Part I 6.17)
    "manufacturing.QcResultsRecorded": {M.AUTHORSHIP: A.WRITE_PRODUCT, M.REVIEW: A.WRITE_PRODUCT,
                                        M.VERIFICATION: A.WRITE_PRODUCT},
    # EU GMP Part IV 11.5: the manufacturer's risk assessment of an out-of-specification
    # product, which its QP authors and the treating physician accepts (approval), the
    # acceptance being what allows the exceptional release
    "manufacturing.OosRiskAssessed": {M.AUTHORSHIP: A.RELEASE_PRODUCT, M.APPROVAL: A.ACCEPT_EXCEPTIONAL_RELEASE},
    # collected at the centre: its staff verify the bag's label and the collection
    "manufacturing.ApheresisCollected": {M.AUTHORSHIP: A.WRITE_SUBJECT, M.VERIFICATION: A.WRITE_SUBJECT},
}
# Infusion and assessment records join the table with their services' signing routes, once
# those services know a subject's centre (they keep no local view of enrolments yet).


@dataclass(frozen=True)
class SigningDecision:
    allowed: bool
    reason: str
    code: str = ""  # why not, as the refusal's code
    membership: Membership | None = None  # the role the signer signs in, when allowed


def decide_signature(principal: Principal, record_type: str, meaning: SignatureMeaning,
                     resource: Resource) -> SigningDecision:
    """May `principal` sign a `record_type` record of `resource` with `meaning`? Only a person
    signs (21 CFR 11.100(a): an electronic signature is unique to one individual), only a
    record type with that meaning in SIGNING, and only with a role whose grant of the action
    SIGNING names reaches the record."""
    if principal.kind is not PrincipalKind.PERSON:
        return SigningDecision(False, f"{principal.principal_id} is a system: only a person signs "
                                      f"(21 CFR 11.100(a))", "SIGNER_NOT_A_PERSON")
    action = SIGNING.get(record_type, {}).get(meaning)
    if action is None:
        allowed = ", ".join(m.value for m in SIGNING.get(record_type, {})) or "none"
        return SigningDecision(False, f"a {record_type} record is not signed with the meaning {meaning.value} "
                                      f"(meanings it takes: {allowed})", "MEANING_NOT_APPLICABLE")
    decision = decide(principal, action, resource)
    if not decision.allowed:
        return SigningDecision(False, f"signing a {record_type} as {meaning.value} needs {action}: "
                                      f"{decision.reason}", "SIGNER_NOT_AUTHORISED")
    membership = next(m for m in principal.memberships
                      if (rule := POLICY.get(m.role)) is not None and held_where_it_may_be(m.role, m.org_kind)
                      and action in rule.actions and reaches(rule.scope, m, resource))
    return SigningDecision(True, decision.reason, membership=membership)
