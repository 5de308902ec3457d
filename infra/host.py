"""Runs one service as one OS process: its FastStream subscribers, its outbox relay and its
HTTP API (Starlette on uvicorn), sharing one asyncpg pool and one Kafka producer.

Background tasks (the relay, the projection's consumer) run under `supervise`: a task that
raises is logged with its traceback and restarted with backoff, never left dead. `/health`
answers 503 while a task is failing; it and `/status` report each relay's lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
import uvicorn
from aiokafka import AIOKafkaProducer
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from infra.db import create_pool
from infra.eventstore import EventStore, Inbox
from infra.messaging import CommandHandler, DeadLetters, EventHandler, Pipeline, ensure_topics, new_producer
from infra.relay import OutboxRelay
from infra.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TaskHealth:
    name: str
    failing: bool = False  # crashed and waiting to be restarted
    restarts: int = 0
    last_error: str | None = None


async def supervise(health: TaskHealth, run: Callable[[asyncio.Event], Awaitable[object]], stop: asyncio.Event,
                    *, backoff: float = 0.5, max_backoff: float = 30.0) -> None:
    """Run `run(stop)` until `stop` is set, restarting it whenever it raises or returns early;
    the delay doubles while it keeps failing (up to `max_backoff`) and resets after a long run."""
    delay = backoff
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        try:
            await run(stop)
        except Exception as exc:  # logged with its traceback and restarted: never silent
            log.exception("task %s failed; restarting in %.1fs", health.name, delay)
            health.last_error = f"{type(exc).__name__}: {exc}"
        else:
            if stop.is_set():
                return
            log.error("task %s returned before it was asked to stop; restarting in %.1fs", health.name, delay)
            health.last_error = "returned before it was asked to stop"
        health.failing, health.restarts = True, health.restarts + 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        health.failing = False
        delay = backoff if loop.time() - started > max_backoff else min(max_backoff, delay * 2)


@dataclass
class Runtime:
    """What a running service holds; handed to route factories and background tasks."""

    settings: Settings
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    store: EventStore
    relays: list[OutboxRelay] = field(default_factory=list)
    tasks: list[TaskHealth] = field(default_factory=list)

    async def relay_status(self) -> list[dict[str, Any]]:
        return [await relay.status() for relay in self.relays]


@dataclass
class ServiceSpec:
    name: str
    schema: str
    publishes_to: str
    subscribes_to: tuple[str, ...] = ()
    event_handlers: dict[str, EventHandler] = field(default_factory=dict)
    command_handlers: dict[str, CommandHandler] = field(default_factory=dict)
    routes: Callable[[Runtime], list[Route]] = lambda rt: []
    background: Callable[[Runtime, asyncio.Event], Awaitable[object]] | None = None
    # Fields the service adds to /status; `"ready": False` answers 503.
    status: Callable[[Runtime], Awaitable[dict[str, Any]]] | None = None


def build_broker(spec: ServiceSpec, pipeline: Pipeline, bootstrap: str, fetch_max_wait_ms: int = 20) -> KafkaBroker:
    broker = KafkaBroker(bootstrap, enable_idempotence=False, acks="all", logger=None)
    if spec.subscribes_to:
        @broker.subscriber(
            *spec.subscribes_to,
            group_id=f"celltrail-{spec.name}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            # At-least-once: the offset is committed only after the handler's transaction
            # committed; an exception seeks back so the record is delivered again.
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )
        async def on_record(message: KafkaMessage) -> None:
            await pipeline.process(message.raw_message)

    return broker


def build_app(spec: ServiceSpec, settings: Settings) -> Starlette:
    running: dict[str, Runtime] = {}

    async def health(request: Request) -> JSONResponse:
        rt = running["runtime"]
        try:
            relays = await rt.relay_status()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            return JSONResponse({"service": spec.name, "status": "failing", "error": f"database: {exc}"},
                                status_code=503)
        failing = any(t.failing for t in rt.tasks)
        state = "failing" if failing else "degraded" if any(r["quarantined"] for r in relays) else "ok"
        return JSONResponse({"service": spec.name, "status": state, "relays": relays,
                             "tasks": [asdict(t) for t in rt.tasks]}, status_code=503 if failing else 200)

    async def status(request: Request) -> JSONResponse:
        rt = running["runtime"]
        body = {"service": spec.name, "ready": True, "relays": await rt.relay_status()}
        if spec.status:
            body |= await spec.status(rt)
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        pool = await create_pool(settings.database_url)
        producer = new_producer(settings.kafka_bootstrap_servers)
        await producer.start()
        await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions)
        store = EventStore(spec.schema)
        relay = OutboxRelay(pool, store, spec.publishes_to, producer, batch_size=settings.relay_batch_size,
                            poll_seconds=settings.relay_poll_seconds)
        runtime = running["runtime"] = Runtime(settings, pool, producer, store, relays=[relay])
        pipeline = Pipeline(pool=pool, inbox=Inbox(spec.schema, spec.name),
                            dead_letters=DeadLetters(producer, spec.name), store=store,
                            event_handlers=spec.event_handlers, command_handlers=spec.command_handlers,
                            max_attempts=settings.max_handler_attempts)
        broker = build_broker(spec, pipeline, settings.kafka_bootstrap_servers, settings.fetch_max_wait_ms)
        stop = asyncio.Event()
        jobs: dict[str, Callable[[asyncio.Event], Awaitable[object]]] = {f"{spec.name}-relay": relay.run}
        if spec.background:
            jobs[f"{spec.name}-background"] = lambda stop_: spec.background(runtime, stop_)
        runtime.tasks = [TaskHealth(name) for name in jobs]
        tasks = [asyncio.create_task(supervise(health, job, stop), name=health.name)
                 for health, job in zip(runtime.tasks, jobs.values())]
        await broker.start()
        for route in spec.routes(runtime):
            app.router.routes.append(route)
        log.info("%s started", spec.name)
        try:
            yield
        finally:
            stop.set()
            await broker.stop()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(t, timeout=10)
            await producer.stop()
            await pool.close()

    return Starlette(routes=[Route("/health", health), Route("/status", status)], lifespan=lifespan)


def serve(spec: ServiceSpec) -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {spec.name} %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = build_app(spec, settings)
    uvicorn.run(app, host=settings.http_host, port=settings.port_for(spec.name), log_level="warning",
                lifespan="on")
