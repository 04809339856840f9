"""Wake-ups sent by a connection of ``create_pool`` when the transaction that owes them commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from services.kit import wake
from services.kit.db import create_pool


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(fresh_database_url, schema="public", application="test", min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def woken() -> Iterator[asyncio.Event]:
    event = asyncio.Event()
    with wake.OUTBOX.subscribed(event):
        yield event


async def test_a_commit_sends_what_its_transaction_owes_and_not_before(
    pool: asyncpg.Pool, woken: asyncio.Event
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            wake.after_commit(conn, wake.OUTBOX)
            await conn.execute("SELECT 1")
            assert not woken.is_set()
        assert woken.is_set()


async def test_a_rollback_sends_nothing_and_forgets_it(pool: asyncpg.Pool, woken: asyncio.Event) -> None:
    async with pool.acquire() as conn:

        async def failing_handler() -> None:
            async with conn.transaction():
                wake.after_commit(conn, wake.OUTBOX)
                raise RuntimeError("the handler failed")

        with pytest.raises(RuntimeError):
            await failing_handler()
        async with conn.transaction():
            await conn.execute("SELECT 1")
    assert not woken.is_set()


async def test_a_savepoint_waits_for_the_outer_commit(pool: asyncpg.Pool, woken: asyncio.Event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        async with conn.transaction():
            wake.after_commit(conn, wake.OUTBOX)
        assert not woken.is_set()
    assert woken.is_set()


async def test_explicit_commit_sends_and_explicit_rollback_does_not(pool: asyncpg.Pool, woken: asyncio.Event) -> None:
    async with pool.acquire() as conn:
        aborted = conn.transaction()
        await aborted.start()
        wake.after_commit(conn, wake.OUTBOX)
        await aborted.rollback()
        assert not woken.is_set()
        committed = conn.transaction()
        await committed.start()
        wake.after_commit(conn, wake.OUTBOX)
        assert not woken.is_set()
        await committed.commit()
    assert woken.is_set()


async def test_outside_a_transaction_the_statement_has_committed(pool: asyncpg.Pool, woken: asyncio.Event) -> None:
    async with pool.acquire() as conn:
        await conn.execute("SELECT 1")
        wake.after_commit(conn, wake.OUTBOX)
    assert woken.is_set()


async def test_only_the_named_kind_of_work_is_woken(pool: asyncpg.Pool, woken: asyncio.Event) -> None:
    async with pool.acquire() as conn, conn.transaction():
        wake.after_commit(conn, wake.TIMERS)
    assert not woken.is_set()
