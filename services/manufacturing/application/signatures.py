"""What a signature of a manufacturing record puts into effect (issue 9 item 4). Kept apart
from `handlers`, whose functions of an event are wired to the topics: this one is called by
the signing route (entrypoints/http.py) inside the signature's own transaction."""

from __future__ import annotations

import uuid

from contracts.events import RecordSigned
from services.kernel.streams import Streams
from services.manufacturing.application.handlers import load_chain
from services.manufacturing.domain.model import coi_stream


async def on_record_signed(record_type: str, record: dict, record_event_id: uuid.UUID,
                           signature: RecordSigned, streams: Streams) -> list:
    """A signature of a chain-of-identity record was appended (entrypoints/http.py, in the
    signature's transaction): what it puts into effect (ChainOfIdentity.signed), appended to
    the chain's stream; a refusal undoes the signature with it."""
    coi = record.get("coi_id")
    if not isinstance(coi, str) or not coi:
        return []
    chain, version = await load_chain(streams, coi)
    new = chain.signed(record_type, record, record_event_id, signature)
    if new:
        await streams.append(coi_stream(coi), version, new, occurred_at=signature.signed_at,
                             subject_id=chain.subject_id, centre_id=chain.centre_id)
    return new
