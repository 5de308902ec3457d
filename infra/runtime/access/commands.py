"""Authenticated commands: a command on a command topic is applied only for an
authenticated principal whom the policy allows it (issue 8, item 4; 21 CFR 11.10(d), (g)).

The command's envelope names its `actor` and carries that principal's bearer token as its
`credential` (infra/runtime/access/tokens.py). Before a service's handler runs, in the same
transaction, the guard:

1. verifies the token (EdDSA signature with the public key from the settings, issuer,
   audience, expiry): none, forged or expired -> UNAUTHENTICATED;
2. checks that it names the envelope's `actor`: a token of another principal -> UNAUTHENTICATED;
3. loads the principal from the `access` schema: unknown or disabled -> UNAUTHENTICATED;
4. asks the policy `decide(principal, COMMAND_ACTIONS[command type], resource)`, the
   resource being the centre the command names: refused -> FORBIDDEN.

A refusal is a `CommandRejected` with that code and the reason (infra/runtime/consumer.py),
never applied; so the `actor` of every event a command causes is a verified principal id.

A token is checked against the time the command is applied, not when it was sent (which the
sender could claim): a command applied after its token expired (a service down for longer
than a token lives) is refused, and is resubmitted with a fresh token.

What a command is about, for the policy: the centre of the subject it names, as the
service knows it from enrollment's events (`subject_centre`, services/kernel/subjects.py),
and the centre it names (`centre_id`) if that is another; the policy must allow both. So a
nurse records the infusion of her own centre's subject, and not of another's, even by
naming her own centre on it. A command about a
subject the service does not know, naming no centre, is the network's: only a network-wide
grant reaches it. A command made for an organisation (`org_id`: a custody step or the
labelling of units, by a centre or a facility) is about that organisation; the service then
checks that it holds the unit. A command naming a `facility_id` (RecordProductRelease) is about
the subject's product as made by that facility: its qualified person's grant reaches it, and
manufacturing checks that the facility labelled the product.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg

from contracts.base import CommandPayload
from contracts.envelope import CommandEnvelope
from contracts.errors import Forbidden, Unauthenticated
from infra.runtime.access.policy import NETWORK_RESOURCE, Action, Resource, decide
from infra.runtime.access.principals import Principal
from infra.runtime.access.store import PgAccessStore
from infra.runtime.access.tokens import InvalidToken, TokenClaims, TokenVerifier
from services.kernel.streams import declared_reads, reads

A = Action

# What each command on a topic asks of the policy: the one table. A service that handles a
# command missing here does not start (infra/runtime/host.py, ServiceSpec).
COMMAND_ACTIONS: Mapping[str, Action] = {
    "RegisterCentre": A.REGISTER_CENTRE,  # a new member of the network
    "PublishProgramme": A.MANAGE_PROGRAMMES,  # a programme's protocol as data (issue 10)
    "EnrollSubject": A.WRITE_SUBJECT,
    # the collection is a procedure on the patient, at the treating centre (FACT-JACIE: the
    # apheresis unit is part of the clinical programme)
    "RecordApheresisCollection": A.WRITE_SUBJECT,
    "RecordProductRelease": A.RELEASE_PRODUCT,  # EU GMP Annex 16 §1
    # custody (issue 9): for the organisation the command names, which must hold the unit;
    # which role may take which step is manufacturing's table (domain/custody.py)
    "RegisterProductUnits": A.WRITE_PRODUCT,
    "RecordCustodyStep": A.RECORD_CUSTODY,
    # a quarantined unit's fate is the qualified person's decision (EU GMP Part IV 11.5, Annex 16 §1.7)
    "RecordQaDisposition": A.RELEASE_PRODUCT,
    # release (issue 9 item 4): the specification is the qualified person's to set (EU GMP
    # Annex 16 §1.7); QC results are recorded by the facility's QC staff (which roles:
    # manufacturing's table); the exceptional-release path of EU GMP Part IV 11.5 starts with
    # the treating physician's request (the role is checked by manufacturing), continues with
    # the manufacturer's risk assessment and ends with the sponsor's notification, the QP's
    "SetProductSpecification": A.RELEASE_PRODUCT,
    "RecordQcResults": A.RECORD_CUSTODY,
    "RequestExceptionalRelease": A.WRITE_SUBJECT,
    "RecordOosRiskAssessment": A.RELEASE_PRODUCT,
    "RecordSponsorNotified": A.RELEASE_PRODUCT,
    # scheduling (issue 9 item 6): capacity by the organisation's own staff (which roles:
    # manufacturing's table, domain/slots.py); a booking for a subject by the subject's centre
    "SetSlotCapacity": A.RECORD_CUSTODY,
    "BookSlot": A.WRITE_SUBJECT,
    "CancelSlotBooking": A.WRITE_SUBJECT,
    "RecordInfusion": A.WRITE_SUBJECT,
    # lymphodepletion and the cell dose (issue 10 item 4): prescribed by the treating physician
    # (FACT-JACIE 8th ed. B7), each administration recorded by whoever gave it
    "PrescribeLymphodepletion": A.PRESCRIBE,
    "PrescribeCellDose": A.PRESCRIBE,
    "RecordLymphodepletionDose": A.WRITE_SUBJECT,
    "RecordResponseAssessment": A.WRITE_SUBJECT,
    # a correction is a new record with its reason, by whoever may write the record it
    # corrects (EU GMP Annex 11 §9)
    "CorrectResponseAssessment": A.WRITE_SUBJECT,
    # a dose escalation's DLT evaluation (issue 10 item 3), recorded at the subject's centre as
    # its assessments are
    "RecordDltEvaluation": A.WRITE_SUBJECT,
    # a clinical observation (issue 11), recorded at the subject's centre
    "RecordObservation": A.WRITE_SUBJECT,
}

# A principal is re-read at most this often (seconds): a revoked role or a disabled principal
# takes effect within it, instead of costing two queries per command.
PRINCIPAL_TTL = 1.0


SubjectCentre = Callable[[asyncpg.Connection, str], Awaitable[str | None]]


async def resources_of(conn: asyncpg.Connection, payload: CommandPayload,
                       subject_centre: SubjectCentre | None = None) -> list[Resource]:
    """Whose the command is about (module docstring): the centre of the subject it names, as
    the service knows it, and the centre it names if that is another; the network's if
    neither is known. The policy must allow every one."""
    organisation = getattr(payload, "org_id", None)
    if organisation is not None:  # acting for an organisation, centre or facility (a custody record)
        return [Resource(centre_id=organisation, facility_id=organisation)]
    named = getattr(payload, "centre_id", None)
    subject = getattr(payload, "subject_id", None)
    known = await subject_centre(conn, subject) if subject is not None and subject_centre is not None else None
    facility = getattr(payload, "facility_id", None)
    if facility is not None:  # a facility's record about a subject (a release): the facility's
        return [Resource(centre_id=known, facility_id=facility)]
    centres = list(dict.fromkeys(c for c in (known, named) if c is not None))
    return [Resource(centre_id=c) for c in centres] or [NETWORK_RESOURCE]


class CommandGuard:
    """Checks a command's credential and the policy before its handler (module docstring)."""

    def __init__(self, verifier: TokenVerifier | None, *, subject_centre: SubjectCentre | None = None) -> None:
        self.verifier = verifier  # None: no public key configured, so every command is refused
        self.subject_centre = subject_centre
        self._claims: dict[str, TokenClaims] = {}  # tokens already verified (the signature, not the expiry)
        self._principals: dict[str, tuple[float, Principal | None]] = {}

    async def admit(self, conn: asyncpg.Connection, env: CommandEnvelope, payload: CommandPayload) -> Principal:
        """The principal the command is applied for; raises Unauthenticated or Forbidden."""
        claims = self._verify(env.credential)
        if claims.subject != env.actor:
            raise Unauthenticated(f"the command names actor {env.actor}, but its token is {claims.subject}'s")
        principal = await self._principal(conn, claims.subject)
        if principal is None:
            raise Unauthenticated(f"principal {claims.subject} is unknown or disabled")
        for resource in await resources_of(conn, payload, self.subject_centre):
            decision = decide(principal, COMMAND_ACTIONS[env.command_type], resource)
            if not decision.allowed:
                raise Forbidden(decision.reason)
        return principal

    def _verify(self, token: str | None) -> TokenClaims:
        if not token:
            raise Unauthenticated("the command carries no credential (a token of actor as `credential`)")
        if self.verifier is None:
            raise Unauthenticated("this service accepts no tokens: CELLTRAIL_TOKEN_PUBLIC_KEY is not set")
        claims = self._claims.get(token)
        if claims is None:
            try:
                claims = self.verifier.verify(token)
            except InvalidToken as exc:
                raise Unauthenticated(str(exc)) from None
            if len(self._claims) > 1000:
                self._claims.clear()
            self._claims[token] = claims
        elif claims.expires_at.timestamp() + 10 < time.time():  # the verifier's leeway
            raise Unauthenticated("the token has expired")
        return claims

    async def _principal(self, conn: asyncpg.Connection, principal_id: str) -> Principal | None:
        now = time.monotonic()
        cached = self._principals.get(principal_id)
        if cached is not None and now - cached[0] < PRINCIPAL_TTL:
            return cached[1]
        principal = await PgAccessStore(conn).principal(principal_id)
        self._principals[principal_id] = (now, principal)
        return principal

    def guard(self, handlers: Mapping[str, Any]) -> dict[str, Any]:
        """`handlers` (command type -> `(conn, env, payload)` handler), each behind `admit`."""
        return {command_type: self._guarded(handler) for command_type, handler in handlers.items()}

    def _guarded(self, handler: Any) -> Any:
        async def guarded(conn: asyncpg.Connection, env: CommandEnvelope, payload: CommandPayload,
                          **context: Any) -> None:
            principal = await self.admit(conn, env, payload)
            await handler(conn, env, payload, principal=principal, **context)

        guarded.__qualname__ = f"guarded({getattr(handler, '__qualname__', handler)})"
        declared = declared_reads(handler)
        return reads(declared)(guarded) if declared else guarded
