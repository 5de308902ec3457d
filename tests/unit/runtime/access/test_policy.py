"""The authorisation policy as a table test: every role x every action x a resource of its
own organisation, of another, of both mixed, and of the network. The expectations are
written here from the sources, apart from the policy's own table, each row citing its rule."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access.policy import POLICY, Action, Resource, decide, decide_anywhere, held_where_it_may_be
from infra.runtime.access.principals import Membership, Principal

A = Action
OWN_CENTRE, OWN_FACILITY, NET = "CTR-OWN", "FAC-OWN", "NETWORK"

# Resources by whose they are: (centre, facility).
RESOURCES = {
    "own centre, own facility": Resource(centre_id=OWN_CENTRE, facility_id=OWN_FACILITY),
    "own centre, other facility": Resource(centre_id=OWN_CENTRE, facility_id="FAC-OTHER"),
    "other centre, own facility": Resource(centre_id="CTR-OTHER", facility_id=OWN_FACILITY),
    "other centre, other facility": Resource(centre_id="CTR-OTHER", facility_id="FAC-OTHER"),
    "the network's": Resource(),
}
# Which resources each reach reaches.
REACH = {
    "own centre": {"own centre, own facility", "own centre, other facility"},
    "own facility": {"own centre, own facility", "other centre, own facility"},
    "network": set(RESOURCES),
}


@dataclass(frozen=True)
class Row:
    role: Role
    held_at: OrgKind
    allowed: frozenset[Action]
    reach: str
    source: str


CENTRE_SOURCE = "issue 8 item 3: centre staff read and write only their own centre's subjects"
FACILITY_SOURCE = "issue 8 item 3: a facility sees only the products it manufactures and never a patient identifier"
ROWS = [
    Row(Role.PHYSICIAN, OrgKind.CENTRE, frozenset({A.READ_SUBJECT, A.WRITE_SUBJECT, A.READ_IDENTIFIERS,
                                                   A.READ_PRODUCT, A.READ_REPORT, A.ERASE_IDENTIFIERS, A.RECORD_CUSTODY,
                                                   A.VERIFY_AT_BEDSIDE, A.ACCEPT_EXCEPTIONAL_RELEASE, A.PRESCRIBE}),
        "own centre", CENTRE_SOURCE + "; GDPR Art. 17: the controller (the centre) erases; issue 9: custody of units; "
                                      "EU GMP Part IV 11.5: the treating physician accepts an out-of-specification "
                                      "product; FACT-JACIE B7: the attending physician prescribes"),
    Row(Role.NURSE, OrgKind.CENTRE, frozenset({A.READ_SUBJECT, A.WRITE_SUBJECT, A.READ_IDENTIFIERS, A.READ_PRODUCT,
                                               A.RECORD_CUSTODY, A.VERIFY_AT_BEDSIDE}),
        "own centre", CENTRE_SOURCE),
    Row(Role.DATA_MANAGER, OrgKind.CENTRE, frozenset({A.READ_SUBJECT, A.WRITE_SUBJECT, A.READ_IDENTIFIERS,
                                                      A.READ_PRODUCT, A.READ_REPORT, A.ERASE_IDENTIFIERS}),
        "own centre", CENTRE_SOURCE + "; GDPR Art. 17: the controller (the centre) erases"),
    Row(Role.QUALIFIED_PERSON, OrgKind.FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RELEASE_PRODUCT,
                                                         A.RECORD_CUSTODY}),
        "own facility", FACILITY_SOURCE + "; EU GMP Annex 16 §1: the QP certifies release"),
    Row(Role.QC_ANALYST, OrgKind.FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RECORD_CUSTODY}), "own facility",
        FACILITY_SOURCE),
    Row(Role.OPERATOR, OrgKind.FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RECORD_CUSTODY}), "own facility",
        FACILITY_SOURCE),
    Row(Role.FACILITY_SYSTEM, OrgKind.FACILITY, frozenset({A.READ_PRODUCT, A.WRITE_PRODUCT, A.RECORD_CUSTODY}), "own facility",
        FACILITY_SOURCE),
    Row(Role.COURIER, OrgKind.CENTRE, frozenset({A.READ_PRODUCT, A.RECORD_CUSTODY}), "own centre",
        "issue 8 item 1: a courier carries the products of the organisation it serves (here a centre)"),
    Row(Role.COURIER, OrgKind.FACILITY, frozenset({A.READ_PRODUCT, A.RECORD_CUSTODY}), "own facility",
        "issue 8 item 1: a courier carries the products of the organisation it serves (here a facility)"),
    Row(Role.NETWORK_OPERATOR, OrgKind.NETWORK, frozenset({A.READ_SUBJECT, A.READ_PRODUCT, A.READ_REPORT,
                                                           A.READ_STATUS}),
        "network", "issue 8 item 3: the network operator reads across centres with identifiers removed; "
                   "Annex 11 §12.1: the system's status for who runs it"),
    Row(Role.AUDITOR, OrgKind.NETWORK, frozenset({A.READ_AUDIT}), "network",
        "issue 8 item 3: the auditor reads the audit trail"),
    Row(Role.ADMINISTRATOR, OrgKind.NETWORK, frozenset({A.READ_AUDIT, A.ADMIN_REBUILD, A.ADMIN_REPUBLISH,
                                                        A.REPLAY_DEAD_LETTERS, A.MANAGE_PRINCIPALS, A.REGISTER_CENTRE, A.READ_STATUS,
                                                        A.ERASE_IDENTIFIERS, A.MANAGE_PROGRAMMES}), "network",
        "issue 8 items 3 and 7: rebuild and republish need an administrator; Annex 11 §12.3 (who manages "
        "access manages the organisations it is granted at); Annex 11 §12.1 (status); GDPR Art. 17 (erasure "
        "at the centre's request); issue 12 item 3 (dead letters sent back after a fix)"),
    Row(Role.DATA_LOADER, OrgKind.NETWORK, frozenset({A.REGISTER_CENTRE, A.WRITE_SUBJECT, A.WRITE_PRODUCT,
                                                      A.RELEASE_PRODUCT, A.RECORD_CUSTODY, A.MANAGE_PROGRAMMES,
                                                      A.PRESCRIBE}),
        "network",
        "issue 8 items 1 and 9: the CLI (a system) loads the demo and seed scenarios for every centre; "
        "Annex 11 §4.8: records made elsewhere are transferred unaltered"),
    Row(Role.OUTCOME_CONSUMER, OrgKind.NETWORK, frozenset({A.READ_REPORT}), "network",
        "issue 8 item 1: an outcome consumer reads the aggregated endpoints"),
]
ORG_OF_KIND = {OrgKind.CENTRE: OWN_CENTRE, OrgKind.FACILITY: OWN_FACILITY, OrgKind.NETWORK: NET}


def holding(role: Role, kind: OrgKind, org_id: str | None = None) -> Principal:
    return Principal("p-1", PrincipalKind.PERSON, "P One", (Membership(org_id or ORG_OF_KIND[kind], kind, role),))


CASES = [pytest.param(row, action, where, id=f"{row.role}@{row.held_at}-{action}-{where}")
         for row in ROWS for action in Action for where in RESOURCES]


class TestTheTable:
    @pytest.mark.parametrize(("row", "action", "where"), CASES)
    def test_a_role_may_do_what_its_rule_grants_where_its_rule_reaches_and_nothing_else(
            self, row: Row, action: Action, where: str) -> None:
        expected = action in row.allowed and where in REACH[row.reach]
        decision = decide(holding(row.role, row.held_at), action, RESOURCES[where])
        assert decision.allowed is expected, f"{row.source}: {decision.reason}"

    def test_every_role_has_a_row_here_and_a_rule_in_the_policy(self) -> None:
        assert {r.role for r in ROWS} == set(Role) == set(POLICY)

    @pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.role}@{r.held_at}")
    def test_a_role_is_held_only_at_its_kind_of_organisation(self, row: Row) -> None:
        assert held_where_it_may_be(row.role, row.held_at)
        if row.role is not Role.COURIER:
            assert [k for k in OrgKind if held_where_it_may_be(row.role, k)] == [row.held_at]


class TestInvariantsOfItem3:
    """Issue 8 item 3, stated over the whole table rather than row by row."""

    @pytest.mark.parametrize("role", [r for r in Role if not POLICY[r].held_at & {OrgKind.CENTRE}])
    def test_only_centre_staff_ever_see_a_patient_identifier(self, role: Role) -> None:
        assert Action.READ_IDENTIFIERS not in POLICY[role].actions

    def test_rebuild_republish_and_replaying_dead_letters_need_an_administrator(self) -> None:
        for action in (Action.ADMIN_REBUILD, Action.ADMIN_REPUBLISH, Action.REPLAY_DEAD_LETTERS):
            assert [r for r in Role if action in POLICY[r].actions] == [Role.ADMINISTRATOR]

    def test_only_a_qualified_person_releases_a_product(self) -> None:
        # ... and the loader, which records a release a QP certified in the facility's own system
        assert [r for r in Role if Action.RELEASE_PRODUCT in POLICY[r].actions] == [Role.QUALIFIED_PERSON,
                                                                                    Role.DATA_LOADER]

    def test_no_facility_role_reads_a_subject(self) -> None:
        for role in Role:
            if POLICY[role].held_at == {OrgKind.FACILITY}:
                assert Action.READ_SUBJECT not in POLICY[role].actions, role


class TestDecideAnywhere:
    """A listing asks first whether the action is granted anywhere, then decides each item."""

    @pytest.mark.parametrize(("row", "action"), [pytest.param(r, a, id=f"{r.role}@{r.held_at}-{a}")
                                                 for r in ROWS for a in Action])
    def test_an_action_is_granted_somewhere_exactly_when_the_role_is_allowed_it(self, row: Row, action: Action):
        assert decide_anywhere(holding(row.role, row.held_at), action).allowed is (action in row.allowed), row.source

    def test_a_role_held_at_the_wrong_kind_of_organisation_grants_nothing_anywhere(self) -> None:
        assert not decide_anywhere(holding(Role.PHYSICIAN, OrgKind.FACILITY), Action.READ_SUBJECT).allowed


class TestDecide:
    def test_a_principal_with_no_membership_may_do_nothing(self) -> None:
        nobody = Principal("p-0", PrincipalKind.PERSON, "No One")
        decision = decide(nobody, Action.READ_SUBJECT, RESOURCES["own centre, own facility"])
        assert not decision.allowed and decision.reason == "no role of p-0 grants read_subject"

    def test_a_role_held_at_the_wrong_kind_of_organisation_grants_nothing(self) -> None:
        physician_at_a_facility = holding(Role.PHYSICIAN, OrgKind.FACILITY, org_id=OWN_CENTRE)
        assert not decide(physician_at_a_facility, Action.READ_SUBJECT, RESOURCES["own centre, own facility"]).allowed

    def test_staff_of_two_centres_read_the_subjects_of_both_and_of_no_third(self) -> None:
        both = Principal("p-2", PrincipalKind.PERSON, "P Two", (
            Membership("CTR-A", OrgKind.CENTRE, Role.NURSE), Membership("CTR-B", OrgKind.CENTRE, Role.NURSE)))
        assert decide(both, Action.READ_SUBJECT, Resource(centre_id="CTR-A")).allowed
        assert decide(both, Action.READ_SUBJECT, Resource(centre_id="CTR-B")).allowed
        assert not decide(both, Action.READ_SUBJECT, Resource(centre_id="CTR-C")).allowed

    def test_the_reasons_name_the_role_the_organisation_and_whose_the_resource_is(self) -> None:
        nurse = holding(Role.NURSE, OrgKind.CENTRE)
        allowed = decide(nurse, Action.READ_SUBJECT, Resource(centre_id=OWN_CENTRE))
        refused = decide(nurse, Action.READ_SUBJECT, Resource(centre_id="CTR-OTHER"))
        assert allowed.reason.startswith("nurse at CTR-OWN may read_subject (own_centre;")
        assert refused.reason == ("p-1 may read_subject only as nurse at CTR-OWN (own_centre), "
                                  "not for a resource of centre CTR-OTHER")
