"""Transactional outbox relay: publishes a service's committed events to its Kafka topic.

The events table is the outbox: an event exists only once its transaction committed. Appends
take no lock, so positions become visible out of order: a position is drawn from a sequence
at INSERT, not at COMMIT, and a slow transaction may commit position 7 after a fast one
committed 8. A relay that read `position > checkpoint` would already have moved its
checkpoint past 7 and skip it for ever (the lost-event bug Marten and Axon shipped for
years; `tests/integration/test_outbox_relay.py` reproduces it).

Never skip: the horizon. A position is *final* once the transaction that drew it has ended:
committed, and so visible to every later snapshot, or rolled back, and so never there. The
relay publishes in position order only up to a horizon H below which every position is
final, and its checkpoint is the last position it published (never above H). Invariant:
every row at or below the checkpoint has been published (or quarantined); a row that is not
there when the checkpoint passes its position never will be.

H comes from a sample (L, x), taken in one short transaction that is then rolled back:
  1. L = the position sequence's last value: every position <= L has been drawn;
  2. x = pg_current_xact_id(): a transaction id assigned after L was read.
Every writer is assigned its transaction id before it draws a position (the column default,
migration 0002), and ids are handed out in increasing order, so every transaction that drew
a position <= L has an id < x. Once a later snapshot's `pg_snapshot_xmin` is >= x, no
transaction with an id below x is still running ("Earliest transaction ID that is still
active. All earlier transactions will either be committed and visible, or rolled back and
dead": PostgreSQL, Transaction ID and Snapshot Information Functions), so every position
<= L is final: H = L. The sequence has CACHE 1: a cached block would hand out positions
<= L after L was read.

Why not order and checkpoint by (transaction id, position), publishing only rows whose
transaction id is below `pg_snapshot_xmin` (O. Dudycz, "How Postgres sequences issues can
impact your messaging guarantees", event-driven.io)? That never skips either, but a
transaction id is assigned at a transaction's first write, not when it reads: a consumer
that claimed its inbox row (id 100), then read version 1 of a stream committed by id 101
and appended version 2, would have version 2 published before version 1. Position order
keeps every stream's versions, and each subject's causally ordered events, in order on
their partition.

Cost: a row waits until every transaction that was running when it was sampled has ended,
so one long-running writing transaction anywhere on the PostgreSQL cluster holds back every
relay (delays, never loses). Each sample uses one transaction id, and is taken only when
positions were drawn since the last.

The relay waits for the broker's acknowledgement (acks=all) of a whole batch before it
advances the checkpoint: a crash in between republishes the batch (at-least-once), which
idempotent consumers absorb. A row that cannot be published (not decodable, too large for
the broker) is quarantined: recorded in `<schema>.relay_quarantine` with the reason, logged,
counted in /status, and passed; the rest keep flowing. Only one relay per store runs at a
time (a PostgreSQL advisory lock); others stand by.

The relay also keeps the store's hash chain (infra/runtime/chain.py): before it reads a
batch to publish, it links every row up to the same horizon, quarantined rows included, so
every published event is chained; and, given a `head_interval`, it records the chain's head
as an event now and then, which it then publishes like any other.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from contracts import topics
from contracts.envelope import EventEnvelope
from infra.runtime.access.signing import RecordSigner
from infra.runtime.chain import EventChain, HeadRecorder
from infra.runtime.eventstore import EventStore, Unreadable

log = logging.getLogger(__name__)


def kafka_headers(env: EventEnvelope) -> list[tuple[str, bytes]]:
    return [
        (topics.HEADER_MESSAGE_ID, str(env.event_id).encode()),
        (topics.HEADER_MESSAGE_TYPE, env.event_type.encode()),
        (topics.HEADER_SCHEMA_VERSION, str(env.schema_version).encode()),
    ]


def encode_event(env: EventEnvelope) -> bytes:
    return env.model_dump_json().encode()


class Horizon(Protocol):
    async def advance(self, conn: asyncpg.Connection) -> int:
        """The highest position at or below which every position is final."""

    @property
    def pending(self) -> bool:
        """Positions past the horizon are known to exist and wait for older transactions."""


class SnapshotHorizon:
    """The horizon of the module docstring, for one store's position sequence."""

    def __init__(self, sequence: str) -> None:
        self.sequence = sequence
        self.position = 0
        self._sample: tuple[int, str] | None = None  # (L, x) not yet known to be final

    @property
    def pending(self) -> bool:
        return self._sample is not None

    async def advance(self, conn: asyncpg.Connection) -> int:
        while True:
            fresh = self._sample is None
            if fresh:
                self._sample = await self._take_sample(conn)
                if self._sample is None:
                    return self.position  # nothing drawn since the last sample
            drawn, xid = self._sample
            if not await conn.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot()) >= $1::text::xid8", xid):
                return self.position
            self.position, self._sample = drawn, None
            if fresh:
                return self.position
            # An older sample just became final; a fresh one may be final at once.

    async def _take_sample(self, conn: asyncpg.Connection) -> tuple[int, str] | None:
        tx = conn.transaction()
        await tx.start()
        try:  # two statements, in this order: L is read before x is assigned
            drawn = await conn.fetchval(f"SELECT last_value - (NOT is_called)::int FROM {self.sequence}")
            if drawn <= self.position:
                return None
            return drawn, await conn.fetchval("SELECT pg_current_xact_id()::text")
        finally:
            await tx.rollback()  # wrote nothing; a rollback needs no WAL flush


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, store: EventStore, topic: str, producer: AIOKafkaProducer,
                 *, batch_size: int = 500, poll_seconds: float = 0.5, horizon: Horizon | None = None,
                 head_interval: float | None = None, signer: RecordSigner | None = None) -> None:
        """`head_interval`: seconds between recordings of the chain's head (None: never);
        `signer`: the service's signature on every record (infra/runtime/access/signing.py)."""
        self.pool, self.store, self.topic, self.producer = pool, store, topic, producer
        self.signer = signer
        self.batch_size, self.poll_seconds = batch_size, poll_seconds
        self.horizon = horizon or SnapshotHorizon(store.sequence)
        self.chain = EventChain(store, batch_size=batch_size)
        self.heads = HeadRecorder(self.chain, head_interval) if head_interval is not None else None
        self.name = f"{store.schema}->{topic}"
        self._lock_key = zlib.crc32(self.name.encode())
        self._wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish everything final past the checkpoint; return how many were sent."""
        schema = self.store.schema
        sent = 0
        while True:
            async with self.pool.acquire() as conn:
                checkpoint = await conn.fetchval(
                    f"SELECT position FROM {schema}.relay_checkpoint WHERE relay = $1", self.name)
                if checkpoint is None:
                    await conn.execute(f"INSERT INTO {schema}.relay_checkpoint (relay, position) VALUES ($1, 0)"
                                       " ON CONFLICT DO NOTHING", self.name)
                    checkpoint = 0
                horizon = await self.horizon.advance(conn)
                await self.chain.extend(conn, horizon)
                rows = await self.store.read_range(conn, checkpoint, horizon, self.batch_size)
                if rows:
                    sent += await self._publish(conn, rows, checkpoint)
                if len(rows) < self.batch_size:
                    # Caught up with the horizon: what was appended meanwhile has notified the
                    # relay, so it comes round again at once (`run`), without a round trip here.
                    if self.heads is not None:
                        await self.heads.record_if_due(conn)  # its NOTIFY wakes the relay to publish it
                    return sent

    async def _publish(self, conn: asyncpg.Connection, rows: list[EventEnvelope | Unreadable], checkpoint: int) -> int:
        schema = self.store.schema
        quarantined = await self._send(rows)  # returns once the broker acknowledged every record
        # Compare-and-set: `celltrail republish` may have rewound the checkpoint meanwhile.
        advance = (f"UPDATE {schema}.relay_checkpoint SET position = $2 WHERE relay = $1 AND position = $3",
                   self.name, rows[-1].position, checkpoint)
        if not quarantined:
            await conn.execute(*advance)  # one statement: its own transaction
            return len(rows)
        async with conn.transaction():
            await conn.executemany(
                f"INSERT INTO {schema}.relay_quarantine (relay, position, error) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING", [(self.name, q.position, q.error) for q in quarantined])
            await conn.execute(*advance)
        for q in quarantined:
            log.error("relay %s: quarantined position %d, which cannot be published: %s",
                      self.name, q.position, q.error)
        return len(rows) - len(quarantined)

    async def _send(self, rows: list[EventEnvelope | Unreadable]) -> list[Unreadable]:
        """Send every publishable row; return the others, with why."""
        rejected = [r for r in rows if isinstance(r, Unreadable)]
        envs = [env for env in rows if not isinstance(env, Unreadable)]
        values = [encode_event(env) for env in envs]
        # over the very bytes sent, nothing encoded twice; one signature per batch of records
        signed = (self.signer.sign_batch(self.topic, [(env.key, value) for env, value in zip(envs, values)])
                  if self.signer is not None else [[] for _ in envs])
        acks = []
        for env, value, signature in zip(envs, values, signed):
            key, headers = env.key, kafka_headers(env) + signature
            try:
                acks.append(await self.producer.send(self.topic, value=value, key=key, headers=headers))
            except MessageSizeTooLargeError as exc:  # refused before sending: this record only
                rejected.append(Unreadable(env.position, f"{type(exc).__name__}: {exc}"))
        await asyncio.gather(*acks)
        return rejected

    async def status(self) -> dict[str, Any]:
        """Lag = the store's last position minus the published checkpoint (0: caught up);
        `chained_position`: the position of the chain's last link."""
        schema = self.store.schema
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT (SELECT coalesce(max(position), 0) FROM {self.store.table}) AS stored,"
                f" (SELECT coalesce(max(position), 0) FROM {schema}.relay_checkpoint WHERE relay = $1) AS published,"
                f" (SELECT count(*) FROM {schema}.relay_quarantine WHERE relay = $1) AS quarantined,"
                f" (SELECT coalesce(max(position), 0) FROM {schema}.event_chain) AS chained", self.name)
        return {"relay": self.name, "store_position": row["stored"], "published_position": row["published"],
                "lag": max(0, row["stored"] - row["published"]), "quarantined": row["quarantined"],
                "chained_position": row["chained"]}

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self.pool.acquire()
        try:
            while not stop.is_set():
                if await listener.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                    break
                await asyncio.sleep(1.0)  # another instance holds the relay: stand by
            if stop.is_set():
                return
            await listener.add_listener(self.store.channel, self._on_notify)
            held = 0  # rounds in a row that found positions held back by the horizon
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.publish_pending()
                except (OSError, asyncpg.PostgresError, KafkaError) as exc:
                    # Nothing is lost: unpublished events stay past the checkpoint. Retry.
                    log.warning("relay %s: publish failed, retrying: %s", self.name, exc)
                # Positions held back by older transactions are published as soon as those
                # end, which nothing notifies: look again shortly (2 ms, doubling), not at
                # the next poll (docs/benchmark.md: this was most of a command's latency).
                held = held + 1 if self.horizon.pending else 0
                timeout = min(self.poll_seconds, 0.001 * 2 ** held) if held else self.poll_seconds
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
        finally:
            try:
                await listener.remove_listener(self.store.channel, self._on_notify)
                await listener.execute("SELECT pg_advisory_unlock_all()")
            finally:
                await self.pool.release(listener)


async def rewind(conn: asyncpg.Connection, schema: str) -> None:
    """Make the store's relay republish its whole history (for a broker that lost its log);
    consumers deduplicate by event id. The NOTIFY wakes a running relay at once."""
    await conn.execute(f"UPDATE {schema}.relay_checkpoint SET position = 0")
    await conn.execute("SELECT pg_notify($1, '')", f"{schema}_events")
