"""Principals for tests: made in the real `access` schema, and tokens for them from a key of
the test's own."""

from __future__ import annotations

import asyncpg

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access.principals import Membership, Principal
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import TokenIssuer, generate_signing_key, public_key_pem

KEY = generate_signing_key()
PUBLIC_KEY = public_key_pem(KEY)


def principal(principal_id: str, *memberships: tuple[str, OrgKind, Role],
              kind: PrincipalKind = PrincipalKind.PERSON) -> Principal:
    return Principal(principal_id, kind, principal_id.replace(".", " ").title(),
                     tuple(Membership(org, org_kind, role) for org, org_kind, role in memberships))


async def provisioned(conn: asyncpg.Connection, *principals: Principal) -> None:
    """Each principal with its memberships, their organisations made where missing."""
    store = PgAccessStore(conn)
    for p in principals:
        for m in p.memberships:
            if not await conn.fetchval("SELECT 1 FROM access.organisations WHERE org_id = $1", m.org_id):
                await store.add_organisation(m.org_id, m.org_kind, m.org_id, actor="test")
        await store.add_principal(p.principal_id, p.kind, p.printed_name, actor="test")
        for m in p.memberships:
            await store.grant(p.principal_id, m.org_id, m.role, actor="test")


def token(p: Principal, key: str = KEY) -> str:
    return TokenIssuer(key).issue(p).token


def bearer(p: Principal, key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(p, key)}"}


ADMIN = principal("admin.test", ("NETWORK", OrgKind.NETWORK, Role.ADMINISTRATOR), kind=PrincipalKind.SYSTEM)
