"""The ceilings: what each part our system is built from does alone on this machine, with nothing of ours.

- asyncpg: a ticket row and its outbox row committed, as one CTE statement (one round trip) and as a
  transaction of four round trips (BEGIN, INSERT, INSERT, COMMIT), at 1, 16 and 64 concurrent connections;
- JetStream: publish with ack to a stream configured like ours, one at a time and pipelined (batches);
- grpc.aio: a unary echo (``bare_path.py echo``) from 16 concurrent callers, and at a fixed moderate rate
  with the CPU each call costs the client and the server (what one hop costs when calls do not batch); the same
  rate of messages on one open bidirectional stream, for comparison;
- FastAPI + uvicorn: ``POST /v1/tickets`` validated and answered at once (``bare_path.py trivial``);
- the composite: FastAPI -> gRPC -> Postgres transaction -> JetStream publish (``bare_path.py``).

Each function takes the URLs of servers already running and returns plain figures.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import nats

from benchmarks.bare_path import ECHO_METHOD, ECHO_STREAM_METHOD
from benchmarks.common import HERE, HOST, CpuMeter, latency_ms, process, wait_for_port
from benchmarks.gateway_api import ceiling as composite_ceiling
from benchmarks.gateway_api import post_factory
from benchmarks.loadgen import saturate
from services.kit.bus.streams import StreamSpec, stream_config
from services.kit.settings import BusSettings
from services.runtime.processes import free_port

BARE_PATH = HERE / "bare_path.py"
# A TicketCreated event is about this size on the bus.
PAYLOAD = b"x" * 400
CEILING_STREAM = StreamSpec("CEILING", ("ceiling.>",))

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS ceiling;
CREATE TABLE IF NOT EXISTS ceiling.tickets (
    id uuid PRIMARY KEY, request_id text NOT NULL UNIQUE, customer_id text NOT NULL, category text NOT NULL,
    subject text NOT NULL, description text NOT NULL, status text NOT NULL, language text NOT NULL,
    version bigint NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ceiling.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id uuid NOT NULL UNIQUE, event_type text NOT NULL,
    subject text NOT NULL, payload bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON ceiling.outbox (id) WHERE published_at IS NULL;
"""
INSERT_TICKET = """
INSERT INTO ceiling.tickets (id, request_id, customer_id, category, subject, description, status, language,
                             version, created_at, updated_at)
VALUES ($1, $2, 'c-1', 'payment_failed', 'Payment failed', 'QR payment says error 51', 'new', 'en', 1, now(), now())
"""
INSERT_OUTBOX = """
INSERT INTO ceiling.outbox (event_id, event_type, subject, payload)
VALUES ($1, 'ceiling.ticket.created', $2, $3)
"""
CTE = """
WITH t AS (
    INSERT INTO ceiling.tickets (id, request_id, customer_id, category, subject, description, status, language,
                                 version, created_at, updated_at)
    VALUES ($1, $2, 'c-1', 'payment_failed', 'Payment failed', 'QR payment says error 51', 'new', 'en', 1,
            now(), now())
    RETURNING id
)
INSERT INTO ceiling.outbox (event_id, event_type, subject, payload)
SELECT $3, 'ceiling.ticket.created', t.id::text, $4 FROM t
"""


async def closed_loop(workers: int, duration_s: float, one: Callable[[int], Awaitable[None]]) -> dict[str, float | int]:
    """``workers`` loops each running ``one(worker)`` back to back for ``duration_s``: rate and latency."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration_s

    async def loop(worker: int) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await one(worker)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in range(workers)))
    elapsed = time.perf_counter() - began
    return {"rate_per_s": round(len(latencies) / elapsed, 1), **latency_ms(latencies), "ops": len(latencies)}


def _one_statement(pool: asyncpg.Pool) -> Callable[[int], Awaitable[None]]:
    async def one(_: int) -> None:
        ticket = uuid.uuid4()
        await pool.execute(CTE, ticket, str(ticket), uuid.uuid4(), PAYLOAD)

    return one


def _four_round_trips(pool: asyncpg.Pool) -> Callable[[int], Awaitable[None]]:
    async def one(_: int) -> None:
        ticket = uuid.uuid4()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(INSERT_TICKET, ticket, str(ticket))
            await conn.execute(INSERT_OUTBOX, uuid.uuid4(), str(ticket), PAYLOAD)

    return one


async def postgres(database_url: str, duration_s: float) -> dict[str, dict[str, float | int]]:
    """Ticket + outbox row committed: one CTE statement vs a four-round-trip transaction, by concurrency."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(SCHEMA_SQL)
    finally:
        await admin.close()
    figures: dict[str, dict[str, float | int]] = {}
    for concurrency in (1, 16, 64):
        pool = await asyncpg.create_pool(database_url, min_size=concurrency, max_size=concurrency)
        assert pool is not None
        cte, four_trips = _one_statement(pool), _four_round_trips(pool)
        try:
            await closed_loop(concurrency, min(0.5, duration_s), cte)  # warm the pool's prepared statements
            await closed_loop(concurrency, min(0.5, duration_s), four_trips)
            figures[f"cte_c{concurrency}"] = await closed_loop(concurrency, duration_s, cte)
            figures[f"tx4_c{concurrency}"] = await closed_loop(concurrency, duration_s, four_trips)
        finally:
            await pool.close()
    return figures


