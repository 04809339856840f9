"""The per-process configuration cache: reused while nothing changes, reloaded by the change's next reader."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.routing.config_cache import Config, ConfigCache
from tests.conftest import temporary_database
from tests.integration.bus_fixtures import migrated_pool

CONFIG_CHANGES = {
    "routing rule": "UPDATE routing_rules SET name = name || ' (edited)'",
    "queue": "UPDATE queues SET offer_timeout = interval '45 seconds' WHERE name = 'payments'",
    "SLA policy": "UPDATE sla_policies SET name = name || ' (edited)'",
    "calendar": (
        "INSERT INTO sla_calendars (id, name, time_zone, hours) "
        "VALUES (gen_random_uuid(), 'Shanghai office', 'Asia/Shanghai', "
        """'[{"weekday": 1, "open": "09:00", "close": "18:00"}]')"""
    ),
}


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    yield pool
    await pool.close()


async def current(cache: ConfigCache, pool: asyncpg.Pool) -> Config:
    async with pool.acquire() as conn, conn.transaction():
        return await cache.current(conn)


async def test_unchanged_configuration_is_served_from_the_cache(pool: asyncpg.Pool) -> None:
    cache = ConfigCache()
    first = await current(cache, pool)
    # Work that is not configuration leaves the generation alone.
    await pool.execute("INSERT INTO timers (kind, key, due_at) VALUES ('test', 'k', now())")
    assert await current(cache, pool) is first


@pytest.mark.parametrize("change", CONFIG_CHANGES.values(), ids=CONFIG_CHANGES.keys())
async def test_a_committed_change_is_seen_by_the_next_reader(pool: asyncpg.Pool, change: str) -> None:
    cache = ConfigCache()
    before = await current(cache, pool)
    await pool.execute(change)
    after = await current(cache, pool)
    assert after.generation != before.generation
    assert after is not before


async def test_the_reloaded_copy_holds_the_change(pool: asyncpg.Pool) -> None:
    cache = ConfigCache()
    before = await current(cache, pool)
    await pool.execute(CONFIG_CHANGES["queue"])
    after = await current(cache, pool)
    assert before.queues["payments"].offer_timeout.total_seconds() == 30
    assert after.queues["payments"].offer_timeout.total_seconds() == 45
    await pool.execute(CONFIG_CHANGES["calendar"])
    assert len((await current(cache, pool)).sla.time_bases) == len(after.sla.time_bases) + 1


async def test_an_uncommitted_change_is_not_cached_as_current(pool: asyncpg.Pool) -> None:
    cache = ConfigCache()
    before = await current(cache, pool)
    async with pool.acquire() as editor, editor.transaction():
        await editor.execute(CONFIG_CHANGES["queue"])
        assert await current(cache, pool) is before
    assert (await current(cache, pool)).queues["payments"].offer_timeout.total_seconds() == 45


async def test_two_databases_share_one_cache_without_mixing(pool: asyncpg.Pool, database_url: str) -> None:
    cache = ConfigCache()
    with temporary_database(database_url) as other_url:
        other = await migrated_pool(other_url, "routing", "services.routing")
        try:
            await other.execute(CONFIG_CHANGES["queue"])
            here, there = await current(cache, pool), await current(cache, other)
            assert here.generation != there.generation
            assert here.queues["payments"].offer_timeout.total_seconds() == 30
            assert there.queues["payments"].offer_timeout.total_seconds() == 45
            assert await current(cache, pool) is here
        finally:
            await other.close()
