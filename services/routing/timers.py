"""Durable timers in Postgres: armed in the caller's transaction, fired exactly once, never early.

Any number of replicas run a ``TimerScheduler``. Each claims due timers with ``FOR UPDATE SKIP LOCKED``
(``due_at <= now()`` by the database clock, so no replica's clock can fire one early), runs the handler for
the timer's kind in the same transaction that marks it fired, and sleeps until the next due time or until a
newly armed timer wakes it (NOTIFY). Timers that came due while everything was down fire on recovery, with
their lateness recorded. A handler that fails is retried with back-off; its effects roll back each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind

from services.kit import wake
from services.kit.bus.envelope import current_trace_headers
from services.kit.db import DB_UNAVAILABLE_ERRORS, Connection, wait_for_wake
from services.kit.logging import describe_error
from services.routing import timer_metrics

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

_MAX_RETRY_S = 60.0
# Arming a timer due sooner than this wakes the loops at commit; the schedulers' longest sleep (max_sleep_s).
_WAKE_WITHIN = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Timer:
    id: int
    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 0


TimerHandler = Callable[[Connection, Timer], Awaitable[None]]
# Handles many due timers of one kind in one transaction, as far as it can without waiting for a lock or racing
# for an agent, and returns the ids of those it leaves to the kind's one-at-a-time handler; the others are marked
# fired. For kinds that come due by the hundred and mostly find little to do (a backlog's re-checks and step
# relaxations when no agent can take it), a few statements for the lot instead of a transaction each.
BatchHandler = Callable[[Connection, Sequence[Timer]], Awaitable[Collection[int]]]


@dataclass(frozen=True, slots=True)
class Arming:
    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


# One statement for any number of timers; ``arm_all`` passes each (kind, key) once, as ON CONFLICT requires.
_ARM = """
    INSERT INTO timers (kind, key, due_at, payload, trace)
    SELECT kind, key, due_at, payload, $5::jsonb
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[]) AS a(kind, key, due_at, payload)
    ON CONFLICT (kind, key) DO UPDATE SET
        due_at = EXCLUDED.due_at, payload = EXCLUDED.payload, trace = EXCLUDED.trace, armed_at = now(),
        fired_at = NULL, lateness = NULL, cancelled_at = NULL, attempts = 0, error = NULL
"""


async def arm(conn: Connection, *, kind: str, key: str, due_at: datetime, payload: Mapping[str, Any] = {}) -> None:
    """Arm (or re-arm, moving it) the timer ``kind``/``key`` in the caller's transaction."""
    await arm_all(conn, [Arming(kind, key, due_at, payload)])


async def arm_all(conn: Connection, armings: Sequence[Arming], *, wakes: wake.WakeSignal = wake.TIMERS) -> None:
    """Arm (or move) several timers in one statement; of two armings of one timer, the later wins. ``wakes``:
    the loops to wake at commit (``wake.BATCHED_TIMERS`` when the one due at once is of a kind handled in batches)."""
    if not armings:
        return
    latest = list({(a.kind, a.key): a for a in armings}.values())
    await conn.execute(
        _ARM,
        [a.kind for a in latest],
        [a.key for a in latest],
        [a.due_at for a in latest],
        [json.dumps(dict(a.payload)) for a in latest],
        json.dumps(current_trace_headers()),
    )
    # It may be due before the one the scheduler sleeps for; one due later than a loop's longest sleep is found
    # by its next look anyway (an SLA deadline minutes away must not wake every loop at each commit).
    if min(a.due_at for a in latest) <= datetime.now(UTC) + _WAKE_WITHIN:
        wake.after_commit(conn, wakes)


# Cancels test "still armed" as coalesce(fired_at, cancelled_at) IS NULL, which the partial index timers_due
# (WHERE fired_at IS NULL AND cancelled_at IS NULL) cannot be proven to cover: spelled like its predicate, a
# generic plan chose that index and filtered every armed timer to find one key.


async def cancel_all(conn: Connection, kind_keys: Sequence[tuple[str, str]]) -> None:
    """Cancel whichever of these timers are armed, in one statement."""
    if not kind_keys:
        return
    await conn.execute(
        """
        UPDATE timers SET cancelled_at = now()
        FROM unnest($1::text[], $2::text[]) AS c(kind, key)
        WHERE timers.kind = c.kind AND timers.key = c.key AND coalesce(fired_at, cancelled_at) IS NULL
        """,
        [k for k, _ in kind_keys],
        [key for _, key in kind_keys],
    )