async def jetstream(nats_url: str, duration_s: float, batch: int = 500) -> dict[str, dict[str, float | int]]:
    """Publish with PubAck to a file stream like ours: awaited one by one, and ``batch`` at a time."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(stream_config(CEILING_STREAM, BusSettings()))

        async def one(_: int) -> None:
            await js.publish("ceiling.ticket.created", PAYLOAD, headers={"Nats-Msg-Id": str(uuid.uuid4())})

        async def pipelined(_: int) -> None:
            await asyncio.gather(*(one(0) for _ in range(batch)))

        sync = await closed_loop(1, duration_s, one)
        batches = await closed_loop(1, duration_s, pipelined)
        batches["rate_per_s"] = round(float(batches["rate_per_s"]) * batch, 1)
        batches["ops"] = int(batches["ops"]) * batch
        await js.delete_stream(CEILING_STREAM.name)
        return {"sync": sync, f"pipelined_{batch}": batches}
    finally:
        await nc.close()


async def paced(rate: float, duration_s: float) -> AsyncIterator[None]:
    """Yields ``rate`` times a second for ``duration_s``, on a fixed schedule whatever the caller's latency."""
    started_at = time.perf_counter()
    for n in range(int(rate * duration_s)):
        await asyncio.sleep(max(0.0, started_at + n / rate - time.perf_counter()))
        yield


async def open_loop(rate: float, duration_s: float, one: Callable[[], Awaitable[None]]) -> dict[str, float | int]:
    """``one()`` started ``rate`` times a second for ``duration_s`` whatever the latency: rate and latency."""
    latencies: list[float] = []
    started_at = time.perf_counter()

    async def timed() -> None:
        began = time.perf_counter()
        await one()
        latencies.append(time.perf_counter() - began)

    calls = [asyncio.ensure_future(timed()) async for _ in paced(rate, duration_s)]
    await asyncio.gather(*calls)
    elapsed = time.perf_counter() - started_at
    return {"rate_per_s": round(len(latencies) / elapsed, 1), **latency_ms(latencies), "ops": len(latencies)}


async def grpc_echo(
    tmp: Path, env: dict[str, str], duration_s: float, callers: int = 16, rate: float = 300.0
) -> dict[str, dict[str, Any]]:
    """Saturated by ``callers``; then at ``rate`` calls a second, with the CPU per call on each side."""
    port = free_port(HOST)
    with process([sys.executable, str(BARE_PATH), "echo", "--port", str(port)], env, tmp / "echo.log") as server:
        await wait_for_port(port, server)
        async with grpc.aio.insecure_channel(f"{HOST}:{port}") as channel:
            echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(ECHO_METHOD)
            request = PAYLOAD[:120]

            async def call(_: int = 0) -> None:
                await echo(request, timeout=5)

            await closed_loop(callers, min(0.5, duration_s), call)
            saturated = await closed_loop(callers, duration_s, call)
            meter = CpuMeter(pids={"client": os.getpid(), "server": server.pid})
            meter.start()
            steady = await open_loop(rate, duration_s, call)
            per_call = meter.per(int(steady["ops"]))
            streamed = await _stream_echo(channel, request, rate, duration_s, meter)
            return {
                f"saturated_{callers}": saturated,
                f"at_{rate:.0f}_per_s": {**steady, "cpu_ms_per_call": per_call},
                f"stream_at_{rate:.0f}_per_s": streamed,
            }


async def _stream_echo(
    channel: grpc.aio.Channel, request: bytes, rate: float, duration_s: float, meter: CpuMeter
) -> dict[str, Any]:
    """``rate`` messages a second on one bidirectional stream, each answered: CPU per message on each side."""
    stream: grpc.aio.StreamStreamCall[bytes, bytes] = channel.stream_stream(ECHO_STREAM_METHOD)()
    await stream.write(request)
    await stream.read()  # the stream is open before the meter starts
    sent: list[float] = []
    latencies: list[float] = []

    async def read_answers() -> None:
        while (answer := await stream.read()) is not grpc.aio.EOF:
            assert answer == request
            latencies.append(time.perf_counter() - sent[len(latencies)])

    meter.start()
    reader = asyncio.ensure_future(read_answers())
    async for _ in paced(rate, duration_s):
        sent.append(time.perf_counter())
        await stream.write(request)
    await stream.done_writing()
    await reader
    return {**latency_ms(latencies), "messages": len(latencies), "cpu_ms_per_message": meter.per(len(latencies))}


async def fastapi_trivial(
    tmp: Path, env: dict[str, str], duration_s: float, connections: int
) -> dict[str, float | int]:
    port = free_port(HOST)
    with process([sys.executable, str(BARE_PATH), "trivial", "--port", str(port)], env, tmp / "trivial.log") as app:
        await wait_for_port(port, app)
        make = post_factory(port, None)
        await saturate(HOST, port, make, connections=connections, duration_s=min(0.5, duration_s))
        return (await saturate(HOST, port, make, connections=connections, duration_s=duration_s)).summary()


async def composite(tmp: Path, env: dict[str, str], duration_s: float, connections: int) -> dict[str, dict[str, float]]:
    """Saturated, then at half of that with the CPU each request costs each part."""
    figures = await composite_ceiling(env, tmp, duration_s, connections)
    return {
        "saturated": figures.peak.summary(),
        "half_rate": figures.half.summary(),
        "cpu_ms_per_request_at_half_rate": figures.cpu_ms_per_request_at_half,
    }


async def run(tmp: Path, env: dict[str, str], duration_s: float, connections: int) -> dict[str, Any]:
    """Every ceiling, one after the other (each alone on the machine): ``env`` carries the servers' URLs."""
    return {
        "postgres": await postgres(env["DATABASE_URL"], duration_s),
        "jetstream": await jetstream(env["NATS_URL"], duration_s),
        "grpc_echo": await grpc_echo(tmp, env, duration_s),
        "fastapi_trivial": await fastapi_trivial(tmp, env, duration_s, connections),
        "composite": await composite(tmp, env, duration_s, connections),
    }
