"""The outbox relay: publishes committed outbox rows to JetStream and marks them only after the PubAck.

A row is published at least once; JetStream drops re-publications inside the duplicate window because
``Nats-Msg-Id`` is the event id, and consumers' inboxes drop anything that still gets through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import asyncpg
from nats.js import JetStreamContext
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from services.kit import metrics, wake
from services.kit.bus import store
from services.kit.bus.envelope import Envelope, current_trace_headers
from services.kit.bus.publisher import BatchPublisher, Outgoing
from services.kit.db import Connection, wait_for_wake

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class RelayPass:
    published: int
    failed: int


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        schema: str,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        publish_timeout_s: float = 5.0,
        on_published: Callable[[Envelope], None] | None = None,
    ) -> None:
        self._pool = pool
        self._service = schema
        # Told of every event JetStream acknowledged: the service's own counters (offers, SLA outcomes) are
        # counted from committed facts, once, off the request path.
        self._on_published = on_published
        self._publisher = BatchPublisher(js)
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Relay until cancelled: woken by this process's commits that wrote events, polling for the others'."""
        try:
            await self._relay_forever()
        finally:
            await self._publisher.close()

    async def _relay_forever(self) -> None:
        failures = 0
        with wake.OUTBOX.subscribed(self._wake):
            while True:
                self._wake.clear()
                try:
                    result = await self.relay_once()
                except _DB_ERRORS as exc:
                    result = RelayPass(published=0, failed=1)
                    log.warning("outbox relay pass failed", extra={"error": repr(exc)})
                if result.failed:
                    failures += 1
                    await asyncio.sleep(min(self._poll_interval_s * 2**failures, _MAX_BACKOFF_S))
                    continue
                failures = 0
                if result.published == self._batch_size:
                    continue  # more is waiting
                await wait_for_wake(self._wake, self._poll_interval_s)

    async def relay_once(self) -> RelayPass:
        """Publish one batch, pipelined, and mark what JetStream acknowledged."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await store.lock_unpublished(conn, self._batch_size)
            if not rows:
                return RelayPass(published=0, failed=0)
            with tracer.start_as_current_span(
                "outbox relay", attributes={"messaging.batch.message_count": len(rows)}
            ) as relay_span:
                relay = Link(relay_span.get_span_context())
                spans, outgoing = zip(*(self._stamped(row, relay) for row in rows), strict=True)
                results = await self._publisher.publish(outgoing, self._publish_timeout_s)
                for span, result in zip(spans, results, strict=True):
                    if result is not None:
                        span.record_exception(result)
                        span.set_status(Status(StatusCode.ERROR, type(result).__name__))
                    span.end()
                published = [row for row, res in zip(rows, results, strict=True) if res is None]
                acked = [row.row_id for row in published]
                if acked:
                    await self._mark(conn, acked)
        self._count(row.envelope for row in published)
        failed = len(rows) - len(acked)
        if failed:
            # Unacked rows stay in the outbox (NATS down, or the stream full and refusing new data).
            first_error = next(res for res in results if isinstance(res, BaseException))
            log.warning("outbox publish not acknowledged", extra={"failed": failed, "error": repr(first_error)})
        return RelayPass(published=len(acked), failed=failed)

    def _count(self, envelopes: Iterable[Envelope]) -> None:
        for envelope in envelopes:
            metrics.EVENTS_PUBLISHED.labels(self._service, envelope.type).inc()
            if self._on_published is not None:
                try:
                    self._on_published(envelope)
                except Exception as exc:  # a metric must never hold up the relay
                    log.warning("event metrics failed", extra={"event_type": envelope.type, "error": repr(exc)})

    def _stamped(self, row: store.OutboxRow, relay: Link) -> tuple[trace.Span, Outgoing]:
        """The event's publish span, in the trace of the change that wrote it, and the message carrying that
        span's context: every consumer's handling is a child of the publish. The relay pass is a link."""
        envelope = row.envelope
        span = tracer.start_span(
            f"publish {envelope.type}",
            context=propagate.extract(dict(envelope.trace)),
            kind=SpanKind.PRODUCER,
            links=[relay],
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "send",
                "messaging.destination.name": envelope.type,
                "messaging.message.id": envelope.id,
                "cloudevents.event_id": envelope.id,
                "cloudevents.event_type": envelope.type,
                "cloudevents.event_subject": envelope.subject,
            },
        )
        with trace.use_span(span, end_on_exit=False):
            traced = replace(envelope, trace=current_trace_headers())
        return span, Outgoing(traced.type, traced.data, traced.headers())

    async def _mark(self, conn: Connection, row_ids: list[int]) -> None:
        await store.mark_published(conn, row_ids)
