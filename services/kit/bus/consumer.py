"""Runs a durable pull consumer: an event is applied and recorded in the inbox in one transaction, then acked.

- a redelivered or duplicated event finds its id in the inbox and is only acked;
- a transient failure is nak'ed with exponential back-off, up to the consumer's ``max_deliver``;
- a message that can never succeed (not a valid event, undecodable payload, ``PoisonEvent``, or out of
  deliveries) is recorded as a dead letter and terminated, and everything else keeps flowing.

A pulled batch is handled concurrently, one task per subject (the entity an event is about), so events about
one ticket still apply in the order the stream holds them while different tickets do not wait for each other:
a handler spends most of its time waiting on Postgres round trips, and handling one event at a time would cap
a consumer at one transaction's latency.

A consumer may also apply some event types *together* (``Together``): the events of those types that are alone
in the batch for their subject, and delivered for the first time, are claimed in the inbox and applied by one
handler call in one transaction, so a burst costs a few statements for the lot rather than a transaction each.
The events the handler leaves, and all of them if that transaction fails, are applied alone as above, with the
usual retries.

A consumer may also be told which events its handler would write nothing for (``Skips``): such an event is
acked after that check, with no inbox transaction (nothing to make idempotent, so no BEGIN, inbox row or COMMIT).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from services.kit import metrics
from services.kit.bus import store
from services.kit.bus.envelope import Envelope, EnvelopeError
from services.kit.bus.pull import PullAhead
from services.kit.bus.streams import ConsumerSpec
from services.kit.db import Connection
from services.kit.logging import describe_error

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Handler = Callable[[Connection, Envelope], Awaitable[None]]
# True for an event the handler would write nothing for, read on a connection outside any transaction.
Skips = Callable[[Connection, Envelope], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """An event applied together with others, and its own consumer span: work done for this event alone runs
    inside ``current()``, so what it publishes continues the event's trace."""

    envelope: Envelope
    context: context.Context

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        token = context.attach(self.context)
        try:
            yield
        finally:
            context.detach(token)


# Applies the events it can in the caller's transaction and returns the ids of those it leaves (written nothing
# for): they are applied alone after the batch commits, with the usual retries.
BatchHandler = Callable[[Connection, Sequence[Delivered]], Awaitable[Collection[str]]]


@dataclass(frozen=True, slots=True)
class Together:
    """Event types a consumer applies in batches, and the handler that applies a batch in one transaction."""

    types: frozenset[str]
    handler: BatchHandler


_MAX_NAK_DELAY_S = 60.0
# A deadlock or serialization failure between concurrent handlers is retried here at once, before any nak.
_TRANSACTION_ATTEMPTS = 3


class PoisonEvent(Exception):
    """Raised by a handler for an event it can never apply; the event is dead-lettered at once."""


def nak_delay(deliveries: int, base_s: float = 0.5) -> float:
    """Back-off before the next delivery: 0.5 s, 1 s, 2 s, ... capped at a minute."""
    return float(min(base_s * 2 ** max(deliveries - 1, 0), _MAX_NAK_DELAY_S))


class EventConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        pool: asyncpg.Pool,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        max_deliver: int,
        batch_size: int = 64,
        concurrency: int = 16,
        heartbeat_s: float = 5.0,
        together: Together | None = None,
        skips: Skips | None = None,
    ) -> None:
        self._js = js
        self._pool = pool
        self._spec = spec
        self._handler = handler
        self._max_deliver = max_deliver
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._heartbeat_s = heartbeat_s
        self._together = together
        self._skips = skips
        # Events taken and not yet handled, and each subject's last handling task still running.
        self._in_hand = 0
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._room = asyncio.Event()

    async def run(self) -> None:
        """Pull and handle until cancelled. The consumer must already be declared.

        Events are taken as they arrive, at most ``batch_size`` in hand at once, while earlier ones are still
        being handled: a slow event holds back only the later events of its own subject. A handling task that
        fails takes the consumer down with it."""
        pull = PullAhead(
            self._js, self._spec.stream.name, self._spec.durable, batch=self._batch_size, heartbeat_s=self._heartbeat_s
        )
        async with pull, asyncio.TaskGroup() as group:
            while True:
                while self._in_hand >= self._batch_size:
                    self._room.clear()
                    await self._room.wait()
                self._dispatch(await pull.next_batch(self._batch_size - self._in_hand), group)

    def _dispatch(self, msgs: list[Msg], group: asyncio.TaskGroup) -> None:
        """Start handling what was taken: each subject's events in stream order, after those of its events
        still in hand; subjects concurrently; the events this consumer applies together, together."""
        by_subject: dict[str, list[Msg]] = {}
        for msg in msgs:
            by_subject.setdefault(_subject_of(msg), []).append(msg)
        together = [
            g[0]
            for subject, g in by_subject.items()
            if len(g) == 1 and subject not in self._tails and self._goes_together(g[0])
        ]
        if len(together) < 2:
            together = []
        for subject, events in by_subject.items():
            if not (len(events) == 1 and events[0] in together):
                self._start(group, [subject], len(events), self._after(self._tails.get(subject), events))
        if together:
            self._start(group, [_subject_of(m) for m in together], len(together), self._apply_together(together))

    def _start(
        self, group: asyncio.TaskGroup, subjects: list[str], events: int, work: Coroutine[Any, Any, None]
    ) -> None:
        task = group.create_task(work)
        self._in_hand += events
        for subject in subjects:
            self._tails[subject] = task

        def done(_: asyncio.Task[None]) -> None:
            self._in_hand -= events
            for subject in subjects:
                if self._tails.get(subject) is task:
                    del self._tails[subject]
            self._room.set()

        task.add_done_callback(done)

    async def _after(self, earlier: asyncio.Task[None] | None, msgs: list[Msg]) -> None:
        if earlier is not None:
            await asyncio.wait([earlier])
        await self._handle_in_order(msgs)

    def _goes_together(self, msg: Msg) -> bool:
        return (
            self._together is not None
            and (msg.headers or {}).get("ce-type") in self._together.types
            and msg.metadata.num_delivered == 1  # a redelivery failed before: it goes alone
        )

    async def _apply_together(self, msgs: list[Msg]) -> None:
        """Claim and apply the events in one transaction; on failure, apply each alone."""
        assert self._together is not None
        durable = self._spec.durable
        pairs: list[tuple[Msg, Envelope]] = []
        for msg in msgs:
            try:
                pairs.append((msg, Envelope.from_message(msg.headers, msg.data)))
            except EnvelopeError:
                await self.handle(msg)  # dead-lettered there
        spans = [self._span(msg, envelope) for msg, envelope in pairs]
        delivered = [Delivered(e, trace.set_span_in_context(span)) for (_, e), span in zip(pairs, spans, strict=True)]
        for _, envelope in pairs:
            metrics.EVENT_AGE.labels(durable).observe(max((datetime.now(UTC) - envelope.time).total_seconds(), 0.0))
        started = time.perf_counter()
        left: set[str] = set()
        try:
            async with self._slots, self._pool.acquire() as conn, conn.transaction():
                fresh = await store.claim_events(conn, durable, [e.id for _, e in pairs])
                if fresh:
                    left = set(await self._together.handler(conn, [d for d in delivered if d.envelope.id in fresh]))
                    await store.unclaim_events(conn, durable, left)
        except Exception as exc:
            for span in spans:
                span.set_attribute("supportdesk.applied_alone", True)
                span.end()
            log.info(
                "events failed together; applying each alone",
                extra={"consumer": durable, "events": len(pairs), "error": describe_error(exc)},
            )
            await asyncio.gather(*(self._handle_in_order([msg]) for msg, _ in pairs))
            return
        elapsed = time.perf_counter() - started
        for (msg, envelope), span in zip(pairs, spans, strict=True):
            if envelope.id in left:
                span.set_attribute("supportdesk.applied_alone", True)
                span.end()
                continue
            metrics.EVENT_HANDLING.labels(durable).observe(elapsed)
            metrics.EVENTS_HANDLED.labels(durable, "applied" if envelope.id in fresh else "duplicate").inc()
            span.end()
            await msg.ack()
        await asyncio.gather(*(self._handle_in_order([msg]) for msg, e in pairs if e.id in left))

    def _span(self, msg: Msg, envelope: Envelope) -> trace.Span:
        return tracer.start_span(
            f"process {envelope.type}",
            context=propagate.extract(dict(envelope.trace)),
            kind=SpanKind.CONSUMER,
            attributes=self._span_attributes(msg, envelope),
        )

    def _span_attributes(self, msg: Msg, envelope: Envelope) -> dict[str, str]:
        return {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "messaging.message.id": envelope.id,
            "messaging.consumer.group.name": self._spec.durable,
            "messaging.operation.type": "process",
            "cloudevents.event_id": envelope.id,
            "cloudevents.event_type": envelope.type,
            "cloudevents.event_subject": envelope.subject,
        }

    async def _handle_in_order(self, msgs: list[Msg]) -> None:
        async with self._slots:
            for msg in msgs:
                await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        deliveries = msg.metadata.num_delivered
        try:
            envelope = Envelope.from_message(msg.headers, msg.data)
        except EnvelopeError as exc:
            await self._dead_letter(msg, None, f"not a valid event: {exc}")
            return
        parent = propagate.extract(dict(envelope.trace))
        token = context.attach(parent)
        try:
            with tracer.start_as_current_span(
                f"process {envelope.type}", kind=SpanKind.CONSUMER, attributes=self._span_attributes(msg, envelope)
            ):
                await self._apply(msg, envelope, deliveries)
        finally:
            context.detach(token)

    async def _transact(self, envelope: Envelope) -> str:
        """Apply the event once. The outcome: ``applied``, ``duplicate`` (the inbox already had it) or
        ``skipped`` (the handler would write nothing for it)."""
        for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn:
                    if self._skips is not None and await self._skips(conn, envelope):
                        return "skipped"
                    async with conn.transaction():
                        applied = await store.claim_event(conn, self._spec.durable, envelope.id)
                        if applied:
                            await self._handler(conn, envelope)
                return "applied" if applied else "duplicate"
            except asyncpg.TransactionRollbackError:
                if attempt == _TRANSACTION_ATTEMPTS:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _apply(self, msg: Msg, envelope: Envelope, deliveries: int) -> None:
        durable = self._spec.durable
        if deliveries == 1:
            metrics.EVENT_AGE.labels(durable).observe(max((datetime.now(UTC) - envelope.time).total_seconds(), 0.0))
        started = time.perf_counter()
        try:
            outcome = await self._transact(envelope)
        except (PoisonEvent, DecodeError) as exc:
            _record_failure(exc)
            await self._dead_letter(msg, envelope.id, f"{type(exc).__name__}: {exc}", exc)
            return
        except Exception as exc:
            _record_failure(exc)
            if deliveries >= self._max_deliver:
                await self._dead_letter(msg, envelope.id, f"gave up after {deliveries} deliveries: {exc!r}", exc)
                return
            delay = nak_delay(deliveries)
            metrics.EVENTS_HANDLED.labels(durable, "retried").inc()
            log.warning(
                "event handling failed; retrying",
                extra={
                    "event_id": envelope.id,
                    "event_type": envelope.type,
                    "deliveries": deliveries,
                    "retry_in_s": delay,
                    "error": describe_error(exc),
                },
            )
            await msg.nak(delay=delay)
            return
        metrics.EVENT_HANDLING.labels(durable).observe(time.perf_counter() - started)
        metrics.EVENTS_HANDLED.labels(durable, outcome).inc()
        await msg.ack()

    async def _dead_letter(
        self, msg: Msg, event_id: str | None, error: str, cause: BaseException | None = None
    ) -> None:
        """Record the message, then terminate it; if the record cannot be written, let it be redelivered.
        The record keeps the whole error for whoever replays it; the log only what may be logged."""
        meta = msg.metadata
        letter = store.DeadLetter(
            consumer=self._spec.durable,
            stream=meta.stream,
            stream_seq=meta.sequence.stream,
            nats_subject=msg.subject,
            event_id=event_id,
            headers=dict(msg.headers or {}),
            payload=msg.data,
            error=error[:2000],
            deliveries=meta.num_delivered,
        )
        try:
            async with self._pool.acquire() as conn:
                await store.record_dead_letter(conn, letter)
        except Exception as exc:
            log.warning("dead letter not recorded; will retry", extra={"error": describe_error(exc)})
            await msg.nak(delay=nak_delay(meta.num_delivered))
            return
        metrics.DEAD_LETTERS.labels(letter.consumer).inc()
        metrics.EVENTS_HANDLED.labels(letter.consumer, "dead_lettered").inc()
        log.error(
            "event dead-lettered",
            extra={
                "consumer": letter.consumer,
                "stream_seq": letter.stream_seq,
                "event_id": event_id,
                "reason": describe_error(cause) if cause is not None else letter.error,
            },
        )
        await msg.term()


def _record_failure(exc: BaseException) -> None:
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(StatusCode.ERROR, type(exc).__name__)


def _subject_of(msg: Msg) -> str:
    # ce-subject names the entity (a ticket id); a message without one is ordered by its NATS subject.
    return (msg.headers or {}).get("ce-subject") or msg.subject


async def run_consumers(consumers: list[EventConsumer]) -> None:
    """Run several consumers until cancelled; one crashing takes the others down (the process restarts)."""
    async with asyncio.TaskGroup() as group:
        for consumer in consumers:
            group.create_task(consumer.run())
