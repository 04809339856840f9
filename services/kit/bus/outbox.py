"""The outbox relay: publishes committed outbox rows to JetStream and marks them only after the PubAck.

A row is published at least once; JetStream drops re-publications inside the duplicate window because
``Nats-Msg-Id`` is the event id, and consumers' inboxes drop anything that still gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import asyncpg
from nats.js import JetStreamContext
from opentelemetry import trace

from services.kit.bus import store
from services.kit.db import Connection, listen_forever

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
    ) -> None:
        self._pool = pool
        self._js = js
        self._channel = f"{schema}_outbox"
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._publish_timeout_s = publish_timeout_s
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Relay until cancelled: woken by NOTIFY from committing transactions, polling as a fallback."""
        listener = asyncio.create_task(
            listen_forever(self._pool, self._channel, self._wake, retry_s=self._poll_interval_s),
            name=f"{self._channel}-listen",
        )
        failures = 0
        try:
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def relay_once(self) -> RelayPass:
        """Publish one batch, pipelined, and mark what JetStream acknowledged."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await store.lock_unpublished(conn, self._batch_size)
            if not rows:
                return RelayPass(published=0, failed=0)
            with tracer.start_as_current_span("outbox relay", attributes={"messaging.batch.message_count": len(rows)}):
                results = await asyncio.gather(
                    *(
                        self._js.publish(
                            row.envelope.type,
                            row.envelope.data,
                            timeout=self._publish_timeout_s,
                            headers=row.envelope.headers(),
                        )
                        for row in rows
                    ),
                    return_exceptions=True,
                )
                acked = [
                    row.row_id for row, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)
                ]
                if acked:
                    await self._mark(conn, acked)
        failed = len(rows) - len(acked)
        if failed:
            # Unacked rows stay in the outbox (NATS down, or the stream full and refusing new data).
            first_error = next(res for res in results if isinstance(res, BaseException))
            log.warning("outbox publish not acknowledged", extra={"failed": failed, "error": repr(first_error)})
        return RelayPass(published=len(acked), failed=failed)

    async def _mark(self, conn: Connection, row_ids: list[int]) -> None:
        await store.mark_published(conn, row_ids)
