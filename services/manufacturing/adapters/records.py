"""Whose a manufacturing record is, for the access policy: the centre that collected the
starting material under its COI and the GMP facility that made (labelled) or released the product."""

from __future__ import annotations

import asyncpg

from infra.runtime.access.policy import Resource
from infra.runtime.signing import StoredRecord


async def record_resource(conn: asyncpg.Connection, record: StoredRecord) -> Resource:
    centre = record.payload.get("centre_id")
    coi = record.payload.get("coi_id")
    if centre is None and coi is not None:
        centre = await conn.fetchval(
            "SELECT payload->>'centre_id' FROM manufacturing.events WHERE stream_id = $1"
            " AND event_type = 'manufacturing.ApheresisCollected' ORDER BY stream_version LIMIT 1", f"coi-{coi}")
    facility = record.payload.get("facility_id")
    if facility is None and coi is not None:  # a record of a labelled product: the facility that made it
        facility = await conn.fetchval(
            "SELECT payload->>'facility_id' FROM manufacturing.events WHERE stream_id = $1"
            " AND event_type = 'manufacturing.ProductUnitsRegistered' ORDER BY stream_version LIMIT 1", f"coi-{coi}")
    return Resource(centre_id=centre, facility_id=facility)
