"""Electronic signatures on a service's own records (issue 8 item 5; 21 CFR Part 11 subpart C).

A signature is a `common.RecordSigned` event in the store of the service that holds the
signed record, on the stream `signatures-<record event id>`. A service mounts two routes:

- `GET /records/{event_id}`: the record, its content hash and the signatures it carries:
  what a signer is shown before signing, and the manifestation of each signature
  (11.50(b): the printed name, date and time, and meaning shown with the record);
- `POST /signatures` `{"record_event_id", "record_hash", "meaning", "password"}`: sign it.

What is checked, in this order, and the refusal's code:
1. The caller is authenticated by a token (or key; 401 otherwise, the HTTP edge's answer).
2. Re-authentication (11.200(a)(1)): a token shows who opened the session, not that the
   person is at the keyboard now; so every signing presents the password again, checked
   against its argon2id hash (11.300: the credential controls of `access`). Within a
   session (11.200(a)(1)(i)) "at least one" component is required for each later signing:
   the token carries the identification, the password is that component, so the first
   signing and every later one present both. No password: `SIGNATURE_PASSWORD_REQUIRED`;
   a wrong one: `SIGNATURE_PASSWORD_WRONG` (both 401, `insufficient_user_authentication`,
   RFC 9470 §3). Each check, passed or not, goes to `access.audit_log` (11.300(d)).
   Why no signing assertion (a short-lived token minted after a password check): it would
   be a bearer artefact that whoever holds it can replay within its lifetime; the password
   itself proves presence at the moment of signing and leaves nothing to replay.
3. The record is an event of this store (`RECORD_NOT_FOUND`, 404).
4. Binding (11.70): `record_hash` must be SHA-256 of the record's canonical encoding as
   held now, the bytes its hash-chain link covers (infra/runtime/chain.py). A hash of
   another record (a signature copied or transferred) or of an earlier content is refused:
   `RECORD_HASH_MISMATCH` (409). The event keeps the id and hash, so the signature names one
   record's exact content; excising it would break the store's chain (`celltrail verify`).
5. Authority (11.10(g)): only a person, with a role the meaning needs over the record
   (`policy.SIGNING`, e.g. approval of a release needs a qualified person of the releasing
   facility, EU GMP Annex 16 §1): `SIGNER_NOT_A_PERSON`, `MEANING_NOT_APPLICABLE`,
   `SIGNER_NOT_AUTHORISED` (403).
6. One signature per signer, record and meaning (`ALREADY_SIGNED`, 409).
Every refusal after authentication is recorded as `common.CommandRejected` (command
`SignRecord`, never the password) in this store, about the record's subject. The printed
name and time come from the access schema and this service's clock, never from the request
(11.50(a)).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse

from contracts.commands import SignRecord
from contracts.envelope import CommandEnvelope
from contracts.errors import CommandRefused
from contracts.events import RecordSigned
from infra.runtime.access.credentials import verify_password
from infra.runtime.access.policy import Action, Resource, decide_signature
from infra.runtime.access.principals import Principal
from infra.runtime.access.store import PgAccessStore
from infra.runtime.chain import CANONICAL_COLUMNS, canonical_event
from infra.runtime.consumer import record_rejection
from infra.runtime.endpoints import SIGNS, Call, Endpoint, Handler, Located, NotFound, to
from infra.runtime.eventstore import ConcurrencyConflictError, EventStore, Metadata, NewEvent
from infra.runtime.http import BadRequest, parse_body

if TYPE_CHECKING:
    from infra.runtime.host import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredRecord:
    """An event as its store holds it, with the hash a signature binds to."""

    event_id: str
    event_type: str
    stream_id: str
    subject_id: str | None
    centre_id: str | None
    payload: dict[str, Any]
    content_hash: str
    row: dict[str, Any]  # every column, as the canonical encoding renders it


def content_hash(row: asyncpg.Record | dict[str, Any]) -> str:
    """SHA-256 of the row's canonical encoding (chain.py), 64 lower-case hex digits."""
    return hashlib.sha256(canonical_event(row)).hexdigest()


async def load_record(conn: asyncpg.Connection, store: EventStore, event_id: uuid.UUID) -> StoredRecord | None:
    row = await conn.fetchrow(f"SELECT {CANONICAL_COLUMNS} FROM {store.table} WHERE event_id = $1", event_id)
    if row is None:
        return None
    return StoredRecord(row["event_id"], row["event_type"], row["stream_id"], row["subject_id"], row["centre_id"],
                        json.loads(row["payload"]), content_hash(row),
                        {**dict(row), "payload": json.loads(row["payload"])})


def signature_stream(record_event_id: str | uuid.UUID) -> str:
    return f"signatures-{record_event_id}"


async def signatures_of(conn: asyncpg.Connection, store: EventStore,
                        record_event_id: str) -> tuple[list[RecordSigned], int]:
    """The record's signatures, and the version of their stream."""
    envelopes = await store.load(conn, signature_stream(record_event_id))
    return [RecordSigned.model_validate(e.payload) for e in envelopes], len(envelopes)


