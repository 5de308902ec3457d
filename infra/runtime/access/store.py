"""The `access` schema (migration 0006) on asyncpg: who the principals are, where they hold
which roles, their credentials' hashes, and the append-only audit of every change.

Every change runs in one transaction with its audit row (EU GMP Annex 11 §12.3; 21 CFR
11.10(e)): the row names who made the change, what it was and when. The audit table's
triggers refuse UPDATE, DELETE and TRUNCATE, as the event tables' do.
"""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access.policy import held_where_it_may_be
from infra.runtime.access.principals import ORG_ID, PRINCIPAL_ID, Membership, Principal

FIN = re.compile(r"^[A-Z][0-9]{4}$")  # ISBT 128 facility identification number (migration 0009)


class AccessChangeRefused(ValueError):
    """A change to principals, organisations, roles or credentials that cannot be made; the
    message says why."""


def password_credential_id(principal_id: str) -> str:
    return f"password:{principal_id}"


class PgAccessStore:
    """On a caller's connection; each change method runs in its own transaction (nested as a
    savepoint when the caller holds one)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # -- reading -----------------------------------------------------------------------

    async def principal(self, principal_id: str) -> Principal | None:
        """The principal with its memberships, or None when unknown or disabled."""
        row = await self.conn.fetchrow(
            "SELECT principal_id, kind, printed_name FROM access.principals"
            " WHERE principal_id = $1 AND NOT disabled", principal_id)
        if row is None:
            return None
        rows = await self.conn.fetch(
            "SELECT m.org_id, o.kind, m.role FROM access.memberships m JOIN access.organisations o USING (org_id)"
            " WHERE m.principal_id = $1 ORDER BY m.org_id, m.role", principal_id)
        memberships = tuple(Membership(r["org_id"], OrgKind(r["kind"]), Role(r["role"])) for r in rows)
        return Principal(row["principal_id"], PrincipalKind(row["kind"]), row["printed_name"], memberships)

    async def api_key(self, key_id: str) -> tuple[str, str] | None:
        """(principal id, hash) of an enabled API key, looked up by its id."""
        row = await self.conn.fetchrow(
            "SELECT principal_id, secret_hash FROM access.credentials"
            " WHERE credential_id = $1 AND kind = 'api_key' AND NOT disabled", key_id)
        return (row["principal_id"], row["secret_hash"]) if row else None

    async def password_hash(self, principal_id: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT secret_hash FROM access.credentials WHERE credential_id = $1 AND NOT disabled",
            password_credential_id(principal_id))

    async def listing(self) -> dict[str, list[dict[str, Any]]]:
        """Organisations, principals with their roles, and credentials (ids and state, never
        hashes)."""
        orgs = await self.conn.fetch("SELECT org_id, kind, name, fin FROM access.organisations ORDER BY org_id")
        principals = await self.conn.fetch(
            "SELECT p.principal_id, p.kind, p.printed_name, p.disabled,"
            " coalesce(json_agg(json_build_object('org', m.org_id, 'role', m.role) ORDER BY m.org_id, m.role)"
            "   FILTER (WHERE m.org_id IS NOT NULL), '[]') AS roles"
            " FROM access.principals p LEFT JOIN access.memberships m USING (principal_id)"
            " GROUP BY p.principal_id ORDER BY p.principal_id")
        creds = await self.conn.fetch(
            "SELECT credential_id, principal_id, kind, disabled, created_at FROM access.credentials"
            " ORDER BY principal_id, created_at")
        return {
            "organisations": [dict(r) for r in orgs],
            "principals": [{**dict(r), "roles": json.loads(r["roles"])} for r in principals],
            "credentials": [{**dict(r), "created_at": r["created_at"].isoformat()} for r in creds],
        }

    async def audit(self) -> list[dict[str, Any]]:
        rows = await self.conn.fetch("SELECT * FROM access.audit_log ORDER BY position")
        return [{**dict(r), "recorded_at": r["recorded_at"].isoformat(), "detail": json.loads(r["detail"])}
                for r in rows]

    # -- changing ----------------------------------------------------------------------

    async def add_organisation(self, org_id: str, kind: OrgKind, name: str, *, actor: str,
                               fin: str | None = None) -> None:
        """`fin`: its ISBT 128 facility identification number, if it has one (issue 9)."""
        if not ORG_ID.match(org_id):
            raise AccessChangeRefused(f"organisation id {org_id!r} must match {ORG_ID.pattern}")
        if not name.strip():
            raise AccessChangeRefused("an organisation needs a name")
        if fin is not None and not FIN.match(fin):
            raise AccessChangeRefused(f"facility identification number {fin!r} must be one letter and four digits "
                                      "(ISBT 128, e.g. G1234)")
        async with self.conn.transaction():
            try:
                done = await self.conn.fetchval(
                    "INSERT INTO access.organisations (org_id, kind, name, fin) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT (org_id) DO NOTHING RETURNING 1", org_id, kind.value, name, fin)
            except asyncpg.UniqueViolationError:  # the FIN's unique constraint (migration 0009)
                raise AccessChangeRefused(
                    f"facility identification number {fin} belongs to another organisation") from None
            if not done:
                raise AccessChangeRefused(f"organisation {org_id} exists already")
            await self._audit(actor, "organisation_added", org_id=org_id, kind=kind.value, name=name, fin=fin)

    async def fin_of(self, org_id: str) -> str | None:
        """The organisation's ISBT 128 facility identification number, None if it has none."""
        return await self.conn.fetchval("SELECT fin FROM access.organisations WHERE org_id = $1", org_id)

    async def add_principal(self, principal_id: str, kind: PrincipalKind, printed_name: str, *, actor: str) -> None:
        if not PRINCIPAL_ID.match(principal_id):
            raise AccessChangeRefused(f"principal id {principal_id!r} must match {PRINCIPAL_ID.pattern}")
        if not printed_name.strip():
            raise AccessChangeRefused("a principal needs a printed name (21 CFR 11.50(a)(1))")
        async with self.conn.transaction():
            done = await self.conn.fetchval(
                "INSERT INTO access.principals (principal_id, kind, printed_name) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING 1", principal_id, kind.value, printed_name)
            if not done:
                raise AccessChangeRefused(f"principal {principal_id} exists already")
            await self._audit(actor, "principal_added", principal_id=principal_id, kind=kind.value,
                              printed_name=printed_name)

    async def grant(self, principal_id: str, org_id: str, role: Role, *, actor: str) -> None:
        async with self.conn.transaction():
            await self._principal_kind(principal_id)
            org_kind = await self.conn.fetchval("SELECT kind FROM access.organisations WHERE org_id = $1", org_id)
            if org_kind is None:
                raise AccessChangeRefused(f"no organisation {org_id}")
            if not held_where_it_may_be(role, OrgKind(org_kind)):
                raise AccessChangeRefused(f"the role {role} is not held at a {org_kind} ({org_id})")
            done = await self.conn.fetchval(
                "INSERT INTO access.memberships (principal_id, org_id, role) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING RETURNING 1", principal_id, org_id, role.value)
            if not done:
                raise AccessChangeRefused(f"{principal_id} holds {role} at {org_id} already")
            await self._audit(actor, "role_granted", principal_id=principal_id, org_id=org_id, role=role.value)

    async def revoke(self, principal_id: str, org_id: str, role: Role, *, actor: str) -> None:
        async with self.conn.transaction():
            done = await self.conn.fetchval(
                "DELETE FROM access.memberships WHERE principal_id = $1 AND org_id = $2 AND role = $3 RETURNING 1",
                principal_id, org_id, role.value)
            if not done:
                raise AccessChangeRefused(f"{principal_id} does not hold {role} at {org_id}")
            await self._audit(actor, "role_revoked", principal_id=principal_id, org_id=org_id, role=role.value)

    async def set_password(self, principal_id: str, password_hash: str, *, actor: str) -> None:
        """A person's password (replacing any earlier one); systems use API keys."""
        async with self.conn.transaction():
            if await self._principal_kind(principal_id) is not PrincipalKind.PERSON:
                raise AccessChangeRefused(f"{principal_id} is a system: systems use API keys, not passwords")
            await self.conn.execute(
                "INSERT INTO access.credentials (credential_id, principal_id, kind, secret_hash)"
                " VALUES ($1, $2, 'password', $3) ON CONFLICT (credential_id) DO UPDATE"
                " SET secret_hash = excluded.secret_hash, disabled = false, disabled_at = NULL,"
                " created_at = clock_timestamp()", password_credential_id(principal_id), principal_id, password_hash)
            await self._audit(actor, "password_set", principal_id=principal_id)

    async def add_api_key(self, principal_id: str, key_id: str, key_hash: str, *, actor: str) -> None:
        async with self.conn.transaction():
            if await self._principal_kind(principal_id) is not PrincipalKind.SYSTEM:
                raise AccessChangeRefused(f"{principal_id} is a person: people sign in with a password, "
                                          f"API keys are for systems")
            await self.conn.execute(
                "INSERT INTO access.credentials (credential_id, principal_id, kind, secret_hash)"
                " VALUES ($1, $2, 'api_key', $3)", key_id, principal_id, key_hash)
            await self._audit(actor, "api_key_issued", principal_id=principal_id, key_id=key_id)

    async def disable_api_key(self, key_id: str, *, actor: str) -> None:
        async with self.conn.transaction():
            principal_id = await self.conn.fetchval(
                "UPDATE access.credentials SET disabled = true, disabled_at = clock_timestamp()"
                " WHERE credential_id = $1 AND kind = 'api_key' AND NOT disabled RETURNING principal_id", key_id)
            if principal_id is None:
                raise AccessChangeRefused(f"no enabled API key {key_id}")
            await self._audit(actor, "api_key_disabled", principal_id=principal_id, key_id=key_id)

    async def disable_principal(self, principal_id: str, *, actor: str) -> None:
        """No credential of a disabled principal is accepted; its history stays."""
        async with self.conn.transaction():
            done = await self.conn.fetchval(
                "UPDATE access.principals SET disabled = true WHERE principal_id = $1 AND NOT disabled RETURNING 1",
                principal_id)
            if not done:
                raise AccessChangeRefused(f"no enabled principal {principal_id}")
            await self._audit(actor, "principal_disabled", principal_id=principal_id)

    async def record_sign_in(self, principal_id: str, *, how: str, token_id: str | None, refused: str | None) -> None:
        """A token issued, or refused and why: sign-ins are part of the access record."""
        if refused is None:
            await self._audit(principal_id, "token_issued", principal_id=principal_id, how=how, jti=token_id)
        else:
            await self._audit(principal_id, "sign_in_refused", principal_id=principal_id, how=how, reason=refused)

    async def record_signing_authentication(self, principal_id: str, *, service: str, record_event_id: str,
                                            refused: str | None) -> None:
        """The password check a signature asks (21 CFR 11.200(a)), passed or refused: every
        attempt is kept, so attempts at unauthorised use of a password can be found and
        reported (11.300(d))."""
        change = "signing_password_refused" if refused else "signing_password_checked"
        detail = {"service": service, "record_event_id": record_event_id} | ({"reason": refused} if refused else {})
        await self._audit(principal_id, change, principal_id=principal_id, **detail)

    async def record_audit_read(self, principal_id: str, *, query: dict[str, Any]) -> None:
        """Who read the audit trail, and for what (EU GMP Annex 11 §12.4)."""
        await self._audit(principal_id, "audit_trail_read", principal_id=principal_id, **query)

    async def record_dead_letter_replay(self, principal_id: str, **detail: Any) -> None:
        """Who sent which dead letter back to its source topic, and where it went
        (`celltrail deadletters replay`, docs/operations.md)."""
        await self._audit(principal_id, "dead_letter_replayed", principal_id=principal_id, **detail)

    async def _principal_kind(self, principal_id: str) -> PrincipalKind:
        kind = await self.conn.fetchval("SELECT kind FROM access.principals WHERE principal_id = $1", principal_id)
        if kind is None:
            raise AccessChangeRefused(f"no principal {principal_id}")
        return PrincipalKind(kind)

    async def _audit(self, actor: str, change: str, *, principal_id: str | None = None, org_id: str | None = None,
                     **detail: Any) -> None:
        await self.conn.execute(
            "INSERT INTO access.audit_log (actor, change, principal_id, org_id, detail) VALUES ($1, $2, $3, $4, $5)",
            actor, change, principal_id, org_id, json.dumps(detail))
