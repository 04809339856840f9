"""Fixtures shared by the integration tests: a migrated schema and a clean JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import ServerError

from services.kit.bus.streams import ALL_STREAMS, declare_streams
from services.kit.db import create_pool
from services.kit.migrations import migrate
from services.kit.settings import BusSettings
from tests.waiting import eventually

BUS = BusSettings(consumer_ack_wait_s=1.0, consumer_max_deliver=3, stream_duplicate_window_s=120)


async def migrated_pool(database_url: str, schema: str, package: str) -> asyncpg.Pool:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema, package)
    finally:
        await conn.close()
    return await create_pool(database_url, schema=schema, application="test", min_size=1, max_size=8)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    """JetStream with every stream of ours deleted and declared anew: each test starts from empty streams."""
    context = nc.jetstream()
    for stream in await context.streams_info():
        if stream.config.name:
            await context.delete_stream(stream.config.name)

    async def declared() -> bool:
        # The server removes a deleted stream's files in the background; creating the same
        # name before that finishes fails with "error creating store for stream" (10049).
        try:
            await declare_streams(context, BUS, ALL_STREAMS)
        except ServerError:
            return False
        return True

    await eventually(declared, what="streams declared anew")
    return context


async def stream_messages(js: JetStreamContext, stream: str) -> list[RawStreamMsg]:
    """Every message stored in ``stream``, read directly by sequence."""
    info = await js.stream_info(stream)
    return (
        [await js.get_msg(stream, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)]
        if (info.state.messages)
        else []
    )
