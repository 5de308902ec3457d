"""Runs one service as one OS process: its consumer (one FastStream batch subscriber, see
`infra.runtime.consumer`), its outbox relay and its HTTP API (Starlette on uvicorn), sharing
one asyncpg pool and one Kafka producer.

Its HTTP API is its declared endpoints (`infra.runtime.endpoints`): those every service has
(`host_endpoints`: /health, /status, /whoami, /openapi.json, /command-outcomes, POST
/admin/republish) and its
own (`ServiceSpec.endpoints`), each served through the one edge (`infra.runtime.edge`) that
authenticates, authorises and records refusals.

Background tasks (the relay, any service background work) run under `supervise`: a task that
raises is logged with its traceback and restarted with backoff, never left dead. `/health`
answers 503 while a task is failing; it and `/status` report each relay's lag (store
position minus published checkpoint) and the consumer's lag and last error.
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
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contracts import topics, topology
from contracts.registry import COMMAND_TYPES, EVENT_TYPES
from infra.runtime import edge
from infra.runtime.access.commands import COMMAND_ACTIONS, CommandGuard
from infra.runtime.access.http import Authenticator, PgDirectory
from infra.runtime.access.policy import Action
from infra.runtime.access.signing import EventVerifier, RecordSigner, SigningKeyError, parse_public_keys
from infra.runtime.access.tokens import TokenVerifier
from infra.runtime.endpoints import PUBLIC, SIGNED_IN, Call, Endpoint, Handler, to
from infra.runtime.openapi import document
from infra.runtime.db import create_pool
from infra.runtime.admission import Admission, Saturated, busy, unavailable
from infra.runtime.consumer import Applier, CommandHandler, Consumer, EventHandler, HandlerApplier, is_infrastructure
from infra.runtime.eventstore import EventStore
from infra.runtime.idempotency import lookup as key_outcome
from infra.runtime.idempotency import keyed, valid_key
from infra.runtime.messaging import ensure_topics, new_producer
from infra.runtime.relay import OutboxRelay, rewind
from infra.runtime.settings import Settings

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
    service: str
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    store: EventStore
    consumer: Consumer | None = None
    relays: list[OutboxRelay] = field(default_factory=list)
    tasks: list[TaskHealth] = field(default_factory=list)
    authenticator: Authenticator | None = None
    event_verifier: EventVerifier | None = None
    admission: Admission = field(default_factory=lambda: Admission(64, 1.0))

    async def relay_status(self) -> list[dict[str, Any]]:
        return [await relay.status() for relay in self.relays]

    async def consumer_status(self) -> dict[str, Any] | None:
        if self.consumer is None:
            return None
        return {"group": self.consumer.group_id, "lag": await self.consumer.lag(),
                "applied": self.consumer.applied, "waiting_for": self.consumer.last_error,
                # events refused as not signed by their topic's owner, dead-lettered (issue 8)
                "refused_unauthentic": self.consumer.refused_unauthentic}


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
    endpoints: tuple[Endpoint, ...] = ()  # its own HTTP endpoints, besides `host_endpoints`
    background: Callable[[Runtime, asyncio.Event], Awaitable[object]] | None = None
    # How fetches are applied; by default the command and event handlers above. A service
    # with its own applier (the projection) reads every event topic.
    applier: Callable[[Runtime], Applier] | None = None
    # The centre a subject is enrolled at, from the service's local view: a command naming a
    # subject is authorised against it (infra/runtime/access/commands.py). None: the service
    # keeps no such view, and only the centre a command names counts.
    subject_centre: Callable[[asyncpg.Connection, str], Awaitable[str | None]] | None = None

    def __post_init__(self) -> None:
        if self.name not in topology.SERVICES:
            raise TopologyError(f"{self.name!r} is not one of contracts.topology.SERVICES {topology.SERVICES}")
        own = topology.commands_topic(self.name)
        for command_type in self.command_handlers:
            cls = COMMAND_TYPES.get(command_type)
            if cls is None or cls.topic != own:
                where = "no contract" if cls is None else f"its contract names topic {cls.topic!r}"
                raise TopologyError(f"{self.name} handles command {command_type!r} but {where}, not {own!r}")
            if command_type not in COMMAND_ACTIONS:
                raise TopologyError(f"{self.name} handles command {command_type!r}, which has no policy action in "
                                    f"infra/runtime/access/commands.py COMMAND_ACTIONS")
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
        # Every command is admitted by its credential and the policy first (issue 8, item 4).
        guard = CommandGuard(rt.authenticator.verifier if rt.authenticator else None,
                             subject_centre=self.subject_centre)
        # ... and then by its idempotency key (infra/runtime/idempotency.py, issue 12 item 4)
        return HandlerApplier(rt.store, guard.guard(keyed(self.command_handlers)), self.event_handlers)


def build_consumer(spec: ServiceSpec, rt: Runtime) -> Consumer:
    s = rt.settings
    return Consumer(name=spec.name, schema=spec.schema, topics_=spec.subscribes_to, applier=spec.build_applier(rt),
                    pool=rt.pool, producer=rt.producer, max_attempts=s.max_handler_attempts,
                    max_records=s.consumer_max_records, fetch_max_wait_ms=s.fetch_max_wait_ms,
                    authenticity=rt.event_verifier, session_timeout_ms=s.kafka_session_timeout_ms)


def build_broker(bootstrap: str, consumer: Consumer | None, **security: str) -> KafkaBroker:
    broker = KafkaBroker(bootstrap, enable_idempotence=False, acks="all", logger=None, **security)
    if consumer is not None:
        consumer.subscribe(broker)
    return broker


def host_endpoints(spec: ServiceSpec) -> tuple[Endpoint, ...]:
    """The endpoints every service has."""

    def health(rt: Runtime) -> Handler:
        async def handle(call: Call) -> JSONResponse:
            try:
                relays = await rt.relay_status()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                return JSONResponse({"service": spec.name, "status": "failing", "error": f"database: {exc}"},
                                    status_code=503)
            failing = any(t.failing for t in rt.tasks)
            state = "failing" if failing else "degraded" if any(r["quarantined"] for r in relays) else "ok"
            return JSONResponse({"service": spec.name, "status": state, "relays": relays,
                                 "tasks": [asdict(t) for t in rt.tasks]}, status_code=503 if failing else 200)
        return handle

    def status(rt: Runtime) -> Handler:
        async def handle(call: Call) -> JSONResponse:
            """`lag` is the consumer's (records not yet applied); `ready` once it holds partitions."""
            consumer = await rt.consumer_status()
            lag = consumer["lag"] if consumer else 0
            body = {"service": spec.name, "ready": lag is not None, "lag": lag, "consumer": consumer,
                    "relays": await rt.relay_status(), "admission": rt.admission.status()}
            return JSONResponse(body, status_code=200 if body["ready"] else 503)
        return handle

    def whoami(rt: Runtime) -> Handler:
        async def handle(call: Call) -> JSONResponse:
            return JSONResponse(call.principal.to_json())
        return handle

    def openapi(rt: Runtime) -> Handler:
        body = document(spec.name, endpoints_of(spec))

        async def handle(call: Call) -> JSONResponse:
            return JSONResponse(body)
        return handle

    def republish(rt: Runtime) -> Handler:
        async def handle(call: Call) -> JSONResponse:
            async with rt.pool.acquire() as conn:
                await rewind(conn, spec.schema)
            log.info("%s asked %s to republish its whole history", call.actor, spec.name)
            return JSONResponse({"service": spec.name, "republishing": True}, status_code=202)
        return handle

    def command_outcome(rt: Runtime) -> Handler:
        async def handle(call: Call) -> JSONResponse:
            """The outcome recorded under an idempotency key, for the principal that submitted
            it (anyone else is told nothing is recorded): how the submitter of a command on a
            topic, which has no reply, learns the original outcome of a resubmission."""
            key = call.request.query_params.get("key", "")
            if not valid_key(key):
                return JSONResponse({"key": key or None, "recorded": False})
            async with rt.pool.acquire() as conn:
                found = await key_outcome(conn, spec.schema, key)
            if found is None or found.actor != call.actor or found.outcome == "in_progress":
                return JSONResponse({"key": key, "recorded": False})
            return JSONResponse({**found.to_json(), "recorded": True})
        return handle

    return (
        Endpoint("GET", "/health", PUBLIC, health, "Liveness: the relays' lag and the background tasks",
                 answers={200: "running", 503: "a background task or the database is failing"}),
        Endpoint("GET", "/status", to(Action.READ_STATUS), status, "The consumer's and relays' lag",
                 answers={200: "consuming", 503: "the consumer holds no partitions yet"}),
        Endpoint("GET", "/whoami", SIGNED_IN, whoami, "The authenticated caller and its memberships"),
        Endpoint("GET", "/openapi.json", SIGNED_IN, openapi, "This document"),
        Endpoint("GET", "/command-outcomes", SIGNED_IN, command_outcome,
                 "The outcome of the caller's own command recorded under an idempotency key (`?key=`): accepted "
                 "with the events it caused, or refused with the reason (issue 12 item 4)",
                 answers={200: "`recorded`: false, or the outcome"}),
        Endpoint("POST", "/admin/republish", to(Action.ADMIN_REPUBLISH), republish,
                 "Republish the service's whole event history (for a broker that lost its log); "
                 "consumers deduplicate by event id", answers={202: "the relay starts again from the first event"}),
    )


