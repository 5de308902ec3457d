"""Runs one service as one OS process: its consumer (one FastStream batch subscriber, see
`infra.runtime.consumer`), its outbox relay and its HTTP API (Starlette on uvicorn), sharing
one asyncpg pool and one Kafka producer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.runtime.db import create_pool
from contracts import topics, topology
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from infra.runtime.consumer import Applier, CommandHandler, Consumer, EventHandler, HandlerApplier
from infra.runtime.eventstore import EventStore
from infra.runtime.messaging import ensure_topics, new_producer
from infra.runtime.relay import OutboxRelay
from infra.runtime.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a running service holds; handed to route factories and background tasks."""

    settings: Settings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    store: EventStore
    consumer: Consumer | None = None


class TopologyError(ValueError):
    """A service's wiring disagrees with the contracts."""


@dataclass
class ServiceSpec:
    """A service as its bootstrap declares it: its handlers, routes and background work.
    What it subscribes to and publishes on is derived from them and from the contracts
    (`contracts.topology`), never listed by hand."""

    name: str
    event_handlers: dict[str, EventHandler] = field(default_factory=dict)
    command_handlers: dict[str, CommandHandler] = field(default_factory=dict)
    routes: Callable[[Runtime], list[Route]] = lambda rt: []
    background: Callable[[Runtime, asyncio.Event], object] | None = None
    # How fetches are applied; by default the command and event handlers above. A service
    # with its own applier (the projection) reads every event topic.
    applier: Callable[[Runtime], Applier] | None = None

    def __post_init__(self) -> None:
        if self.name not in topology.SERVICES:
            raise TopologyError(f"{self.name!r} is not one of contracts.topology.SERVICES {topology.SERVICES}")
        own = topology.commands_topic(self.name)
        for command_type in self.command_handlers:
            cls = COMMAND_TYPES.get(command_type)
            if cls is None or cls.topic != own:
                where = "no contract" if cls is None else f"its contract names topic {cls.topic!r}"
                raise TopologyError(f"{self.name} handles command {command_type!r} but {where}, not {own!r}")
        for event_type in self.event_handlers:
            if event_type not in EVENT_TYPES:
                raise TopologyError(f"{self.name} handles event {event_type!r}, which no contract defines")
            if topology.service_of_event(event_type) in (None, self.name):
                raise TopologyError(f"{self.name} handles {event_type!r}: a service consumes other contexts' events")

    @property
    def schema(self) -> str:
        return self.name

    @property
    def publishes_to(self) -> str:
        return topology.events_topic(self.name)

    @property
    def subscribes_to(self) -> tuple[str, ...]:
        if self.applier is not None:
            return topics.EVENT_TOPICS
        upstream = {topology.events_topic(topology.service_of_event(t)) for t in self.event_handlers}
        own = (topology.commands_topic(self.name),) if self.command_handlers else ()
        return own + tuple(sorted(upstream))

    def build_applier(self, rt: Runtime) -> Applier:
        if self.applier is not None:
            return self.applier(rt)
        return HandlerApplier(rt.store, self.command_handlers, self.event_handlers)


def build_consumer(spec: ServiceSpec, rt: Runtime) -> Consumer:
    s = rt.settings
    return Consumer(name=spec.name, schema=spec.schema, topics_=spec.subscribes_to, applier=spec.build_applier(rt),
                    pool=rt.pool, producer=rt.producer, max_attempts=s.max_handler_attempts,
                    max_records=s.consumer_max_records, fetch_max_wait_ms=s.fetch_max_wait_ms)


def build_broker(bootstrap: str, consumer: Consumer | None) -> KafkaBroker:
    broker = KafkaBroker(bootstrap, enable_idempotence=False, acks="all", logger=None)
    if consumer is not None:
        consumer.subscribe(broker)
    return broker


def build_app(spec: ServiceSpec, settings: Settings) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"service": spec.name, "status": "ok"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        pool = await create_pool(settings.database_url)
        producer = new_producer(settings.kafka_bootstrap_servers)
        await producer.start()
        await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions)
        store = EventStore(spec.schema)
        runtime = Runtime(settings, pool, producer, store)
        if spec.subscribes_to:
            runtime.consumer = build_consumer(spec, runtime)
        broker = build_broker(settings.kafka_bootstrap_servers, runtime.consumer)
        stop = asyncio.Event()
        relay = OutboxRelay(pool, store, spec.publishes_to, producer, batch_size=settings.relay_batch_size,
                            poll_seconds=settings.relay_poll_seconds)
        tasks = [asyncio.create_task(relay.run(stop), name=f"{spec.name}-relay")]
        if spec.background:
            tasks.append(asyncio.create_task(spec.background(runtime, stop), name=f"{spec.name}-background"))
        await broker.start()
        for route in spec.routes(runtime):
            app.router.routes.append(route)
        log.info("%s started", spec.name)
        try:
            yield
        finally:
            stop.set()
            if runtime.consumer is not None:
                runtime.consumer.stop()
            await broker.stop()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(t, timeout=10)
            await producer.stop()
            await pool.close()

    return Starlette(routes=[Route("/health", health)], lifespan=lifespan)


def serve(spec: ServiceSpec) -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {spec.name} %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = build_app(spec, settings)
    uvicorn.run(app, host=settings.http_host, port=settings.port_for(spec.name), log_level="warning",
                lifespan="on")
