"""Infusion handlers."""

from __future__ import annotations

from contracts.commands import RecordInfusion
from contracts.envelope import EventEnvelope
from contracts.events import ProductReleased
from services.infusion.application.ports import ReleasedProducts
from services.infusion.domain.model import InfusionHistory, ReleasedProduct, infusion_stream
from services.kernel.aggregate import rebuild
from services.kernel.streams import Streams


async def record_infusion(streams: Streams, products: ReleasedProducts, cmd: RecordInfusion) -> None:
    events, version = await streams.load(infusion_stream(cmd.subject_id))
    history = rebuild(InfusionHistory(cmd.subject_id), events)
    new = history.infuse(cmd, await products.get(cmd.coi_id))
    await streams.append(infusion_stream(cmd.subject_id), version, new, occurred_at=cmd.infused_at,
                         subject_id=cmd.subject_id)


async def on_product_released(streams: Streams, products: ReleasedProducts, event: ProductReleased,
                              env: EventEnvelope) -> None:
    await products.add(ReleasedProduct(event.coi_id, event.subject_id, event.released_at), event.lot_number)
