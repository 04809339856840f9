"""Outbox relay throughput: rows per second the kit's ``OutboxRelay`` publishes from a pre-filled outbox.

The outbox lives in a schema of its own (the kit's bus tables only) and the relay publishes to a stream of
its own configured like ours, so nothing else consumes the events. Compare with the JetStream pipelined
ceiling: the relay adds the locking read, the envelope headers and the UPDATE that marks rows published.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import nats

from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import StreamSpec, stream_config
from services.kit.db import create_pool
from services.kit.migrations import BUS_MIGRATIONS, load_migrations
from services.kit.settings import BusSettings

SCHEMA = "relaybench"
STREAM = StreamSpec("RELAYBENCH", ("relaybench.>",))
PAYLOAD = b"x" * 400


async def prefill(database_url: str, rows: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(f"SET search_path TO {SCHEMA}")
        for migration in load_migrations(BUS_MIGRATIONS, "kit"):
            await conn.execute(migration.sql)
        now = datetime.now(UTC)
        records = [
            (uuid.uuid4(), "relaybench.ticket.created", "supportdesk/bench", str(uuid.uuid4()), now, PAYLOAD, "{}")
            for _ in range(rows)
        ]
        await conn.copy_records_to_table(
            "outbox",
            records=records,
            columns=["event_id", "event_type", "source", "subject", "event_time", "payload", "trace"],
        )
        await conn.execute("VACUUM ANALYZE outbox")
    finally:
        await conn.close()


async def throughput(database_url: str, nats_url: str, rows: int) -> dict[str, float | int]:
    """Fill the outbox with ``rows``, start one relay, and time it until every row is marked published."""
    await prefill(database_url, rows)
    nc = await nats.connect(nats_url)
    pool = await create_pool(database_url, schema=SCHEMA, application="bench-relay", min_size=2, max_size=4)
    js = nc.jetstream()
    await js.add_stream(stream_config(STREAM, BusSettings()))
    relay = asyncio.create_task(OutboxRelay(pool, js, SCHEMA).run())
    try:
        began = time.perf_counter()
        deadline = began + 300
        while await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
            if relay.done() or time.perf_counter() > deadline:
                raise SystemExit("the outbox relay stopped or fell behind")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        on_stream = (await js.stream_info(STREAM.name)).state.messages
        return {
            "rows": rows,
            "seconds": round(elapsed, 2),
            "rows_per_s": round(rows / elapsed, 1),
            "on_stream": on_stream,
        }
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await js.delete_stream(STREAM.name)
        await pool.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await pool.close()
        await nc.close()
