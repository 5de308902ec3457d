"""`celltrail audit`: who did what, when, in which role and why, for one subject or one
chain of identity (issue 8 item 7; 21 CFR 11.10(e); EU GMP Annex 11 §9).

Read straight from every service's store, in one read-only snapshot, as `celltrail verify`
does: the stores are the record, the read models only derived from them. Every event about
the subject (or naming the COI) is one entry:
- a record (what the service recorded, by whom), with the signatures it carries (21 CFR
  11.50(b): printed name, UTC time and meaning shown with the signed record);
- a refusal: a command refused by a service (`common.CommandRejected`: the command, its code
  and reason), or a request refused at the HTTP edge (a row of `access.refusals`, written by
  `infra.runtime.edge` for every 401, 403 and domain refusal: method, path, status, code,
  reason, and the principal or the kind of credential presented);
- a correction (`assessment.ResponseAssessmentCorrected`, with its reason and the events it
  supersedes: those of the same subject and date recorded before it; EU GMP Annex 11 §9);
- a signature (`common.RecordSigned`: signer, printed name, role, meaning, the record and
  the hash it is bound to).
The role: a signature records the role it was made in; other events do not record one yet,
so the actor's roles held now are shown, marked as such.

Only the auditor and the administrator read it (policy: `read_audit`); the caller shows a
token, and each reading is itself logged in `access.audit_log` (EU GMP Annex 11 §12.4).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import asyncpg

from contracts import topology
from contracts.events import RecordSigned
from infra.runtime.access.policy import Action
from infra.runtime.access.principals import Principal
from infra.runtime.access.store import PgAccessStore
from infra.tooling.access import authorised
from infra.runtime.signing import manifestation

REFUSAL, CORRECTION, SIGNATURE = "common.CommandRejected", "assessment.ResponseAssessmentCorrected", \
    "common.RecordSigned"
ASSESSMENTS = ("assessment.ResponseAssessed", CORRECTION)
_COLUMNS = ("position, event_id::text AS event_id, stream_id, event_type, subject_id, payload::text AS payload,"
            " occurred_at, recorded_at, actor, centre_id, causation_id::text AS causation_id")


class AuditRefused(Exception):
    """The caller may not read the audit trail, or showed no valid token; one line."""


@dataclass
class Entry:
    recorded_at: str  # UTC: when the system recorded it (the audit trail's time)
    occurred_at: str  # when it happened, as reported
    service: str
    position: int
    event_id: str
    kind: str  # record, refusal, correction or signature
    event_type: str
    actor: str
    printed_name: str | None
    role: str | None  # the role the act was done in, where the event records it
    actor_roles_now: list[str]  # else the roles the actor holds now (not necessarily then)
    what: str
    why: str | None
    payload: dict[str, Any]
    signatures: list[dict[str, Any]] = field(default_factory=list)  # on this record
    supersedes: list[str] = field(default_factory=list)  # a correction: the event ids it supersedes

    def line(self) -> str:
        who = self.actor + (f" ({self.printed_name})" if self.printed_name else "")
        role = (f" as {self.role}" if self.role else
                f" [roles now: {', '.join(self.actor_roles_now)}]" if self.actor_roles_now else "")
        out = [f"{self.recorded_at[:23]}Z {self.service:<13} {self.kind:<10} {who}{role}: {self.what}"]
        if self.why:
            out.append(f"{'':<26}why: {self.why}")
        if self.supersedes:
            out.append(f"{'':<26}supersedes: {', '.join(self.supersedes)}")
        for s in self.signatures:
            out.append(f"{'':<26}signed: {s['printed_name']}, {s['signed_at']}, {s['meaning']}"
                       f" ({s['signer']}, {s['role']} at {s['org_id']})")
        return "\n".join(out)


@dataclass
class Trail:
    query: dict[str, str]
    entries: list[Entry]

    def lines(self) -> list[str]:
        what = ", ".join(f"{k} {v}" for k, v in self.query.items())
        if not self.entries:
            return [f"nothing recorded for {what}"]
        kinds = {k: sum(e.kind == k for e in self.entries) for k in ("record", "refusal", "correction", "signature")}
        return ([f"audit trail of {what}: " + ", ".join(f"{n} {k}s" for k, n in kinds.items())]
                + [e.line() for e in self.entries])

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "entries": [asdict(e) for e in self.entries]}


# -- who may read it ---------------------------------------------------------------------------

async def authorised_reader(conn: asyncpg.Connection, token: str | None, public_key_pem: str) -> Principal:
    """The principal of `token` if it may read the audit trail; AuditRefused otherwise."""
    return await authorised(conn, token, public_key_pem, Action.READ_AUDIT, AuditRefused,
                            "read the audit trail (only an auditor or an administrator may)")


# -- the trail ---------------------------------------------------------------------------------

async def _rows(conn: asyncpg.Connection, subject: str | None, coi: str | None) -> list[tuple[str, asyncpg.Record]]:
    found: list[tuple[str, asyncpg.Record]] = []
    for service in topology.SERVICES:
        if subject is not None:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM {service}.events WHERE subject_id = $1", subject)
        else:
            # the COI's records, the signatures on them, and refusals naming the COI or one of them
            rows = await conn.fetch(
                f"WITH own AS (SELECT event_id::text AS id FROM {service}.events WHERE payload->>'coi_id' = $1)"
                f" SELECT {_COLUMNS} FROM {service}.events WHERE payload->>'coi_id' = $1"
                f"  OR (event_type = '{SIGNATURE}' AND payload->>'record_event_id' IN (SELECT id FROM own))"
                f"  OR (event_type = '{REFUSAL}' AND (strpos(payload->>'reason', $1) > 0"
                f"      OR EXISTS (SELECT 1 FROM own WHERE strpos(payload->>'reason', own.id) > 0)))", coi)
        found += [(service, r) for r in rows]
    return sorted(found, key=lambda x: (x[1]["recorded_at"], topology.SERVICES.index(x[0]), x[1]["position"]))


async def _edge_refusals(conn: asyncpg.Connection, subject: str | None, coi: str | None) -> list[asyncpg.Record]:
    """Requests refused at the HTTP edge about the subject, or naming the COI (in the path or the reason)."""
    columns = ("position, recorded_at, service, method, path, status, code, reason, principal_id, credential,"
               " subject_id, centre_id, facility_id")
    if subject is not None:
        return await conn.fetch(f"SELECT {columns} FROM access.refusals WHERE subject_id = $1", subject)
    return await conn.fetch(f"SELECT {columns} FROM access.refusals"
                            " WHERE strpos(path, $1) > 0 OR strpos(reason, $1) > 0", coi)


def _edge_entry(row: asyncpg.Record, people: dict[str, tuple[str, list[str]]]) -> Entry:
    principal = row["principal_id"]
    name, roles = people.get(principal, (None, [])) if principal else (None, [])
    actor = principal or f"anonymous (credential: {row['credential']})"
    about = {k: row[k] for k in ("subject_id", "centre_id", "facility_id") if row[k] is not None}
    return Entry(_utc(row["recorded_at"]), _utc(row["recorded_at"]), row["service"], row["position"],
                 f"access.refusals/{row['position']}", "refusal", "http.RequestRefused", actor, name, None, roles,
                 f"{row['method']} {row['path']} refused ({row['status']})", f"{row['code']}: {row['reason']}",
                 {"status": row["status"], "code": row["code"], "reason": row["reason"], **about})


async def _people(conn: asyncpg.Connection, actors: set[str]) -> dict[str, tuple[str, list[str]]]:
    rows = await conn.fetch(
        "SELECT p.principal_id, p.printed_name, coalesce(array_agg(m.role || '@' || m.org_id ORDER BY m.org_id, m.role)"
        "  FILTER (WHERE m.role IS NOT NULL), '{}') AS roles"
        " FROM access.principals p LEFT JOIN access.memberships m USING (principal_id)"
        " WHERE p.principal_id = ANY($1::text[]) GROUP BY p.principal_id, p.printed_name", list(actors))
    return {r["principal_id"]: (r["printed_name"], list(r["roles"])) for r in rows}


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields(payload: dict[str, Any], *skip: str) -> str:
    return " ".join(f"{k}={v}" for k, v in payload.items() if k not in ("subject_id", *skip) and v is not None)


def _entry(service: str, row: asyncpg.Record, people: dict[str, tuple[str, list[str]]]) -> Entry:
    payload, t = json.loads(row["payload"]), row["event_type"]
    name, roles = people.get(row["actor"], (None, []))
    kind, role, why = "record", None, None
    what = f"{t} {_fields(payload)}"
    if t == REFUSAL:
        kind, why = "refusal", f"{payload['reason_code']}: {payload['reason']}"
        what = f"{payload['command_type']} refused"
    elif t == CORRECTION:
        kind, why = "correction", payload["reason"]
        what = f"{t} {_fields(payload, 'reason')}"
    elif t == SIGNATURE:
        kind, role, name = "signature", f"{payload['role']}@{payload['org_id']}", payload["printed_name"]
        what = (f"signed {payload['record_event_type']} {payload['record_event_id']} as {payload['meaning']}"
                f" (content hash {payload['record_hash'][:16]}...)")
        why = f"meaning: {payload['meaning']}"
    elif "reason" in payload:  # e.g. an identity erased
        why = payload["reason"]
    return Entry(_utc(row["recorded_at"]), _utc(row["occurred_at"]), service, row["position"], row["event_id"],
                 kind, t, row["actor"], name, role, [] if role else roles, what, why, payload)


def _link(entries: list[Entry]) -> None:
    """Each record lists its signatures; each correction the assessments it supersedes."""
    by_id = {e.event_id: e for e in entries}
    for e in entries:
        if e.kind == "signature" and (signed := by_id.get(e.payload["record_event_id"])) is not None:
            signed.signatures.append(manifestation(RecordSigned.model_validate(e.payload)))
    for i, e in enumerate(entries):
        if e.kind == "correction":
            e.supersedes = [x.event_id for x in entries[:i] if x.event_type in ASSESSMENTS
                            and x.payload.get("subject_id") == e.payload["subject_id"]
                            and x.payload.get("assessed_on") == e.payload["assessed_on"]]


async def trail(conn: asyncpg.Connection, *, subject: str | None = None, coi: str | None = None) -> Trail:
    """The audit trail of a subject or a COI, read in the caller's (snapshot) transaction."""
    if (subject is None) == (coi is None):
        raise ValueError("give a subject or a COI")
    rows = await _rows(conn, subject, coi)
    edge = await _edge_refusals(conn, subject, coi)
    people = await _people(conn, {r["actor"] for _, r in rows} | {r["principal_id"] for r in edge if r["principal_id"]})
    entries = [_entry(service, r, people) for service, r in rows]
    _link(entries)
    # one trail in the order things were recorded, the stores' events and the edge's refusals
    entries = sorted(entries + [_edge_entry(r, people) for r in edge], key=lambda e: e.recorded_at)
    return Trail({"subject": subject} if subject else {"coi": coi}, entries)


async def read(database_url: str, *, token: str | None, public_key_pem: str, subject: str | None = None,
               coi: str | None = None) -> Trail:
    """Check the reader, log the reading, then read every store in one read-only snapshot."""
    conn = await asyncpg.connect(database_url)
    try:
        reader = await authorised_reader(conn, token, public_key_pem)
        async with conn.transaction():
            await PgAccessStore(conn).record_audit_read(
                reader.principal_id, query={"subject": subject} if subject else {"coi": coi})
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await trail(conn, subject=subject, coi=coi)
    finally:
        await conn.close()