def manifestation(sig: RecordSigned) -> dict[str, str]:
    """What is shown of a signature wherever its record is shown (21 CFR 11.50(b))."""
    return {"printed_name": sig.printed_name, "signed_at": sig.signed_at.astimezone(timezone.utc).isoformat(),
            "meaning": sig.meaning.value, "signer": sig.signer, "role": sig.role, "org_id": sig.org_id}


# -- refusals ---------------------------------------------------------------------------------

class SignatureRefused(CommandRefused):
    status = 409


class PasswordRequired(SignatureRefused):
    code, status = "SIGNATURE_PASSWORD_REQUIRED", 401


class PasswordWrong(SignatureRefused):
    code, status = "SIGNATURE_PASSWORD_WRONG", 401


class RecordNotFound(SignatureRefused):
    code, status = "RECORD_NOT_FOUND", 404


class RecordHashMismatch(SignatureRefused):
    code = "RECORD_HASH_MISMATCH"


class SignerNotAllowed(SignatureRefused):
    status = 403


class AlreadySigned(SignatureRefused):
    code = "ALREADY_SIGNED"


class SignatureRequest(SignRecord):
    """The body of `POST /signatures`: the `SignRecord` command and the signer's password,
    which stays out of the command (and so out of any refusal recorded with it)."""

    password: SecretStr | None = None

    def command(self) -> SignRecord:
        return SignRecord(**self.model_dump(exclude={"password"}))


# Whose a record is (its centre, its facility), read from what the service holds.
ResourceOf = Callable[[asyncpg.Connection, StoredRecord], Awaitable[Resource]]
# What a signature puts into effect in the service's domain (a QP's approval of a release
# record releases the product): called in the signature's transaction, after it is appended;
# a CommandRefused it raises refuses the signature, which is then not made.
AfterSign = Callable[[asyncpg.Connection, EventStore, StoredRecord, RecordSigned, Metadata], Awaitable[object]]


class SignatureNotEffective(SignatureRefused):
    """The domain refused what the signature would put into effect (its code says why)."""


class Signatures:
    """Signing on one service's store; `resource_of` says whose a record is, `after_sign`
    what a signature puts into effect."""

    def __init__(self, service: str, pool: asyncpg.Pool, store: EventStore, resource_of: ResourceOf,
                 after_sign: AfterSign | None = None) -> None:
        self.service, self.pool, self.store, self.resource_of = service, pool, store, resource_of
        self.after_sign = after_sign

    async def sign(self, principal: Principal, cmd: SignRecord, password: str | None) -> RecordSigned:
        """The signature appended, or SignatureRefused (recorded) saying why not."""
        command_id = uuid.uuid4()
        async with self.pool.acquire() as conn:
            record = await load_record(conn, self.store, cmd.record_event_id)
            try:
                await self._reauthenticate(conn, principal, cmd, password)
                async with conn.transaction():
                    return await self._sign(conn, principal, cmd, record, command_id)
            except SignatureRefused as exc:
                await self._record_refusal(conn, principal, cmd, record, command_id, exc)
                raise

    async def _reauthenticate(self, conn: asyncpg.Connection, principal: Principal, cmd: SignRecord,
                              password: str | None) -> None:
        access = PgAccessStore(conn)
        about = str(cmd.record_event_id)
        if not password:
            raise PasswordRequired(f"signing record {about} needs the signer's password: a token alone does not "
                                   f"sign (21 CFR 11.200(a))")
        stored = await access.password_hash(principal.principal_id)
        ok = stored is not None and await asyncio.to_thread(verify_password, stored, password)  # argon2: off the loop
        refused = None if ok else "wrong password, or no password set"
        async with conn.transaction():
            await access.record_signing_authentication(principal.principal_id, service=self.service,
                                                       record_event_id=about, refused=refused)
        if not ok:
            log.warning("signing refused: wrong password for %s on record %s (21 CFR 11.300(d))",
                        principal.principal_id, about)
            raise PasswordWrong(f"signing record {about} refused: wrong password for {principal.principal_id}, "
                                f"or none set (`celltrail access password`)")

    async def _sign(self, conn: asyncpg.Connection, principal: Principal, cmd: SignRecord,
                    record: StoredRecord | None, command_id: uuid.UUID) -> RecordSigned:
        about = f"record {cmd.record_event_id}"
        if record is None:
            raise RecordNotFound(f"{about} is not an event of {self.service}")
        if record.content_hash != cmd.record_hash:
            raise RecordHashMismatch(
                f"{about} ({record.event_type}) hashes to {record.content_hash}, not to the {cmd.record_hash} "
                f"presented: a signature binds to the content of the record it was made on (21 CFR 11.70)")
        decision = decide_signature(principal, record.event_type, cmd.meaning, await self.resource_of(conn, record))
        if not decision.allowed:
            raise SignerNotAllowed(f"{about}: {decision.reason}", code=decision.code)
        existing, version = await signatures_of(conn, self.store, record.event_id)
        if any(s.signer == principal.principal_id and s.meaning == cmd.meaning for s in existing):
            raise AlreadySigned(f"{about} already carries {principal.principal_id}'s {cmd.meaning.value} signature")
        now = datetime.now(timezone.utc)
        signed = RecordSigned(signer=principal.principal_id, printed_name=principal.printed_name, signed_at=now,
                              meaning=cmd.meaning, role=decision.membership.role.value,
                              org_id=decision.membership.org_id, record_event_id=cmd.record_event_id,
                              record_event_type=record.event_type, record_hash=record.content_hash,
                              subject_id=record.subject_id)
        meta = Metadata(correlation_id=uuid.uuid4(), causation_id=command_id, actor=principal.principal_id)
        await self.store.append(conn, signature_stream(record.event_id), version, [
            NewEvent(signed, occurred_at=now, subject_id=record.subject_id, centre_id=record.centre_id)], meta)
        if self.after_sign is not None:
            try:
                await self.after_sign(conn, self.store, record, signed, meta)
            except SignatureRefused:
                raise
            except CommandRefused as exc:
                raise SignatureNotEffective(f"{about}: {exc.reason}", code=exc.code) from None
        return signed

    async def _record_refusal(self, conn: asyncpg.Connection, principal: Principal, cmd: SignRecord,
                              record: StoredRecord | None, command_id: uuid.UUID, exc: SignatureRefused) -> None:
        env = CommandEnvelope.wrap(cmd, actor=principal.principal_id, command_id=command_id)
        async with conn.transaction():
            await record_rejection(conn, self.store, env, exc, subject_id=record.subject_id if record else None)


