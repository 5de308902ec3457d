"""Infusion handlers."""

from __future__ import annotations

from contracts.commands import RecordInfusion
from contracts.events import ProductReleased
from services.infusion.application.ports import Release, ReleasedProducts
from services.infusion.domain.model import InfusionHistory, ReleasedProduct, infusion_stream
from services.kernel.aggregate import rebuild
from services.kernel.streams import Streams, reads


@reads(lambda cmd: [infusion_stream(cmd.subject_id)])
async def record_infusion(cmd: RecordInfusion, streams: Streams, products: ReleasedProducts) -> None:
    events, version = await streams.load(infusion_stream(cmd.subject_id))
    history = rebuild(InfusionHistory(cmd.subject_id), events)
    new = history.infuse(cmd, await products.get(cmd.coi_id))
    await streams.append(infusion_stream(cmd.subject_id), version, new, occurred_at=cmd.infused_at,
                         subject_id=cmd.subject_id)


async def on_products_released(events: list[ProductReleased], products: ReleasedProducts) -> None:
    await products.add_many([Release(ReleasedProduct(e.coi_id, e.subject_id, e.released_at), e.lot_number)
                             for e in events])
