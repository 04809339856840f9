"""One SERVER span per HTTP request, continuing the caller's W3C trace context.

A pure ASGI middleware instead of the FastAPI/ASGI instrumentation (ADR 0017): that one costs more CPU per
request than the rest of the gateway's own work (it resolves the route by matching every route a second
time, collects a dozen attributes, wraps every ASGI message and feeds metric instruments), while traces
need only the context, a name and the few attributes below. The span is named after the route template
(``POST /v1/tickets``) once routing has found it; query strings are never recorded, since a help search
may hold text a customer pasted, secrets included.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Probes and scrapes: frequent, and nothing to follow.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class HttpTracingMiddleware:
    def __init__(self, app: ASGIApp, *, untraced_paths: Iterable[str] = UNTRACED_PATHS) -> None:
        self.app = app
        self._untraced = frozenset(untraced_paths)
        self._tracer = trace.get_tracer("services.gateway")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._untraced:
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        fields = propagate.get_global_textmap().fields
        headers = ((raw.decode("latin-1"), value) for raw, value in scope["headers"])
        carrier = {name: value.decode("latin-1") for name, value in headers if name in fields}
        status = 0

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self._tracer.start_as_current_span(
            method,
            # Without a traceparent the request starts a trace of its own, whatever runs around the app.
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"], "url.scheme": scope["scheme"]},
        ) as span:
            try:
                await self.app(scope, receive, observed_send)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
