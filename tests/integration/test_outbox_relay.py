"""The relay publishes every committed outbox row exactly once, even when it dies between publish and mark."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from nats.js import JetStreamContext

from services.kit.bus import store
from services.kit.bus.envelope import Envelope
from services.kit.bus.outbox import OutboxRelay
from services.kit.db import Connection
from tests.integration.bus_fixtures import migrated_pool, stream_messages
from tests.waiting import eventually

pytestmark = pytest.mark.integration


class RelayKilled(Exception):
    pass


class RelayKilledBeforeMarking(OutboxRelay):
    """Dies after JetStream acknowledged the batch and before the outbox rows are marked."""

    async def _mark(self, conn: Connection, row_ids: list[int]) -> None:
        raise RelayKilled


def event(n: int) -> Envelope:
    return Envelope.new(
        type="support.ticketing.v1.ticket.created",
        source="supportdesk/ticketing",
        subject=str(uuid.uuid4()),
        data=f"payload-{n}".encode(),
    )


async def unpublished(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count


async def test_every_committed_row_is_published_exactly_once_across_a_crash(
    fresh_database_url: str, js: JetStreamContext
) -> None:
    pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
    try:
        committed = [event(n) for n in range(40)]
        async with pool.acquire() as conn, conn.transaction():
            await store.add_to_outbox(conn, committed)
        async with pool.acquire() as conn:  # an aborted transaction's events must never leave
            aborted = conn.transaction()
            await aborted.start()
            await store.add_to_outbox(conn, [event(999)])
            await aborted.rollback()

        with pytest.raises(RelayKilled):
            await RelayKilledBeforeMarking(pool, js, "ticketing", batch_size=25).relay_once()
        assert await unpublished(pool) == 40, "nothing may be marked when the relay died before marking"

        relay = OutboxRelay(pool, js, "ticketing", batch_size=25)
        while (await relay.relay_once()).published:
            pass
        assert await unpublished(pool) == 0

        messages = await stream_messages(js, "TICKETING")
        ids = [m.headers["ce-id"] for m in messages if m.headers]
        assert sorted(ids) == sorted(e.id for e in committed)
        assert {m.data for m in messages} == {e.data for e in committed}
        assert all(m.headers and m.headers["Nats-Msg-Id"] == m.headers["ce-id"] for m in messages)
    finally:
        await pool.close()


async def test_relay_keeps_rows_the_bus_did_not_acknowledge(fresh_database_url: str, js: JetStreamContext) -> None:
    pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
    try:
        async with pool.acquire() as conn, conn.transaction():
            await store.add_to_outbox(conn, [event(1)])
        await js.delete_stream("TICKETING")  # no stream: the publish gets no PubAck
        result = await OutboxRelay(pool, js, "ticketing", publish_timeout_s=0.5).relay_once()
        assert (result.published, result.failed) == (0, 1)
        assert await unpublished(pool) == 1
    finally:
        await pool.close()


async def test_running_relay_is_woken_by_a_commit(fresh_database_url: str, js: JetStreamContext) -> None:
    pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
    # A poll interval far beyond the test's deadline: only a commit's wake-up can make it publish in time.
    relay = asyncio.create_task(OutboxRelay(pool, js, "ticketing", poll_interval_s=3600).run())
    try:
        for n in (1, 2):  # the first proves a pass ran; the second reaches a relay that went to sleep after it
            async with pool.acquire() as conn, conn.transaction():
                await store.add_to_outbox(conn, [event(n)])

            async def published(n: int = n) -> bool:
                return (await js.stream_info("TICKETING")).state.messages == n

            await eventually(published, timeout=10, what=f"the relay to publish event {n} after its commit")
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)
        await pool.close()
