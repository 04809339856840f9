"""Durable timers: exactly once, never early, across replicas and outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

import asyncpg
import pytest

from services.kit.db import Connection
from services.routing import timers
from services.routing.timers import Timer, TimerScheduler
from tests.integration.bus_fixtures import migrated_pool
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    await pool.execute("CREATE TABLE fired (key text, at timestamptz DEFAULT clock_timestamp(), due timestamptz)")
    yield pool
    await pool.close()


async def record(conn: Connection, timer: Timer) -> None:
    await conn.execute("INSERT INTO fired (key, due) VALUES ($1, $2)", timer.key, timer.due_at)


async def arm_in(pool: asyncpg.Pool, key: str, seconds: float, kind: str = "test") -> None:
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        await timers.arm(conn, kind=kind, key=key, due_at=now + timedelta(seconds=seconds))


def run(pool: asyncpg.Pool, *, batch_size: int = 50, loops: int = 1, **handlers: object) -> asyncio.Task[None]:
    scheduler = TimerScheduler(
        pool,
        handlers or {"test": record},  # type: ignore[arg-type]
        batch_size=batch_size,
        loops=loops,
    )
    return asyncio.create_task(scheduler.run())


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def count(pool: asyncpg.Pool, sql: str) -> int:
    value: int = await pool.fetchval(sql)
    return value


async def test_every_timer_fires_once_never_early_across_two_replicas(pool: asyncpg.Pool) -> None:
    for i in range(300):
        await arm_in(pool, f"t{i}", 0.2 + (i % 10) * 0.05)
    replicas = [run(pool), run(pool)]
    try:
        await eventually(lambda: _all_fired(pool, 300), what="300 timers fired")
    finally:
        await stop(*replicas)
    assert await count(pool, "SELECT count(DISTINCT key) FROM fired") == 300
    assert await count(pool, "SELECT count(*) FROM fired") == 300, "a timer fired twice"
    assert await count(pool, "SELECT count(*) FROM fired WHERE at < due") == 0, "a timer fired early"
    assert await count(pool, "SELECT count(*) FROM timers WHERE lateness IS NULL") == 0


async def test_every_timer_fires_once_with_one_timer_per_transaction_in_four_loops(pool: asyncpg.Pool) -> None:
    for i in range(200):
        await arm_in(pool, f"t{i}", 0.2 + (i % 10) * 0.02)
    scheduler = run(pool, batch_size=1, loops=4)  # how routing runs its timers
    try:
        await eventually(lambda: _all_fired(pool, 200), what="200 timers fired")
    finally:
        await stop(scheduler)
    assert await count(pool, "SELECT count(DISTINCT key) FROM fired") == 200
    assert await count(pool, "SELECT count(*) FROM fired") == 200, "a timer fired twice"
    assert await count(pool, "SELECT count(*) FROM fired WHERE at < due") == 0, "a timer fired early"


async def _none_armed(pool: asyncpg.Pool) -> bool:
    return await count(pool, "SELECT count(*) FROM timers WHERE fired_at IS NULL AND cancelled_at IS NULL") == 0


async def _all_fired(pool: asyncpg.Pool, n: int) -> bool:
    return await count(pool, "SELECT count(*) FROM fired") >= n


async def test_timers_due_during_an_outage_fire_on_recovery_with_lateness(pool: asyncpg.Pool) -> None:
    await arm_in(pool, "overdue", -30)  # came due while no scheduler ran
    scheduler = run(pool)
    try:
        await eventually(lambda: _all_fired(pool, 1), what="the overdue timer")
    finally:
        await stop(scheduler)
    lateness = await pool.fetchval("SELECT extract(epoch FROM lateness) FROM timers WHERE key = 'overdue'")
    assert lateness >= 30


async def test_cancelled_timers_never_fire_and_re_arming_moves_one(pool: asyncpg.Pool) -> None:
    await arm_in(pool, "cancelled", 0.1)
    await arm_in(pool, "moved", 3600)
    async with pool.acquire() as conn:
        assert await timers.cancel(conn, kind="test", key="cancelled")
        assert not await timers.cancel(conn, kind="test", key="cancelled")
    await arm_in(pool, "moved", 0.1)  # re-armed earlier: the sleeping scheduler must wake for it
    await arm_in(pool, "canary", 0.3)
    scheduler = run(pool)
    try:
        await eventually(lambda: _all_fired(pool, 2), what="the moved timer and the canary")
    finally:
        await stop(scheduler)
    assert sorted(r["key"] for r in await pool.fetch("SELECT key FROM fired")) == ["canary", "moved"]


async def test_a_failing_handler_is_retried_and_its_effects_roll_back(pool: asyncpg.Pool) -> None:
    calls = 0

    async def flaky(conn: Connection, timer: Timer) -> None:
        nonlocal calls
        calls += 1
        await record(conn, timer)
        if calls == 1:
            raise RuntimeError("first attempt fails")

    await arm_in(pool, "flaky", 0)
    scheduler = run(pool, test=flaky)
    try:
        await eventually(lambda: _all_fired(pool, 1), what="the retried timer")
    finally:
        await stop(scheduler)
    assert calls == 2
    assert await count(pool, "SELECT count(*) FROM fired") == 1, "the failed attempt's effects must roll back"
    assert await count(pool, "SELECT attempts FROM timers") == 1


async def test_a_handler_breaking_a_deferred_constraint_is_retried_and_the_others_fire(pool: asyncpg.Pool) -> None:
    # Deferred checks (routing's agent-load triggers) run at commit, after the handler's savepoint has closed.
    await pool.execute("CREATE TABLE once (key text PRIMARY KEY DEFERRABLE INITIALLY DEFERRED)")
    await pool.execute("INSERT INTO once VALUES ('taken')")
    breaks = 0

    async def breaking(conn: Connection, timer: Timer) -> None:
        nonlocal breaks
        breaks += 1
        await conn.execute("INSERT INTO once VALUES ('taken')")

    await arm_in(pool, "breaks", 0, kind="breaking")
    await arm_in(pool, "fine", 0.2)
    scheduler = run(pool, test=record, breaking=breaking)
    try:
        await eventually(lambda: _all_fired(pool, 1), what="the healthy timer")
        assert not scheduler.done(), "the scheduler must survive a handler's constraint violation"
    finally:
        await stop(scheduler)
    assert breaks >= 1
    assert await count(pool, "SELECT attempts FROM timers WHERE key = 'breaks' AND fired_at IS NULL") >= 1


async def test_a_handler_that_re_arms_its_own_timer_gets_it_fired_again(pool: asyncpg.Pool) -> None:
    """Step relaxation re-arms the timer that is firing (same kind and key) for the next step; that later
    firing must happen, not be marked fired along with the current one."""

    async def chain(conn: Connection, timer: Timer) -> None:
        await record(conn, timer)
        if await conn.fetchval("SELECT count(*) FROM fired") < 3:
            await timers.arm(conn, kind="test", key=timer.key, due_at=timer.due_at + timedelta(seconds=0.3))

    await arm_in(pool, "chain", 0.1)
    scheduler = run(pool, test=chain)
    try:
        await eventually(lambda: _all_fired(pool, 3), what="the timer fired three times", timeout=10)
    finally:
        await stop(scheduler)
    assert await count(pool, "SELECT count(*) FROM fired WHERE at < due") == 0
    assert await count(pool, "SELECT count(*) FROM timers WHERE fired_at < due_at") == 0


async def test_batched_timers_run_one_at_a_time_only_what_their_batch_leaves_and_all_fire_once(
    pool: asyncpg.Pool,
) -> None:
    """A batched kind goes to its batch handler first: the timers it takes are marked fired without the
    one-at-a-time handler, the others fire one transaction each; the claiming loops leave the kind alone."""
    looked_at: list[int] = []

    async def leave_odd(conn: Connection, due: Sequence[Timer]) -> set[int]:
        looked_at.append(len(due))
        return {t.id for t in due if int(t.key[1:]) % 2}

    async with pool.acquire() as conn:
        due = await conn.fetchval("SELECT now()") + timedelta(seconds=0.1)
        await timers.arm_all(conn, [timers.Arming("recheck", f"r{i}", due) for i in range(100)])
    await arm_in(pool, "plain", 0.1)
    scheduler = TimerScheduler(
        pool, {"test": record, "recheck": record}, batch_size=1, loops=2, batched={"recheck": leave_odd}
    )
    task = asyncio.create_task(scheduler.run())
    try:
        await eventually(lambda: _none_armed(pool), what="all 101 fired")
    finally:
        await stop(task)
    fired = {r["key"] for r in await pool.fetch("SELECT key FROM fired")}
    assert fired == {"plain"} | {f"r{i}" for i in range(1, 100, 2)}
    assert await count(pool, "SELECT count(*) FROM fired") == 51, "a timer's handler ran twice"
    assert sum(looked_at) == 100, "every recheck goes through the batch handler, exactly once"
    assert max(looked_at) > 1, "the batch handler is given due timers in batches"
    assert await count(pool, "SELECT count(*) FROM timers WHERE lateness IS NULL OR fired_at < due_at") == 0


async def test_a_timer_left_by_its_batch_and_cancelled_meanwhile_does_not_fire(pool: asyncpg.Pool) -> None:
    """A timer its batch handler leaves fires later, in a transaction of its own: if it was cancelled meanwhile
    (here by the batch's own transaction, as a concurrent cancel would be), it must not fire."""

    async def leave_but_cancel(conn: Connection, due: Sequence[Timer]) -> set[int]:
        await timers.cancel(conn, kind="recheck", key="gone")
        return {t.id for t in due}

    await arm_in(pool, "gone", 0, kind="recheck")
    await arm_in(pool, "canary", 0.2)
    scheduler = TimerScheduler(pool, {"test": record, "recheck": record}, batched={"recheck": leave_but_cancel})
    task = asyncio.create_task(scheduler.run())
    try:
        await eventually(lambda: _all_fired(pool, 1), what="the canary")
    finally:
        await stop(task)
    assert [r["key"] for r in await pool.fetch("SELECT key FROM fired")] == ["canary"]
    assert await count(pool, "SELECT count(*) FROM timers WHERE key = 'gone' AND fired_at IS NULL") == 1