def endpoints_of(spec: ServiceSpec) -> tuple[Endpoint, ...]:
    """Every HTTP endpoint of a service: what its routes, the OpenAPI document and the
    generated access test are made from."""
    return host_endpoints(spec) + spec.endpoints


# never turned away (infra/runtime/admission.py): they say how the service is
PROBES = frozenset({"/health", "/ready", "/status"})


def _route(ep: Endpoint, running: dict[str, Any]) -> Route:
    async def endpoint(request: Request):
        rt: Runtime = running["runtime"]
        try:
            if ep.path in PROBES:
                return await edge.serve(ep, running["handlers"][ep.key], rt, request)
            async with rt.admission.admit():
                return await edge.serve(ep, running["handlers"][ep.key], rt, request)
        except Saturated as exc:
            return busy(exc)
        except Exception as exc:
            if not is_infrastructure(exc):
                raise
            log.warning("%s %s: answered 503, unreachable: %r", ep.method, ep.path, exc)
            return unavailable(exc)

    return Route(ep.path, endpoint, methods=[ep.method])


def build_app(spec: ServiceSpec, settings: Settings) -> Starlette:
    running: dict[str, Any] = {}
    endpoints = endpoints_of(spec)
    keys = [ep.key for ep in endpoints]
    if len(set(keys)) != len(keys):
        raise TopologyError(f"{spec.name} declares an endpoint twice: {sorted(k for k in keys if keys.count(k) > 1)}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if settings.token_public_key is None:
            log.warning("CELLTRAIL_TOKEN_PUBLIC_KEY is not set: %s accepts API keys only, no tokens", spec.name)
        verifier = TokenVerifier(settings.token_public_key) if settings.token_public_key else None  # bad key: fail now
        signer, event_verifier = service_keys(spec.name, settings)
        security = settings.kafka_security()
        pool = await create_pool(settings.database_url)
        producer = new_producer(settings.kafka_bootstrap_servers, **security)
        await producer.start()
        await ensure_topics(settings.kafka_bootstrap_servers, settings.topic_partitions, **security)
        store = EventStore(spec.schema)
        relay = OutboxRelay(pool, store, spec.publishes_to, producer, batch_size=settings.relay_batch_size,
                            poll_seconds=settings.relay_poll_seconds, head_interval=settings.chain_head_seconds,
                            signer=signer)
        runtime = running["runtime"] = Runtime(settings, spec.name, pool, producer, store, relays=[relay],
                                               authenticator=Authenticator(PgDirectory(pool), verifier),
                                               event_verifier=event_verifier,
                                               admission=Admission(settings.http_max_in_flight,
                                                                   settings.http_admission_wait_seconds))
        if spec.subscribes_to:
            runtime.consumer = build_consumer(spec, runtime)
        broker = build_broker(settings.kafka_bootstrap_servers, runtime.consumer, **security)
        stop = asyncio.Event()
        jobs: dict[str, Callable[[asyncio.Event], Awaitable[object]]] = {f"{spec.name}-relay": relay.run}
        if spec.background:
            jobs[f"{spec.name}-background"] = lambda stop_: spec.background(runtime, stop_)
        runtime.tasks = [TaskHealth(name) for name in jobs]
        tasks = [asyncio.create_task(supervise(health, job, stop), name=health.name)
                 for health, job in zip(runtime.tasks, jobs.values())]
        running["handlers"] = {ep.key: ep.make(runtime) for ep in endpoints}
        await broker.start()
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

    return Starlette(routes=[_route(ep, running) for ep in endpoints], lifespan=lifespan)


def service_keys(service: str, settings: Settings) -> tuple[RecordSigner, EventVerifier]:
    """The service's signature on what it publishes, and the check of what it applies
    (infra/runtime/access/signing.py); no keys, no service."""
    if settings.service_key is None or not settings.service_public_keys:
        raise SigningKeyError(f"{service} needs CELLTRAIL_SERVICE_KEY (its own Ed25519 key) and "
                              f"CELLTRAIL_SERVICE_PUBLIC_KEYS (every service's public key): it signs every "
                              f"event it publishes and applies only events signed by their topic's owner; "
                              f"`celltrail up` generates them into its home")
    return (RecordSigner(service, settings.service_key.get_secret_value()),
            EventVerifier(parse_public_keys(settings.service_public_keys)))


def serve(spec: ServiceSpec) -> None:
    settings = Settings()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {spec.name} %(levelname)s %(name)s: %(message)s")
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = build_app(spec, settings)
    uvicorn.run(app, host=settings.http_host, port=settings.port_for(spec.name), log_level="warning",
                lifespan="on")
