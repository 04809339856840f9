"""The gateway's HTTP metrics, by method, route template (never the raw path: it holds ids) and status."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.kit.metrics import LATENCY_BUCKETS

HTTP_REQUESTS = Counter(
    "supportdesk_http_requests_total",
    "HTTP requests answered by the gateway, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "supportdesk_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
UNMATCHED = "unmatched"
_MAX_CACHED = 4096
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetricsMiddleware:
    """Counts and times every HTTP request. Outside the last-resort handler, so its 500s are counted too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Labelled children by (method, route, status): ``labels()`` takes a lock and builds a key every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED)
            key = (scope["method"], route, status)
            children = self._children.get(key)
            if children is None:
                method = scope["method"] if scope["method"] in _METHODS else "other"
                children = HTTP_REQUESTS.labels(method, route, str(status)), HTTP_DURATION.labels(method, route)
                if len(self._children) < _MAX_CACHED:
                    self._children[key] = children
            children[0].inc()
            children[1].observe(elapsed)


async def metrics_endpoint(_: Request) -> Response:
    """Prometheus text format; scraped from inside the deployment (keep it off the public ingress)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
