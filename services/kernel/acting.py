"""Who a command is applied for, as a command handler sees it: the authenticated principal
the command guard admitted (infra/runtime/access/commands.py), with the roles it holds at
each organisation. A handler that must record the role and organisation an action was
taken in (a custody step, issue 9) names the dependency `principal`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts.access import OrgKind, Role


class Membership(Protocol):
    org_id: str
    org_kind: OrgKind
    role: Role


class ActingPrincipal(Protocol):
    principal_id: str
    memberships: Sequence[Membership]


def roles_for(principal: ActingPrincipal | None, org_id: str) -> set[Role]:
    """The roles `principal` may act in for `org_id`: those held at it, and those held at the
    network, whose grants reach every organisation (the policy decided that they may act
    at all; the handler decides in which role the action is recorded)."""
    if principal is None:
        return set()
    return {m.role for m in principal.memberships
            if m.org_id == org_id or m.org_kind is OrgKind.NETWORK}


def imports_records(principal: ActingPrincipal | None) -> bool:
    """Whether `principal` submits records made and certified elsewhere (the CLI's data
    loader: a migration, the demo and seed scenarios; access policy, Role.DATA_LOADER), not
    acts of its own. Only such an import may carry a product recorded without labelled units,
    released and infused by its COI alone, as records were before issue 9; a person acting
    now labels units, signs the release and checks the bag at the bedside."""
    return principal is not None and any(m.role is Role.DATA_LOADER and m.org_kind is OrgKind.NETWORK
                                         for m in principal.memberships)