async def cancel(conn: Connection, *, kind: str, key: str) -> bool:
    """Cancel an armed timer; False if there was none armed."""
    status = await conn.execute(
        """
        UPDATE timers SET cancelled_at = now()
        WHERE kind = $1 AND key = $2 AND coalesce(fired_at, cancelled_at) IS NULL
        """,
        kind,
        key,
    )
    return status != "UPDATE 0"


def _firing_span(timer: Timer, armed_in: Mapping[str, str]) -> AbstractContextManager[trace.Span]:
    """A new trace for the firing, linked to the one that armed the timer: a deadline minutes or days later is
    work of its own, and what it publishes (an SLA breach, an expired offer) continues from here."""
    armed = trace.get_current_span(propagate.extract(dict(armed_in))).get_span_context()
    return tracer.start_as_current_span(
        f"timer {timer.kind}",
        context=Context(),
        kind=SpanKind.INTERNAL,
        links=[Link(armed)] if armed.is_valid else [],
        attributes={"supportdesk.timer.kind": timer.kind, "supportdesk.timer.attempts": timer.attempts},
    )


# The savepoint each timer's handler runs in.
_FIRING = "timer_firing"

_CLAIM = """
    SELECT id, kind, key, due_at, payload, attempts, trace FROM timers
    WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now() AND (kind = ANY($2::text[])) = $3
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
"""


def _timer(row: asyncpg.Record) -> Timer:
    return Timer(row["id"], row["kind"], row["key"], row["due_at"], json.loads(row["payload"]), row["attempts"])


