"""The gateway's FastAPI application, built by ``create_app``; nothing is opened at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

import grpc.aio
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from services.gateway.auth import build_verifier
from services.gateway.clients import ServiceClients
from services.gateway.deadline import RequestDeadlineMiddleware
from services.gateway.grpc_errors import rpc_error_handler
from services.gateway.http_tracing import HttpTracingMiddleware
from services.gateway.metrics import HttpMetricsMiddleware, metrics_endpoint
from services.gateway.middleware import BodySizeLimitMiddleware, CatchAllMiddleware
from services.gateway.openapi import install_openapi
from services.gateway.problems import install_problem_handlers
from services.gateway.routes import (
    agents,
    conversation,
    deliveries,
    health,
    notifications,
    offers,
    ops,
    priority_rules,
    queues,
    routing_rules,
    sla,
    stream,
    tickets,
    webhooks,
)
from services.gateway.routes import help as help_routes
from services.gateway.settings import GatewaySettings
from services.gateway.stream import StreamHub
from services.gateway.throttling import RateLimitHeadersMiddleware, RateLimits

DESCRIPTION = """\
Public API of the wallet's 24/7 human customer service.

Authenticate with `Authorization: Bearer <JWT>`; roles are `customer`, `agent`, `supervisor` and `admin`.
Errors are `application/problem+json` (RFC 9457) with a stable `code`; a 503 carries `Retry-After`.
"""


def _version() -> str:
    try:
        return version("supportdesk")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: GatewaySettings, clients: ServiceClients | None = None) -> FastAPI:
    """The app. Without ``clients`` the lifespan opens channels to the peers and closes them at shutdown."""
    verifier = build_verifier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub = StreamHub(settings.nats_url, queue_size=settings.stream_queue_size)
        app.state.stream_hub = hub
        hub.start()
        try:
            if clients is not None:
                yield
                return
            opened = ServiceClients.from_settings(settings)
            app.state.clients = opened
            try:
                yield
            finally:
                await opened.close()
        finally:
            await hub.close()

    app = FastAPI(
        title="Supportdesk API",
        description=DESCRIPTION,
        version=_version(),
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry support would add spans per dependency and endpoint and record query
        # strings; HttpTracingMiddleware makes the one request span instead.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.verifier = verifier
    app.state.rate_limits = RateLimits.from_settings(settings)
    if clients is not None:
        app.state.clients = clients

    install_problem_handlers(app)
    app.add_exception_handler(grpc.aio.AioRpcError, rpc_error_handler)

    # add_middleware wraps what is already there: the last added runs first.
    app.add_middleware(RequestDeadlineMiddleware, timeout_s=settings.request_timeout_s)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    if app.state.rate_limits is not None:
        app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(HttpMetricsMiddleware)
    # Outside the metrics, so the request's span covers everything the gateway does for it.
    app.add_middleware(HttpTracingMiddleware)
    if settings.cors_origins:
        # Outermost, so error answers carry CORS headers too and browsers can read them.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "RateLimit", "RateLimit-Policy"],
        )

    app.include_router(health.router)
    app.include_router(tickets.router)
    app.include_router(conversation.router)
    app.include_router(priority_rules.router)
    app.include_router(agents.router)
    app.include_router(offers.router)
    app.include_router(queues.router)
    app.include_router(notifications.router)
    app.include_router(help_routes.router)
    app.include_router(routing_rules.router)
    app.include_router(sla.router)
    app.include_router(webhooks.router)
    app.include_router(deliveries.router)
    app.include_router(stream.router)
    app.include_router(ops.router)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    install_openapi(app)
    return app
