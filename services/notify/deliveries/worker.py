"""Claims due deliveries and attempts them concurrently, each target within its own limit.

A hanging endpoint ties up at most ``per_target`` attempts, each bounded by its timeout; every other
target keeps its own slots. Rows are claimed with SKIP LOCKED under a lease, so any number of replicas
share the work, and a replica that dies mid-attempt leaves rows that another claims when the lease ends.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg

from services.kit.db import DB_UNAVAILABLE_ERRORS
from services.notify.deliveries import store
from services.notify.deliveries.model import Delivery, DeliveryChannel, Outcome
from services.notify.deliveries.senders import EmailSender, WebhookSender
from services.notify.delivery_rules import RetrySchedule

log = logging.getLogger(__name__)


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        webhooks: WebhookSender,
        email: EmailSender | None,
        schedule: RetrySchedule,
        concurrency: int,
        per_target: int,
        attempt_timeout_s: float,
        poll_interval_s: float,
    ) -> None:
        self._pool = pool
        self._webhooks = webhooks
        self._email = email
        self._schedule = schedule
        self._concurrency = concurrency
        self._per_target = per_target
        self._poll_interval_s = poll_interval_s
        # Long enough for an attempt that waited for its target's slot and then ran to its timeout.
        self._lease_s = attempt_timeout_s * 2 + 30
        # Claimed per target (running or waiting for a slot), and the slots themselves.
        self._in_flight: Counter[str] = Counter()
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()

    async def run(self) -> None:
        try:
            with store.DELIVERIES_DUE.subscribed(self._wake):
                await self._claim_forever()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _claim_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.claim_and_start()
            except DB_UNAVAILABLE_ERRORS as exc:
                log.warning("delivery claim failed", extra={"error": repr(exc)})
                claimed = 0
            if claimed:
                continue
            waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._slot_freed.wait())]
            try:
                # asyncio.wait, not wait_for: on 3.11 wait_for can swallow a cancellation that races a wake-up.
                await asyncio.wait(waits, timeout=self._poll_interval_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            self._slot_freed.clear()

    async def claim_and_start(self) -> int:
        """Claim what is due and free to run, start an attempt for each; returns how many started."""
        room = self._concurrency - sum(self._in_flight.values())
        if room <= 0:
            return 0
        busy = [t for t, n in self._in_flight.items() if n >= self._per_target]
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = await store.claim_due(
                conn, busy_targets=busy, per_target=self._per_target, scan=room, lease_s=self._lease_s
            )
        for d in claimed:
            self._in_flight[d.target] += 1
            task = asyncio.create_task(self._attempt(d), name=f"delivery-{d.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def _attempt(self, d: Delivery) -> None:
        slots = self._slots.setdefault(d.target, asyncio.Semaphore(self._per_target))
        try:
            async with slots:
                outcome = await self._send(d)
            await self._record(d, outcome)
        finally:
            self._in_flight[d.target] -= 1
            if self._in_flight[d.target] <= 0:
                del self._in_flight[d.target]
                self._slots.pop(d.target, None)
            self._slot_freed.set()

    async def _send(self, d: Delivery) -> Outcome:
        now = datetime.now(UTC)
        if d.channel is DeliveryChannel.EMAIL:
            if self._email is None:
                return Outcome(False, now, 0.0, error="email is not configured (SUPPORTDESK_SMTP_HOST)")
            return await self._email.send(d)
        async with self._pool.acquire() as conn:
            endpoint = await store.endpoint(conn, d.endpoint_id or uuid.UUID(int=0))
        if endpoint is None or not endpoint.enabled:
            return Outcome(False, now, 0.0, error="endpoint removed or disabled")
        return await self._webhooks.send(d, endpoint)

    async def _record(self, d: Delivery, outcome: Outcome) -> None:
        finished = datetime.now(UTC)
        retry_at = None
        if not outcome.ok and not self._schedule.exhausted(d.attempts_in_budget):
            retry_at = finished + timedelta(seconds=self._schedule.delay_after(d.attempts_in_budget))
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await store.record_outcome(conn, d, outcome, retry_at=retry_at, finished_at=finished)
        except DB_UNAVAILABLE_ERRORS as exc:
            # The lease runs out and the delivery is attempted again: at least once, never lost.
            log.warning("delivery outcome not recorded", extra={"delivery_id": str(d.id), "error": repr(exc)})
            return
        if retry_at is None and not outcome.ok:
            log.error(
                "delivery dead-lettered",
                extra={"delivery_id": str(d.id), "target": d.target, "attempts": d.attempts, "error": outcome.error},
            )
