"""Event and command type registries, and upcasting of old schema versions.

Types are looked up by their stable strings, never by Python class paths. An event stored
or published at an older `schema_version` is upcast, one version at a time, by small
named functions before it is parsed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.base import CommandPayload, EventPayload, from_json
from contracts.commands import COMMAND_PAYLOADS
from contracts.envelope import CommandEnvelope, EventEnvelope, upcast_envelope_v1_to_v2
from contracts.events import EVENT_PAYLOADS

EVENT_TYPES: dict[str, type[EventPayload]] = {cls.event_type: cls for cls in EVENT_PAYLOADS}
COMMAND_TYPES: dict[str, type[CommandPayload]] = {cls.command_type: cls for cls in COMMAND_PAYLOADS}


class UnknownMessageTypeError(ValueError):
    pass


class UnsupportedSchemaVersionError(ValueError):
    pass


def upcast_response_assessed_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 carried marrow blasts and one `mrd_percent` measured by flow cytometry, and no
    blood counts, so its NCCN category cannot be derived (None); the morphology and flow
    readings can, with the CAR-CIK protocol's < 5 % limits (seed 000)."""
    out = {k: v for k, v in payload.items() if k != "mrd_percent"}
    mrd = payload.get("mrd_percent")
    out["flow_mrd_percent"] = mrd
    out["response_category"] = None
    # NCCN ALL: MRD negative below 0.01 % (10^-4)
    out["mrd_status"] = "not_assessed" if mrd is None else ("negative" if mrd < 0.01 else "positive")
    out["morphologic_response"] = payload["marrow_blasts_percent"] < 5
    out["flow_response"] = None if mrd is None else mrd < 5
    return out


def coi_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v2 of the events only widened what `coi_id` may hold (ISBT 128-shaped ids, issue 9):
    a v1 payload is a v2 payload, its COI kept as recorded. v2 of the commands requires an
    ISBT 128-shaped COI with its check character: a v1 command is read as v2, so one whose
    COI is not is refused, naming what is wrong with it."""
    return payload


UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("assessment.ResponseAssessed", 1): upcast_response_assessed_v1_to_v2,
    ("manufacturing.ApheresisCollected", 1): coi_v1_to_v2,
    ("manufacturing.ProductReleased", 1): coi_v1_to_v2,
    ("infusion.ProductInfused", 1): coi_v1_to_v2,
    ("outcomes.VeinToVeinTimeDetermined", 1): coi_v1_to_v2,
    ("RecordApheresisCollection", 1): coi_v1_to_v2,
    ("RecordProductRelease", 1): coi_v1_to_v2,
    ("RecordInfusion", 1): coi_v1_to_v2,
    # envelopes (issue 8): the stored events' envelopes are upcast as they are read
    # (infra/runtime/eventstore.py); a v1 command carries no credential and is refused
    ("EventEnvelope", 1): upcast_envelope_v1_to_v2,
    ("CommandEnvelope", 1): upcast_envelope_v1_to_v2,
}


def upcast(event_type: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown event_type {event_type!r}")
    return _upcast(event_type, cls.schema_version, version, payload)


def _upcast(name: str, current: int, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    if version > current:
        raise UnsupportedSchemaVersionError(f"{name} schema_version {version} is newer than this reader's {current}")
    while version < current:
        step = UPCASTERS.get((name, version))
        if step is None:
            raise UnsupportedSchemaVersionError(f"no upcaster for {name} v{version}")
        payload = step(payload)
        version += 1
    return payload


def parse_event(envelope: EventEnvelope) -> EventPayload:
    """The typed payload of an envelope, upcast to the current schema version."""
    cls = EVENT_TYPES.get(envelope.event_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown event_type {envelope.event_type!r}")
    return cls.model_validate(upcast(envelope.event_type, envelope.schema_version, envelope.payload))


def parse_command(envelope: CommandEnvelope) -> CommandPayload:
    """The typed payload of a command envelope, upcast to the current schema version. A
    command comes from outside: its payload is read strictly (contracts/base.py, `from_json`),
    so `"no"` is not a boolean nor `"12"` a number."""
    cls = COMMAND_TYPES.get(envelope.command_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown command_type {envelope.command_type!r}")
    return from_json(cls, _upcast(envelope.command_type, cls.schema_version, envelope.schema_version,
                                  envelope.payload))
