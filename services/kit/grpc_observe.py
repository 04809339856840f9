"""Every unary RPC a service serves runs in a SERVER span continuing the caller's trace, and is counted and
timed by method and status.

The handlers are wrapped once, when the service registers them (``ObservedServer``), instead of by server
interceptors: grpc.aio runs its interceptor chain as coroutines on every call and rebuilt the handlers each
time, which cost a tenth of ticketing's CPU per call (ADR 0017). The span is named after the full method
(``/support.ticketing.v1.TicketingService/CreateTicket``) with the ``rpc.*`` attributes; the metrics are
those of ``services.kit.metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from services.kit.metrics import GRPC_DURATION, GRPC_HANDLED


class ObservedServer:
    """Stands in for a ``grpc.aio.Server`` while services register: the handlers it receives are observed."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers([_ObservedGenericHandler(handler) for handler in handlers])

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self._server.add_registered_method_handlers(
            service, {name: observed(handler, f"/{service}/{name}") for name, handler in handlers.items()}
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class _ObservedGenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        # Observed once per method: the generic handler answers the same handler for every call.
        self._observed: dict[str, grpc.RpcMethodHandler[Any, Any] | None] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[Any, Any] | None:
        method: str = handler_call_details.method
        if method not in self._observed:
            handler = self._inner.service(handler_call_details)
            self._observed[method] = None if handler is None else observed(handler, method)
        return self._observed[method]


def observed(handler: grpc.RpcMethodHandler[Any, Any], full_method: str) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with its unary-unary behaviour traced and measured; other kinds are returned as they are."""
    inner = handler.unary_unary
    if inner is None:
        return handler
    service, method = split_method(full_method)
    # Labelled children by status, made on first use: ``labels()`` takes a lock and builds a key every call.
    handled: dict[grpc.StatusCode, Any] = {}
    duration = GRPC_DURATION.labels(service, method)
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}
    tracer = trace.get_tracer("services.kit.grpc")

    async def behaviour(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        fields = propagate.get_global_textmap().fields
        carrier = {key: value for key, value in context.invocation_metadata() or () if key in fields}
        code = grpc.StatusCode.OK
        with tracer.start_as_current_span(
            full_method,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await inner(request, context)  # type: ignore[arg-type]  # typed for the sync server
            except grpc.aio.AbortError:
                code = _code(context.code())
                raise
            except Exception:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code is grpc.StatusCode.OK:
                    code = _code(context.code())
                span.set_attribute("rpc.grpc.status_code", code.value[0])
                if code is not grpc.StatusCode.OK:
                    span.set_status(Status(StatusCode.ERROR, code.name))
                counter = handled.get(code)
                if counter is None:
                    counter = handled[code] = GRPC_HANDLED.labels(service, method, code.name)
                counter.inc()
                duration.observe(time.perf_counter() - started)

    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def split_method(full_method: str) -> tuple[str, str]:
    """``/support.ticketing.v1.TicketingService/CreateTicket`` → (service, method)."""
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


def _code(code: Any) -> grpc.StatusCode:
    """The status the handler set; OK if it set none."""
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK
