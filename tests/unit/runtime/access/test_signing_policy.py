"""Who may sign which record with which meaning (21 CFR 11.10(g), 11.100(a); EU GMP Annex 16
§1): a table test over the signing rules of the policy, expectations written from the sources."""

from __future__ import annotations

import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.events import SignatureMeaning
from infra.runtime.access.policy import Resource, decide_signature
from infra.runtime.access.principals import Membership, Principal

M = SignatureMeaning
RELEASE, COLLECTION = "manufacturing.ProductReleased", "manufacturing.ApheresisCollected"
PRODUCT = Resource(centre_id="CTR-BG", facility_id="FAC-1")


def person(role: Role, org: str, kind: OrgKind) -> Principal:
    return Principal("p", PrincipalKind.PERSON, "P. Person", (Membership(org, kind, role),))


QP = person(Role.QUALIFIED_PERSON, "FAC-1", OrgKind.FACILITY)
QP_ELSEWHERE = person(Role.QUALIFIED_PERSON, "FAC-2", OrgKind.FACILITY)
QC = person(Role.QC_ANALYST, "FAC-1", OrgKind.FACILITY)
NURSE = person(Role.NURSE, "CTR-BG", OrgKind.CENTRE)
ADMIN = person(Role.ADMINISTRATOR, "NETWORK", OrgKind.NETWORK)


@pytest.mark.parametrize("signer, record, meaning, allowed, code", [
    # EU GMP Annex 16 §1: the QP of the releasing facility certifies (approves) the batch
    (QP, RELEASE, M.APPROVAL, True, ""),
    (QP, RELEASE, M.RESPONSIBILITY, True, ""),
    (QP_ELSEWHERE, RELEASE, M.APPROVAL, False, "SIGNER_NOT_AUTHORISED"),
    (QC, RELEASE, M.APPROVAL, False, "SIGNER_NOT_AUTHORISED"),
    (QC, RELEASE, M.REVIEW, True, ""),  # facility staff review and verify its records
    (NURSE, RELEASE, M.APPROVAL, False, "SIGNER_NOT_AUTHORISED"),
    (ADMIN, RELEASE, M.APPROVAL, False, "SIGNER_NOT_AUTHORISED"),  # administration is no GMP role
    (NURSE, COLLECTION, M.VERIFICATION, True, ""),  # collected at the nurse's centre
    (NURSE, COLLECTION, M.APPROVAL, False, "MEANING_NOT_APPLICABLE"),
    (QP, "common.CommandRejected", M.APPROVAL, False, "MEANING_NOT_APPLICABLE"),  # not a signable record
])
def test_who_signs_what(signer, record, meaning, allowed, code) -> None:
    decision = decide_signature(signer, record, meaning, PRODUCT)
    assert (decision.allowed, decision.code) == (allowed, code), decision.reason


def test_the_role_signed_in_is_the_membership_that_grants_it() -> None:
    both = Principal("p", PrincipalKind.PERSON, "P. Person", (Membership("CTR-BG", OrgKind.CENTRE, Role.COURIER),
                                                              Membership("FAC-1", OrgKind.FACILITY,
                                                                         Role.QUALIFIED_PERSON)))
    assert decide_signature(both, RELEASE, M.APPROVAL, PRODUCT).membership.role is Role.QUALIFIED_PERSON


def test_a_system_never_signs_whatever_its_roles() -> None:  # 21 CFR 11.100(a)
    system = Principal("mes", PrincipalKind.SYSTEM, "FAC-1 MES", QP.memberships)
    decision = decide_signature(system, RELEASE, M.REVIEW, PRODUCT)
    assert (decision.allowed, decision.code) == (False, "SIGNER_NOT_A_PERSON")


def test_a_release_naming_no_facility_cannot_be_approved() -> None:
    decision = decide_signature(QP, RELEASE, M.APPROVAL, Resource(centre_id="CTR-BG"))
    assert not decision.allowed and "release_product" in decision.reason
