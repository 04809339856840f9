"""Prometheus metrics every service shares: RPCs, events, the outbox, consumers and dead letters.

Names follow Prometheus conventions: a ``supportdesk_`` prefix, base units (seconds), ``_total`` counters.
Every label takes values from a small, fixed set (RPC names, consumer names, event types we publish, service
names); ticket, agent or event ids never become labels. Counters move where the thing happens; gauges read
from Postgres or JetStream are sampled by ``sample_forever`` on a slow timer, never on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

# From a millisecond to ten seconds: an RPC or a handler slower than that is an outage, not a latency.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_HANDLED = Counter(
    "supportdesk_grpc_server_handled_total",
    "RPCs completed by the server, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
GRPC_DURATION = Histogram(
    "supportdesk_grpc_server_handling_seconds",
    "Time to handle an RPC, by method.",
    ["grpc_service", "grpc_method"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "supportdesk_events_published_total",
    "Outbox events published to JetStream and acknowledged, by producing service and event type.",
    ["service", "event_type"],
)
EVENTS_HANDLED = Counter(
    "supportdesk_events_handled_total",
    "Deliveries handled by a consumer: applied, duplicate (already in the inbox), skipped (nothing to write), "
    "retried, dead_lettered.",
    ["consumer", "outcome"],
)
EVENT_HANDLING = Histogram(
    "supportdesk_event_handling_seconds",
    "Time to apply one delivery (inbox check, handler, commit), by consumer.",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)
EVENT_AGE = Histogram(
    "supportdesk_event_age_seconds",
    "Time from an event's creation (ce-time) to the start of its handling, by consumer: the end-to-end lag.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
DEAD_LETTERS = Counter(
    "supportdesk_dead_letters_total",
    "Messages a consumer gave up on and recorded as dead letters.",
    ["consumer"],
)
DEAD_LETTERS_STORED = Gauge(
    "supportdesk_dead_letters_unreplayed",
    "Dead letters recorded and not yet replayed, by consumer (sampled from Postgres).",
    ["consumer"],
)
OUTBOX_UNPUBLISHED = Gauge(
    "supportdesk_outbox_unpublished_events",
    "Outbox rows committed and not yet acknowledged by JetStream (sampled from Postgres).",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "supportdesk_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox row; 0 when the outbox is empty (sampled from Postgres).",
    ["service"],
)
CONSUMER_PENDING = Gauge(
    "supportdesk_consumer_pending_messages",
    "Messages in the stream not yet delivered to the durable consumer (sampled from JetStream).",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "supportdesk_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not yet acknowledged (sampled from JetStream).",
    ["consumer"],
)
COALESCED_QUEUED = Gauge(
    "supportdesk_coalesced_queued_calls",
    "Calls waiting for a shared write to take them, by write (services.kit.coalesce).",
    ["write"],
)
COALESCED_BATCH = Histogram(
    "supportdesk_coalesced_batch_calls",
    "Calls each shared write held, by write (services.kit.coalesce).",
    ["write"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
SAMPLE_FAILURES = Counter(
    "supportdesk_metric_sample_failures_total",
    "Gauge samplings that failed (the gauge keeps its last value).",
    ["sampler"],
)

Sample = Callable[[], Awaitable[None]]


async def sample_forever(samplers: Sequence[tuple[str, Sample]], interval_s: float) -> None:
    """Run every sampler, then wait ``interval_s``, until cancelled. A failing sampler is counted and logged,
    and never stops the others or the service."""
    while True:
        for name, sample in samplers:
            try:
                await sample()
            except Exception as exc:
                SAMPLE_FAILURES.labels(sampler=name).inc()
                log.warning("metric sampling failed", extra={"sampler": name, "error": repr(exc)})
        await asyncio.sleep(interval_s)
