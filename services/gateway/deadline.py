"""One deadline per HTTP request, shared by every gRPC call made while serving it.

A route may call several peers in turn (an access check, then the change); each call gets what is left of
the request's budget, so the request as a whole answers within ``request_timeout_s`` and a peer learns,
through gRPC's deadline propagation, how long the caller will still wait.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

# Monotonic time by which the current request must be answered; None outside a request.
_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def remaining_s(default_s: float) -> float:
    """Seconds left to the current request's deadline (``default_s`` outside a request)."""
    deadline = _deadline.get()
    if deadline is None:
        return default_s
    return deadline - time.monotonic()


class RequestDeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _deadline.set(time.monotonic() + self.timeout_s)
        try:
            await self.app(scope, receive, send)
        finally:
            _deadline.reset(token)
