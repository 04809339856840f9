"""The durable timers' metrics: how many fired, and how late, by kind (a handful of fixed kinds)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

TIMERS_FIRED = Counter("supportdesk_timers_fired_total", "Durable timers fired, by kind.", ["kind"])
TIMER_LATENESS = Histogram(
    "supportdesk_timer_lateness_seconds",
    "How long after its due time a timer fired, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0),
)


def timer_fired(kind: str, due_at: datetime) -> None:
    TIMERS_FIRED.labels(kind).inc()
    TIMER_LATENESS.labels(kind).observe(max((datetime.now(UTC) - due_at).total_seconds(), 0.0))
