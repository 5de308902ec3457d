"""Envelopes: the metadata every event and command carries on the wire.

An event on Kafka is the JSON of `EventEnvelope`; its key is the pseudonymous subject id
(or the stream id for events about no subject), so one patient's events stay in order on
one partition. The event id also travels as a header for consumers that dedupe early.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

from pydantic import Field

from contracts.base import CommandPayload, Contract, EventPayload
from contracts.ids import PRINCIPAL_ID_PATTERN, ActorId, CentreId, SubjectId
from contracts.times import Instant


class EventEnvelope(Contract):
    event_id: uuid.UUID
    event_type: str
    schema_version: int = Field(ge=1)
    stream_id: str
    stream_version: int = Field(ge=1)
    position: int | None = None  # global position in the producing service's store
    subject_id: SubjectId | None = None
    occurred_at: Instant  # clinical time: when it happened
    recorded_at: Instant  # system time: when CellTrail recorded it
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    actor: ActorId
    centre_id: CentreId | None = None
    payload: dict[str, Any]

    @property
    def key(self) -> bytes:
        return (self.subject_id or self.stream_id).encode()


# Printable ASCII without spaces, as the `Idempotency-Key` HTTP header takes it.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"


class CommandEnvelope(Contract):
    """`actor` is the principal the command is submitted as; `credential` proves it: that
    principal's bearer token (an EdDSA-signed JWT, `celltrail access token`). The consuming
    service verifies the token, checks that it names `actor`, loads the principal and asks
    the policy; a command without one is refused and recorded, never applied (issue 8,
    item 4; infra/runtime/access/commands.py)."""

    command_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    command_type: str
    schema_version: int = Field(default=1, ge=1)
    issued_at: Instant = Field(default_factory=lambda: datetime.now(timezone.utc))
    actor: ActorId
    correlation_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    payload: dict[str, Any]
    credential: str | None = Field(default=None, max_length=4096)
    # The submitter's name for this command (issue 12 item 4): a resubmission under the same
    # key gets the original outcome and changes nothing; the same key with another body is
    # refused (IDEMPOTENCY_KEY_REUSED). The loader derives it from the file and the line
    # (infra/tooling/loader.py, `line_key`); None: no such protection (docs/design.md).
    idempotency_key: str | None = Field(default=None, pattern=IDEMPOTENCY_KEY_PATTERN)

    @classmethod
    def wrap(cls, command: CommandPayload, *, actor: str, credential: str | None = None,
             **meta: Any) -> "CommandEnvelope":
        return cls(
            command_type=command.command_type,
            schema_version=command.schema_version,
            actor=actor,
            credential=credential,
            payload=command.model_dump(mode="json"),
            **meta,
        )

    @property
    def key(self) -> bytes:
        """The partition key. A chain of identity's commands (collection, labelling, every
        custody step of its units, release) keep their order on one partition: keyed by the
        COI, which a unit's identifier begins with. Every other command is keyed by its
        subject (one patient's commands in order), else by its centre."""
        coi = self.payload.get("coi_id") or str(self.payload.get("unit_id") or "").replace(" ", "")[:14]
        if coi and self.command_type in _BY_COI:
            return str(coi).replace(" ", "").upper().encode()
        subject = self.payload.get("subject_id") or self.payload.get("centre_id") or str(self.command_id)
        return str(subject).encode()


# The commands of one COI's custody, keyed by it (an infusion stays keyed by its subject:
# a subject's infusions are numbered in order).
_BY_COI = frozenset({"RecordApheresisCollection", "RegisterProductUnits", "RecordCustodyStep",
                     "RecordProductRelease", "RecordQaDisposition", "RecordQcResults", "RequestExceptionalRelease",
                     "RecordOosRiskAssessment", "RecordSponsorNotified"})


def payload_of(event: EventPayload) -> dict[str, Any]:
    return event.model_dump(mode="json")


_PRINCIPAL_ID = re.compile(PRINCIPAL_ID_PATTERN)


def upcast_actor_v1(actor: str) -> str:
    """Envelope v1 -> v2, for events stored before actors were principal ids: v1 took any
    text (an `x-celltrail-actor` header, a command's say-so). Such an actor is read as
    `legacy.<text, lower-cased, other characters as '-'>`, marked as never verified; the
    stored row keeps the original (the hash chain covers it)."""
    if _PRINCIPAL_ID.match(actor):
        return actor
    return ("legacy." + re.sub(r"[^a-z0-9._@-]+", "-", actor.lower()).strip("-"))[:64]


def upcast_envelope_v1_to_v2(envelope: dict[str, Any]) -> dict[str, Any]:
    """An event or command envelope of v1 (any text as `actor`) as v2 (a principal id)."""
    return {**envelope, "actor": upcast_actor_v1(str(envelope.get("actor", "")))}
