"""The record of every request the HTTP edge refused (`access.refusals`, migration 0007).

Why here and not as events in the service's store: a refusal at the edge (401, 403) often
has no authenticated actor and changes nothing of the service's state, and an event
store's payloads are facts of its own context, published on its topic; an anonymous caller
could otherwise fill every topic. One append-only table across services lets an auditor
list every refusal by principal, subject or centre in one query (`celltrail access
refusals`, and the audit trail of issue 8 item 7). Commands refused on a topic are still
recorded as `common.CommandRejected` events by the service that refused them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, fields, replace
from typing import Any

import asyncpg
from starlette.datastructures import Headers

from infra.runtime.access.http import API_KEY_HEADER


def credential_presented(headers: Headers) -> str:
    """The kind of credential a request carried, whatever its validity: what a 401 records
    in place of a principal."""
    authorization, api_key = headers.get("authorization"), headers.get(API_KEY_HEADER)
    if authorization and api_key:
        return "both"
    if api_key:
        return "api_key"
    if authorization:
        return "bearer" if authorization.partition(" ")[0].lower() == "bearer" else "malformed"
    return "none"


@dataclass(frozen=True)
class Refusal:
    service: str
    method: str
    route: str  # the declared path, e.g. /subjects/{subject_id}
    path: str  # the path requested
    status: int
    code: str
    reason: str
    principal_id: str | None  # None: not authenticated ("anonymous")
    credential: str  # none | bearer | api_key | both | malformed
    subject_id: str | None = None
    centre_id: str | None = None
    facility_id: str | None = None


def printable(text: str, limit: int = 4000) -> str:
    """`text` as it can be stored and read: each control character (but tab and line feed)
    and half of a surrogate pair written as its escape (`\\x00`, `\\ud800`), at most `limit`
    characters. What a refused request said is recorded, whatever it held: PostgreSQL takes
    no NUL in text (issue 12 item 6)."""
    out = "".join(ch if ch in "\t\n" or unicodedata.category(ch) not in ("Cc", "Cs")
                  else ascii(ch)[1:-1] for ch in text)
    return out if len(out) <= limit else out[:limit - 1] + "…"


def _printable(r: Refusal) -> Refusal:
    return replace(r, **{f.name: printable(v) for f in fields(r) if isinstance(v := getattr(r, f.name), str)})


class PgRefusals:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def record(self, r: Refusal) -> None:
        r = _printable(r)
        await self.conn.execute(
            "INSERT INTO access.refusals (service, method, route, path, status, code, reason, principal_id,"
            " credential, subject_id, centre_id, facility_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            r.service, r.method, r.route, r.path, r.status, r.code, r.reason, r.principal_id, r.credential,
            r.subject_id, r.centre_id, r.facility_id)

    async def listing(self, *, subject_id: str | None = None, principal_id: str | None = None,
                      centre_id: str | None = None) -> list[dict[str, Any]]:
        """Refusals in the order they were recorded, those matching every filter given."""
        rows = await self.conn.fetch(
            "SELECT * FROM access.refusals WHERE ($1::text IS NULL OR subject_id = $1)"
            " AND ($2::text IS NULL OR principal_id = $2) AND ($3::text IS NULL OR centre_id = $3)"
            " ORDER BY position", subject_id, principal_id, centre_id)
        return [{**dict(r), "recorded_at": r["recorded_at"].isoformat()} for r in rows]
