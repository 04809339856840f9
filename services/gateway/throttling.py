"""Rate limits at the HTTP edge: which budget a request spends, the 429, and the ``RateLimit`` headers.

Budgets are per caller (the token's subject; the client address for requests without a valid token) and
per kind: reads (GET, HEAD, OPTIONS) and writes (anything else) are counted apart, so a burst of polling
never blocks a reply to a customer. Limits live in this process's memory (ADR 0012): nothing is added to
the request path but a dictionary look-up.

Headers follow draft-ietf-httpapi-ratelimit-headers: ``RateLimit-Policy: "writes";q=300;w=60`` names the
policy, ``RateLimit: "writes";r=299;t=1`` gives what remains and the seconds until the quota is whole
again. They are sent on every answer of a request that was counted, errors included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.problems import ProblemError
from services.gateway.ratelimit import Decision, Gcra
from services.gateway.settings import GatewaySettings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NS_PER_S = 1_000_000_000
_STATE_KEY = "rate_limit_headers"


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    limiter: Gcra

    def headers(self, decision: Decision) -> list[tuple[bytes, bytes]]:
        window_s = self.limiter.window_ns // NS_PER_S
        return [
            (b"ratelimit-policy", f'"{self.name}";q={self.limiter.quota};w={window_s}'.encode()),
            (b"ratelimit", f'"{self.name}";r={decision.remaining};t={_seconds(decision.reset_ns)}'.encode()),
        ]


class RateLimits:
    """The read and write policies of one gateway process."""

    def __init__(self, *, reads: int, writes: int, window_s: int) -> None:
        window_ns = window_s * NS_PER_S
        self.reads = Policy("reads", Gcra(quota=reads, window_ns=window_ns))
        self.writes = Policy("writes", Gcra(quota=writes, window_ns=window_ns))

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> RateLimits | None:
        if not settings.rate_limit_enabled:
            return None
        return cls(
            reads=settings.rate_limit_reads,
            writes=settings.rate_limit_writes,
            window_s=settings.rate_limit_window_s,
        )

    def spend(self, connection: HTTPConnection, caller: str) -> None:
        """Count the request against ``caller``'s budget; 429 ``rate_limited`` when it is spent.

        Takes any connection, so a WebSocket handshake (no method: a read) can be charged too.
        """
        policy = self.reads if connection.scope.get("method", "GET") in READ_METHODS else self.writes
        decision = policy.limiter.hit(caller, time.monotonic_ns())
        # Picked up by RateLimitHeadersMiddleware whatever the answer turns out to be.
        connection.scope.setdefault("state", {})[_STATE_KEY] = policy.headers(decision)
        if not decision.allowed:
            raise ProblemError(
                429,
                "rate_limited",
                f"Too many {policy.name} from this caller; retry after Retry-After seconds.",
                headers={"Retry-After": str(_seconds(decision.retry_after_ns))},
            )


def spend(connection: HTTPConnection, caller: str) -> None:
    """Count the request if the app limits rates (it may be configured not to)."""
    limits = getattr(connection.app.state, "rate_limits", None)
    if isinstance(limits, RateLimits):
        limits.spend(connection, caller)


def client_address(connection: HTTPConnection) -> str:
    """The budget of a caller without a valid token: its address (uvicorn's, or the proxy's if trusted)."""
    return f"ip:{connection.client.host if connection.client else 'unknown'}"


def subject_key(subject: str) -> str:
    return f"sub:{subject}"


def _seconds(ns: int) -> int:
    """Whole seconds, rounded up: a client waiting that long is never early."""
    return max(0, -(-ns // NS_PER_S))


class RateLimitHeadersMiddleware:
    """Adds the ``RateLimit`` headers recorded by ``spend`` to the response, whatever produced it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Request.state writes into this dict, so whatever the route records is visible here.
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and (extra := state.get(_STATE_KEY)):
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
