"""Principals and their memberships: plain data, no I/O.

A principal is a person or a system; it belongs to one or more organisations and holds
roles there (one Membership per organisation and role)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from contracts.access import OrgKind, PrincipalKind, Role
from contracts.ids import PRINCIPAL_ID_PATTERN

# Principal ids travel as the `sub` of tokens and as the `actor` of events: one pattern,
# the contract's (contracts.ids.PrincipalId).
PRINCIPAL_ID = re.compile(PRINCIPAL_ID_PATTERN)
ORG_ID = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")  # as contracts.ids.CentreId


@dataclass(frozen=True)
class Membership:
    org_id: str
    org_kind: OrgKind
    role: Role

    def to_json(self) -> dict[str, str]:
        return {"org": self.org_id, "kind": self.org_kind.value, "role": self.role.value}


@dataclass(frozen=True)
class Principal:
    principal_id: str
    kind: PrincipalKind
    printed_name: str  # as it appears on a signature (21 CFR 11.50(a)(1))
    memberships: tuple[Membership, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {"principal_id": self.principal_id, "kind": self.kind.value, "printed_name": self.printed_name,
                "memberships": [m.to_json() for m in self.memberships]}
