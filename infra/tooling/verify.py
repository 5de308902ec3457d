"""`celltrail verify`: recompute every store's hash chain from its events and compare.

Per store, in one read-only snapshot: walk the events and the chain's links together in
position order, recomputing each link (infra/runtime/chain.py), and stop at the first
break:
- `payload_changed` / `row_changed`: the event no longer hashes to its link (the payload,
  or another column, differs from what was chained);
- `link_altered`: a link names a previous hash other than its predecessor's, or a link's
  hashes were rewritten, or the link at a published head's position differs from it;
- `row_missing`: a link whose event is gone, or a published head's position that is in
  neither;
- `extra_row`: an event below the chain's head that the chain does not hold;
- `head_behind_published`: the chain ends before the last head published on the broker
  (the last rows were deleted with their links).
The chain alone cannot show its own tail cut off; the published heads can, so the last
`common.ChainHeadRecorded` of each store is read back from the store's topic when the
broker is reachable, and the report says when it could not be.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from contracts import topics, topology
from contracts.events import ChainHeadRecorded
from infra.runtime.chain import CANONICAL_COLUMNS, GENESIS, link

PAGE = 5_000


@dataclass(frozen=True)
class Head:
    position: int
    hash: str


@dataclass(frozen=True)
class Break:
    position: int
    kind: str
    detail: str


@dataclass
class StoreReport:
    store: str
    events: int = 0
    links: int = 0
    head: Head | None = None  # the chain's last link
    unchained: int = 0  # events past the chain's head: not linked yet (the relay links them)
    published: Head | None = None  # the last head read back from the broker
    broken: Break | None = None

    def line(self) -> str:
        name = f"{self.store:<14}"
        if self.broken:
            b = self.broken
            return f"{name}BROKEN at position {b.position}: {b.kind.replace('_', ' ')}: {b.detail}"
        chained = (f"{self.links} events chained, head {self.head.position} {self.head.hash[:16]}" if self.head
                   else "nothing chained yet")
        pending = f", {self.unchained} not yet chained" if self.unchained else ""
        published = (f"; matches the head published at position {self.published.position}" if self.published
                     else "")
        return f"{name}intact: {chained}{pending}{published}"


@dataclass
class Report:
    stores: list[StoreReport] = field(default_factory=list)
    published_checked: bool = False
    published_note: str = ""

    @property
    def intact(self) -> bool:
        return not any(s.broken for s in self.stores)

    def lines(self) -> list[str]:
        out = [s.line() for s in self.stores]
        out.append(f"published heads: {'checked' if self.published_checked else 'NOT checked'}"
                   f"{' (' + self.published_note + ')' if self.published_note else ''}")
        broken = sum(1 for s in self.stores if s.broken)
        out.append("every chain is intact" if not broken else f"{broken} of {len(self.stores)} stores broken")
        return out

    def to_json(self) -> dict:
        return {"intact": self.intact, "published_checked": self.published_checked,
                "published_note": self.published_note or None, "stores": [asdict(s) for s in self.stores]}


async def _pages(conn: asyncpg.Connection, sql: str) -> AsyncIterator[asyncpg.Record]:
    after = -(2 ** 63)  # a superuser may insert at any position, zero or negative ones too
    while rows := await conn.fetch(sql, after, PAGE):
        for row in rows:
            yield row
        after = rows[-1]["position"]


async def walk(conn: asyncpg.Connection, store: str, published: Head | None) -> StoreReport:
    """The store's chain recomputed and compared, in the caller's (snapshot) transaction."""
    report = StoreReport(store, published=published)
    chain_end = await conn.fetchval(f"SELECT coalesce(max(position), 0) FROM {store}.event_chain")
    events = _pages(conn, f"SELECT {CANONICAL_COLUMNS} FROM {store}.events WHERE position > $1"
                          " ORDER BY position LIMIT $2")
    links = _pages(conn, f"SELECT position, previous_hash, hash, payload_hash FROM {store}.event_chain"
                         " WHERE position > $1 ORDER BY position LIMIT $2")
    ev, ln = await anext(events, None), await anext(links, None)
    previous, previous_position, at_published = GENESIS, 0, None
    while ev is not None or ln is not None:
        position = min(r["position"] for r in (ev, ln) if r is not None)
        e = ev if ev is not None and ev["position"] == position else None
        k = ln if ln is not None and ln["position"] == position else None
        report.events += e is not None
        if k is None and position > chain_end:
            report.unchained += 1
        else:
            broken = _check(position, e, k, previous, previous_position)
            if broken:
                report.broken = broken
                return report
            previous, previous_position = k["hash"], position
            report.links += 1
            report.head = Head(position, previous.hex())
            if published and position == published.position:
                at_published = previous.hex()
        if e is not None:
            ev = await anext(events, None)
        if k is not None:
            ln = await anext(links, None)
    report.broken = _against_published(published, chain_end, at_published)
    return report


def _check(position: int, event, stored, previous: bytes, previous_position: int) -> Break | None:
    if stored is None:
        return Break(position, "extra_row", "an event the chain does not hold, below its head")
    if event is None:
        return Break(position, "row_missing", "the chain holds a link for it but the event is gone")
    if stored["previous_hash"] != previous:
        return Break(position, "link_altered", f"its link's previous hash is not the hash of position "
                                               f"{previous_position} (that event or its link was rewritten)")
    computed = link(previous, event)
    if computed.hash != stored["hash"]:
        changed = computed.payload_hash != stored["payload_hash"]
        return Break(position, "payload_changed" if changed else "row_changed",
                     f"the event differs from what was chained ({'its payload' if changed else 'a column'} "
                     f"was changed); chained {stored['hash'].hex()[:16]}, now {computed.hash.hex()[:16]}")
    if computed.payload_hash != stored["payload_hash"]:
        return Break(position, "link_altered", "its link's payload hash was rewritten")
    return None


def _against_published(published: Head | None, chain_end: int, at_published: str | None) -> Break | None:
    if published is None:
        return None
    if published.position > chain_end:
        return Break(published.position, "head_behind_published",
                     f"the chain ends at position {chain_end}, but position {published.position} was published "
                     f"as its head (the last events were deleted with their links)")
    if at_published is None:
        return Break(published.position, "row_missing", "the published head's position is not in the chain")
    if at_published != published.hash:
        return Break(published.position, "link_altered",
                     f"its hash {at_published[:16]} differs from the published head {published.hash[:16]}")
    return None


async def published_heads(bootstrap: str, timeout: float = 15.0) -> dict[str, Head]:
    """The last head each store published, read from the start of every event topic."""
    wanted = {topology.events_topic(s): s for s in topology.SERVICES}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(consumer.start(), timeout)
    heads: dict[str, Head] = {}
    try:
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not parts:
            return heads
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        # Read until idle: Tansu reports a partition's end as its last batch's start plus one.
        while batch := await consumer.getmany(timeout_ms=1000):
            for tp, records in batch.items():
                for r in records:
                    if dict(r.headers or ()).get(topics.HEADER_MESSAGE_TYPE) != ChainHeadRecorded.event_type.encode():
                        continue
                    head = ChainHeadRecorded.model_validate(json.loads(r.value)["payload"])
                    store = wanted[tp.topic]
                    if head.store == store and (store not in heads or head.position > heads[store].position):
                        heads[store] = Head(head.position, head.hash)
    finally:
        await consumer.stop()
    return heads


async def verify(database_url: str, bootstrap: str | None) -> Report:
    report = Report()
    heads: dict[str, Head] = {}
    if bootstrap is None:
        report.published_note = "no broker address: set KAFKA_BOOTSTRAP_SERVERS"
    else:
        try:
            heads = await published_heads(bootstrap)
            report.published_checked = True
            report.published_note = f"from {bootstrap}" + ("" if heads else ", none published yet")
        except (OSError, KafkaError, asyncio.TimeoutError) as exc:
            report.published_note = f"broker at {bootstrap} not reachable: {type(exc).__name__} {exc}".strip()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for store in topology.SERVICES:
                report.stores.append(await walk(conn, store, heads.get(store)))
    finally:
        await conn.close()
    return report