def signature_endpoints(resource_of: ResourceOf, read_action: Action,
                        after_sign: AfterSign | None = None) -> tuple[Endpoint, ...]:
    """`GET /records/{event_id}` and `POST /signatures` of a service (declared endpoints,
    served through the HTTP edge). `read_action`: what reading one of its records needs
    (READ_PRODUCT...); who may sign what is the signing table's (`decide_signature`), applied
    by `Signatures.sign` with the refusal codes above."""

    async def locate_record(request: Request, rt: "Runtime") -> Located:
        try:
            event_id = uuid.UUID(request.path_params["event_id"])
        except ValueError:
            raise BadRequest(JSONResponse({"error": "the event id must be a UUID", "code": "BAD_EVENT_ID"},
                                          status_code=400)) from None
        async with rt.pool.acquire() as conn:
            found = await load_record(conn, rt.store, event_id)
            if found is None:
                raise NotFound(f"no event {event_id} in {rt.store.schema}", code="RECORD_NOT_FOUND")
            return Located(await resource_of(conn, found), found)

    def record(rt: "Runtime") -> Handler:
        async def handle(call: Call) -> JSONResponse:
            found: StoredRecord = call.located.found
            async with rt.pool.acquire() as conn:
                signed, _ = await signatures_of(conn, rt.store, found.event_id)
            return JSONResponse({"record": found.row, "content_hash": found.content_hash,
                                 "signatures": [manifestation(s) for s in signed]})
        return handle

    def sign(rt: "Runtime") -> Handler:
        signatures = Signatures(rt.store.schema, rt.pool, rt.store, resource_of, after_sign)

        async def handle(call: Call) -> JSONResponse:
            body = await parse_body(call.request, SignatureRequest)  # 422 names the field, never echoes a value
            cmd = body.command()
            try:
                signed = await signatures.sign(call.principal, cmd,
                                               body.password.get_secret_value() if body.password else None)
            except SignatureRefused as exc:
                headers = ({"WWW-Authenticate": 'Bearer realm="celltrail", error="insufficient_user_authentication"'}
                           if exc.status == 401 else None)
                return JSONResponse({"error": exc.reason, "code": exc.code}, status_code=exc.status, headers=headers)
            except ConcurrencyConflictError:
                return JSONResponse({"error": f"record {cmd.record_event_id} was signed meanwhile; try again",
                                     "code": "CONCURRENT_CHANGE"}, status_code=409)
            return JSONResponse({"signature": manifestation(signed), "record_event_id": str(signed.record_event_id),
                                 "record_hash": signed.record_hash}, status_code=201)
        return handle

    return (
        Endpoint("GET", "/records/{event_id}", to(read_action, locate_record), record,
                 "A record, its content hash and the manifestation of its signatures (21 CFR 11.50(b))",
                 answers={200: "the record", 400: "not an event id", 404: "no such record"}),
        Endpoint("POST", "/signatures", SIGNS, sign,
                 "Sign a record (the password again, 21 CFR 11.200(a)); bound to its content hash (11.70)",
                 body=SignatureRequest,
                 answers={201: "signed", 401: "password missing or wrong", 403: "not this signer's to sign",
                          404: "no such record", 409: "hash mismatch, already signed", 422: "invalid request"}),
    )