class TimerScheduler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        handlers: Mapping[str, TimerHandler],
        *,
        batch_size: int = 200,
        max_sleep_s: float = 1.0,
        loops: int = 1,
        batched: Mapping[str, BatchHandler] | None = None,
        batched_claim: int = 500,
    ) -> None:
        self._pool = pool
        self._handlers = handlers
        self._batch_size = batch_size
        self._max_sleep_s = max_sleep_s
        self._loops = loops
        self._batched = dict(batched or {})
        self._batched_kinds = sorted(self._batched)
        self._batched_claim = batched_claim

    async def run(self) -> None:
        """Fire until cancelled with ``loops`` claiming loops, plus one for the kinds handled in batches. Each
        sleeps until its next due timer, woken early by this process's arming commits (timers armed by other
        processes wait at most ``max_sleep_s``). Loops claim with SKIP LOCKED, like replicas, so a burst of due
        timers is worked through ``loops`` at a time."""
        loops = [self._forever(self.fire_due, self._batch_size, batched=False) for _ in range(self._loops)]
        if self._batched:
            loops.append(self._forever(self.fire_batched, self._batched_claim, batched=True))
        await asyncio.gather(*loops)

    async def _forever(self, work: Callable[[], Awaitable[int]], full: int, *, batched: bool) -> None:
        woken = asyncio.Event()
        with wake.TIMERS.subscribed(woken), contextlib.ExitStack() as more:
            if batched:
                more.enter_context(wake.BATCHED_TIMERS.subscribed(woken))
            while True:
                woken.clear()
                try:
                    if await work() == full:
                        continue
                    sleep_s = await self._seconds_to_next(batched=batched)
                except DB_UNAVAILABLE_ERRORS as exc:
                    log.warning("timer scheduler pass failed", extra={"error": repr(exc)})
                    sleep_s = self._max_sleep_s
                await wait_for_wake(woken, sleep_s)

    async def fire_due(self) -> int:
        """Fire one batch of due timers (of the kinds not handled in batches); return how many were claimed."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self._batch_size, self._batched_kinds, False)
            await self._fire_claimed(conn, [_timer(row) for row in rows], [json.loads(row["trace"]) for row in rows])
        return len(rows)

    async def fire_batched(self) -> int:
        """Claim due timers of the batched kinds, let each kind's batch handler take what it can in this one
        transaction, and fire the ones it leaves one transaction each, as ``fire_due`` would; return how many
        were claimed."""
        async with self._pool.acquire() as conn:
            async with conn.transaction():
                rows = await conn.fetch(_CLAIM, self._batched_claim, self._batched_kinds, True)
                claimed = [_timer(row) for row in rows]
                left: set[int] = set()
                for kind in sorted({t.kind for t in claimed}):
                    left.update(await self._run_batch(conn, kind, [t for t in claimed if t.kind == kind]))
                done = [t for t in claimed if t.id not in left]
                await _mark_fired(conn, done)
            for timer in done:
                timer_metrics.timer_fired(timer.kind, timer.due_at)
            for timer in claimed:
                if timer.id in left:
                    await self._fire_one(conn, timer)
        return len(rows)

    async def _run_batch(self, conn: Connection, kind: str, due: Sequence[Timer]) -> Collection[int]:
        """What the kind's batch handler leaves; all of them if it fails (its effects undone by a savepoint):
        the one-at-a-time handler then retries each with its own back-off."""
        with tracer.start_as_current_span(
            f"timers {kind}", attributes={"supportdesk.timer.kind": kind, "supportdesk.timer.count": len(due)}
        ):
            try:
                async with conn.transaction():
                    return await self._batched[kind](conn, due)
            except DB_UNAVAILABLE_ERRORS:
                raise
            except Exception as exc:
                trace.get_current_span().record_exception(exc)
                log.warning(
                    "timer batch failed; firing one at a time", extra={"kind": kind, "error": describe_error(exc)}
                )
                return {t.id for t in due}

    async def _fire_one(self, conn: Connection, timer: Timer) -> None:
        """Fire one timer a batch handler left, in a transaction of its own, if it is still armed as it was claimed
        (not cancelled or moved meanwhile) and not claimed elsewhere."""
        async with conn.transaction():
            row = await conn.fetchrow(
                """
                SELECT trace FROM timers
                WHERE id = $1 AND due_at = $2 AND fired_at IS NULL AND cancelled_at IS NULL
                FOR UPDATE SKIP LOCKED
                """,
                timer.id,
                timer.due_at,
            )
            if row is not None:
                await self._fire_claimed(conn, [timer], [json.loads(row["trace"])])

    async def _fire_claimed(
        self, conn: Connection, claimed: Sequence[Timer], traces: Sequence[Mapping[str, str]]
    ) -> None:
        fired: list[Timer] = []
        for timer, armed_in in zip(claimed, traces, strict=True):
            with _firing_span(timer, armed_in):
                if await self._fire(conn, timer):
                    fired.append(timer)
        await _mark_fired(conn, fired)

    async def _fire(self, conn: Connection, timer: Timer) -> bool:
        handler = self._handlers.get(timer.kind)
        if handler is None:
            await conn.execute(
                "UPDATE timers SET cancelled_at = now(), error = $2 WHERE id = $1", timer.id, "no handler"
            )
            log.error("timer with no handler cancelled", extra={"kind": timer.kind, "key": timer.key})
            return False
        # A savepoint, so a failing handler leaves no trace; written out rather than a nested conn.transaction()
        # so that the deferred checks and the release share one round trip.
        await conn.execute(f"SAVEPOINT {_FIRING}")
        try:
            await handler(conn, timer)
            # Run deferred checks (agent load) now, inside the savepoint: failing at the batch's commit instead
            # would stop the scheduler and block every timer behind this one. A failing check skips the release.
            await conn.execute(
                f"SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED; RELEASE SAVEPOINT {_FIRING}"
            )
        except Exception as exc:
            await conn.execute(f"ROLLBACK TO SAVEPOINT {_FIRING}; RELEASE SAVEPOINT {_FIRING}")
            retry_in = min(2.0**timer.attempts, _MAX_RETRY_S)
            trace.get_current_span().record_exception(exc)
            await conn.execute(
                "UPDATE timers SET due_at = now() + $2, attempts = attempts + 1, error = $3 WHERE id = $1",
                timer.id,
                timedelta(seconds=retry_in),
                repr(exc)[:1000],
            )
            log.warning(
                "timer handler failed; retrying",
                extra={"kind": timer.kind, "key": timer.key, "retry_in_s": retry_in, "error": describe_error(exc)},
            )
            return False
        timer_metrics.timer_fired(timer.kind, timer.due_at)
        return True

    async def _seconds_to_next(self, *, batched: bool) -> float:
        async with self._pool.acquire() as conn:
            seconds = await conn.fetchval(
                """
                SELECT extract(epoch FROM min(due_at) - now()) FROM timers
                WHERE fired_at IS NULL AND cancelled_at IS NULL AND (kind = ANY($1::text[])) = $2
                """,
                self._batched_kinds,
                batched,
            )
        return self._max_sleep_s if seconds is None else min(float(seconds), self._max_sleep_s)


async def _mark_fired(conn: Connection, fired: Sequence[Timer]) -> None:
    # A handler may re-arm its own timer (a routing step relaxes, the next one is armed): that moved row is a
    # new firing to come, not this one, so only rows still due when claimed are marked.
    if not fired:
        return
    await conn.execute(
        """
        UPDATE timers SET fired_at = clock_timestamp(), lateness = clock_timestamp() - timers.due_at
        FROM unnest($1::bigint[], $2::timestamptz[]) AS f(id, due_at)
        WHERE timers.id = f.id AND timers.due_at = f.due_at
        """,
        [t.id for t in fired],
        [t.due_at for t in fired],
    )
