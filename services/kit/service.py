"""Runs one gRPC service process: pool, bus, outbox relay, consumers, gRPC server, and a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from services.kit.bus.consumer import EventConsumer, Handler, Skips, Together
from services.kit.bus.envelope import Envelope
from services.kit.bus.gauges import bus_samplers
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import ALL_STREAMS, ConsumerSpec, declare_consumer, declare_streams
from services.kit.db import create_pool
from services.kit.grpc_server import GrpcServer
from services.kit.heap import freeze_startup_heap
from services.kit.logging import configure_logging
from services.kit.metrics import Sample, sample_forever
from services.kit.metrics_http import MetricsEndpoint
from services.kit.migrations import pending_migrations
from services.kit.settings import ServiceSettings
from services.kit.telemetry import setup_tracing

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a service's wiring receives to build its servicers and event handlers."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    js: JetStreamContext


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    name: str
    schema: str
    # The package whose migrations/ folder holds the service's SQL.
    package: str
    grpc_services: Sequence[str]
    register: Callable[[grpc.aio.Server, Runtime], None]
    consumers: Callable[[Runtime], list[tuple[ConsumerSpec, Handler]]] = field(default=lambda _: [])
    # Event types some consumers (by durable name) apply in batches, one transaction for many events.
    together: Callable[[Runtime], Mapping[str, Together]] = field(default=lambda _: {})
    # Events some consumers (by durable name) would write nothing for: acked without an inbox transaction.
    skips: Callable[[Runtime], Mapping[str, Skips]] = field(default=lambda _: {})
    # Other long-running loops of the service (e.g. a timer scheduler), run and supervised like consumers.
    workers: Callable[[Runtime], list[Callable[[], Coroutine[Any, Any, None]]]] = field(default=lambda _: [])
    # Gauges the service reads from its own tables (queue depth, agents by presence), sampled on a slow timer.
    samplers: Callable[[Runtime], list[tuple[str, Sample]]] = field(default=lambda _: [])
    # Counts the service's own facts (offers, SLA outcomes) from each event the relay got acknowledged.
    on_published: Callable[[Envelope], None] | None = None


class ServiceNotReady(RuntimeError):
    """The service cannot start (e.g. its schema is not migrated); retrying without a change will not help."""


async def connect_bus(url: str, name: str) -> NatsClient:
    return await nats.connect(
        servers=[url],
        name=name,
        connect_timeout=2,
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
    )


async def run_service(definition: ServiceDefinition, settings: ServiceSettings) -> None:
    """Run until SIGTERM/SIGINT, or until a background task fails (the supervisor then restarts us)."""
    configure_logging(definition.name, settings.log_level)
    tracing = setup_tracing(definition.name, settings.instance)
    pool = await create_pool(
        settings.database_url,
        schema=definition.schema,
        application=f"{definition.name}:{settings.instance}",
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
    )
    nc: NatsClient | None = None
    try:
        async with pool.acquire() as conn:
            pending = await pending_migrations(conn, definition.schema, definition.package)
        if pending:
            raise ServiceNotReady(f"schema {definition.schema!r} needs migrations {pending}; run `supportdesk migrate`")
        nc = await connect_bus(settings.nats_url, f"{definition.name}:{settings.instance}")
        js = nc.jetstream()
        await declare_streams(js, settings, ALL_STREAMS)
        runtime = Runtime(settings=settings, pool=pool, js=js)
        consumers = definition.consumers(runtime)
        for spec, _ in consumers:
            await declare_consumer(js, spec, settings)
        server = GrpcServer(
            settings.grpc_host,
            settings.grpc_port,
            lambda s: definition.register(s, runtime),
            definition.grpc_services,
        )
        endpoint = MetricsEndpoint(settings.metrics_bind_host, settings.metrics_port)
        try:
            await _serve(definition, settings, runtime, server, consumers, endpoint)
        finally:
            endpoint.close()
    finally:
        if nc is not None and nc.is_connected:
            with contextlib.suppress(Exception):
                await nc.drain()
        await pool.close()
        tracing.shutdown()


async def _serve(
    definition: ServiceDefinition,
    settings: ServiceSettings,
    runtime: Runtime,
    server: GrpcServer,
    consumers: list[tuple[ConsumerSpec, Handler]],
    endpoint: MetricsEndpoint,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    relay = OutboxRelay(
        runtime.pool,
        runtime.js,
        definition.schema,
        batch_size=settings.outbox_batch_size,
        poll_interval_s=settings.outbox_poll_interval_s,
        on_published=definition.on_published,
    )
    samplers = bus_samplers(runtime.pool, runtime.js, definition.name, [spec for spec, _ in consumers])
    samplers += definition.samplers(runtime)
    workers = [
        asyncio.create_task(relay.run(), name="outbox-relay"),
        asyncio.create_task(sample_forever(samplers, settings.metrics_sample_interval_s), name="metric-samplers"),
    ]
    together = definition.together(runtime)
    skips = definition.skips(runtime)
    workers += [
        asyncio.create_task(
            EventConsumer(
                runtime.js,
                runtime.pool,
                spec,
                handler,
                max_deliver=settings.consumer_max_deliver,
                concurrency=settings.consumer_concurrency,
                together=together.get(spec.durable),
                skips=skips.get(spec.durable),
            ).run(),
            name=f"consumer-{spec.durable}",
        )
        for spec, handler in consumers
    ]
    workers += [asyncio.create_task(work(), name=f"worker-{i}") for i, work in enumerate(definition.workers(runtime))]
    await server.start()
    freeze_startup_heap()
    log.info(
        "service started",
        extra={"grpc": server.address, "metrics": endpoint.address, "consumers": [s.durable for s, _ in consumers]},
    )
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    done, _ = await asyncio.wait([stopped, *workers], return_when=asyncio.FIRST_COMPLETED)
    failed = next((t for t in done if t is not stopped), None)
    await server.stop(settings.grpc_grace_s)
    for task in [stopped, *workers]:
        task.cancel()
    await asyncio.gather(stopped, *workers, return_exceptions=True)
    if failed is not None:
        raise RuntimeError(f"background task {failed.get_name()} stopped") from failed.exception()
    log.info("service stopped")
