"""Wake-ups inside one process: a transaction that gave a background loop work wakes it when it commits.

The outbox relay and the timer scheduler sleep until there is work. A Postgres ``NOTIFY`` from the writing
transaction used to wake them, but every transaction that notifies takes one database-wide lock at commit and
holds it through its WAL flush, so the commits of every service queued behind each other one fsync at a time
(ADR 0060). The writer and the loop that serves it run in the same process, so the writer's connection
signals the loop itself, after its commit. Loops still poll, for work written by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction


class WakeSignal:
    """One kind of work (events to relay, timers to fire): the loops of this process that wait for it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._waiters: set[asyncio.Event] = set()

    @contextlib.contextmanager
    def subscribed(self, wake: asyncio.Event) -> Iterator[None]:
        """``wake`` is set on every notice while the block runs."""
        self._waiters.add(wake)
        try:
            yield
        finally:
            self._waiters.discard(wake)

    def notify(self) -> None:
        for wake in self._waiters:
            wake.set()


OUTBOX = WakeSignal("outbox")
TIMERS = WakeSignal("timers")
# Timers of the kinds a scheduler handles in batches (routing's re-checks): armed due at once and by the
# hundred under load, they wake only the loop that batches them, not every claiming loop.
BATCHED_TIMERS = WakeSignal("batched timers")


def after_commit(conn: Any, signal: WakeSignal) -> None:
    """Notify ``signal`` once the caller's transaction commits (at once outside one: the statement committed).

    ``conn`` is a pooled or plain connection; only ``WakingConnection`` (every pool of ``create_pool``) defers,
    any other is told at once, which at worst wakes a loop a moment early."""
    # A pool's proxy passes attribute reads through to its connection.
    pending: set[WakeSignal] | None = getattr(conn, "pending_wakes", None)
    if pending is not None and conn.is_in_transaction():
        pending.add(signal)
    else:
        signal.notify()


class WakingConnection(asyncpg.Connection):
    """A connection that keeps the wake-ups its open transaction owes, and sends them when it commits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending_wakes: set[WakeSignal] = set()

    def transaction(self, *, isolation: str | None = None, readonly: bool = False, deferrable: bool = False) -> Any:
        return _WakingTransaction(self, isolation, readonly, deferrable)

    def transaction_ended(self, *, committed: bool) -> None:
        if self.is_in_transaction():
            return  # a savepoint ended; the transaction goes on
        owed, self.pending_wakes = self.pending_wakes, set()
        if committed:
            for signal in owed:
                signal.notify()


class _WakingTransaction(Transaction):
    def __init__(self, connection: WakingConnection, *args: Any) -> None:
        super().__init__(connection, *args)
        self._waking = connection

    async def __aexit__(self, extype: object, ex: object, tb: object) -> None:
        committed = False
        try:
            await super().__aexit__(extype, ex, tb)
            committed = extype is None
        finally:
            self._waking.transaction_ended(committed=committed)

    async def commit(self) -> None:
        committed = False
        try:
            await super().commit()
            committed = True
        finally:
            self._waking.transaction_ended(committed=committed)

    async def rollback(self) -> None:
        try:
            await super().rollback()
        finally:
            self._waking.transaction_ended(committed=False)
