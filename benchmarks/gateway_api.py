"""The public API's hot paths against this machine's own ceiling, measured in the same run.

1. Ceiling: ``bare_path.py`` (FastAPI -> gRPC -> one Postgres transaction -> JetStream publish) at saturation.
2. Ours: the real gateway and ticketing processes (auth, validation, redaction, priority rules, tracing,
   ticket + version + timeline + outbox in one transaction; the relay publishes off the request path; creates
   arriving together share one call to ticketing, ADR 0069).
   ``POST /v1/tickets`` at saturation (the ratio to the ceiling), then at half the ceiling's rate (latency),
   then ``GET /v1/tickets/{id}`` at a moderate fixed rate.
3. Afterwards: every created ticket's event is on the bus (the relay kept up), and how long it took.

In both latency phases (the same rate), the CPU each request cost, by process (the HTTP server, the gRPC
server, Postgres with its backends, NATS): where ours spends more than the ceiling.

Both stacks run on the same embedded NATS and Postgres, started here in a temporary folder.

    .venv/bin/python -m benchmarks.gateway_api [--duration 20] [--connections 32] [--get-rate 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats

from benchmarks.common import HERE, HOST, CpuMeter, machine, process, temp_dir, wait_for_port, write_result
from benchmarks.loadgen import RequestFactory, Results, at_rate, request_bytes, saturate
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres
from services.runtime.migrate import migrate_all
from services.runtime.processes import free_port

BARE_PATH = HERE / "bare_path.py"
BODY = {
    "channel": "app",
    "category": "payment_failed",
    "subject": "Payment failed",
    "description": "QR payment says error 51",
    "language": "en",
}


def post_factory(port: int, token: str | None, fields: dict[str, str] | None = None) -> RequestFactory:
    """Ticket-creating requests, each with its own Idempotency-Key; ``fields`` override the body's."""
    body = json.dumps({**BODY, **(fields or {})}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def make() -> bytes:
        return request_bytes(
            "POST", f"{HOST}:{port}", "/v1/tickets", {**headers, "Idempotency-Key": str(uuid.uuid4())}, body
        )

    return make


@dataclass(frozen=True)
class PostFigures:
    peak: Results
    half: Results
    cpu_ms_per_request_at_half: dict[str, float]


def stack_meter(tmp: Path, http: subprocess.Popen[bytes], grpc: subprocess.Popen[bytes]) -> CpuMeter:
    """The CPU of a path's four parts: its HTTP and gRPC servers and the embedded servers under ``tmp``."""
    return CpuMeter(
        pids={"http": http.pid, "grpc": grpc.pid}, folders={"postgres": tmp / "postgres", "nats": tmp / "nats"}
    )


async def measure_post(
    port: int, token: str | None, duration_s: float, connections: int, half_rate: float | None, meter: CpuMeter
) -> PostFigures:
    """Saturated throughput, then latency and CPU per request at ``half_rate`` (default: half of the saturated
    rate)."""
    make = post_factory(port, token)
    await saturate(HOST, port, make, connections=connections, duration_s=min(3.0, duration_s))  # warm-up
    peak = await saturate(HOST, port, make, connections=connections, duration_s=duration_s)
    meter.start()
    half = await at_rate(HOST, port, make, rate=half_rate or peak.rate / 2, duration_s=duration_s)
    return PostFigures(peak, half, meter.per(len(half.latencies_ms)))


async def ceiling(
    env: dict[str, str], tmp: Path, duration_s: float, connections: int, half_rate: float | None = None
) -> PostFigures:
    """The bare composite path (``bare_path.py``) at saturation, then at ``half_rate`` (default: half of it)."""
    grpc_port, http_port = free_port(HOST), free_port(HOST)
    grpc_args = ["grpc", "--port", str(grpc_port), "--database-url", env["DATABASE_URL"], "--nats-url", env["NATS_URL"]]
    with (
        process([sys.executable, str(BARE_PATH), *grpc_args], env, tmp / "bare-grpc.log") as bare_grpc,
        process(
            [sys.executable, str(BARE_PATH), "http", "--port", str(http_port), "--grpc-addr", f"{HOST}:{grpc_port}"],
            env,
            tmp / "bare-http.log",
        ) as http,
    ):
        await wait_for_port(grpc_port, bare_grpc)
        await wait_for_port(http_port, http)
        meter = stack_meter(tmp, http, bare_grpc)
        return await measure_post(http_port, None, duration_s, connections, half_rate, meter)


async def ours(
    env: dict[str, str], tmp: Path, args: argparse.Namespace, half_rate: float
) -> tuple[PostFigures, Results, int, float]:
    grpc_port, http_port = free_port(HOST), free_port(HOST)
    secret_file = tmp / "local-jwt.key"
    secret = load_or_create_local_secret(secret_file)
    token = mint_local_token(
        secret, role="customer", subject="c-bench", issuer="supportdesk-local", audience="supportdesk"
    )
    service_env = {**env, "SUPPORTDESK_GRPC_HOST": HOST, "SUPPORTDESK_GRPC_PORT": str(grpc_port)}
    gateway_env = {
        **env,
        "SUPPORTDESK_HTTP_HOST": HOST,
        "SUPPORTDESK_HTTP_PORT": str(http_port),
        "SUPPORTDESK_AUTH_MODE": "local",
        # One subject drives the whole load: limits stay on (their cost is part of the path) but never bite.
        "SUPPORTDESK_RATE_LIMIT_READS": "1000000000",
        "SUPPORTDESK_RATE_LIMIT_WRITES": "1000000000",
        "SUPPORTDESK_LOCAL_JWT_SECRET_FILE": str(secret_file),
        "SUPPORTDESK_TICKETING_ADDR": f"{HOST}:{grpc_port}",
    }
    with (
        process([sys.executable, "-m", "services.ticketing"], service_env, tmp / "ticketing.log") as ticketing,
        process([sys.executable, "-m", "services.gateway"], gateway_env, tmp / "gateway.log") as gateway,
    ):
        await wait_for_port(grpc_port, ticketing)
        await wait_for_port(http_port, gateway)
        post = await measure_post(
            http_port, token, args.duration, args.connections, half_rate, stack_meter(tmp, gateway, ticketing)
        )
        drained_s = await relay_drain_time(env["DATABASE_URL"])
        ticket_ids = await some_ticket_ids(env["DATABASE_URL"], 1000)
        reads = iter(ticket_ids * (1 + int(args.get_rate * args.duration) // len(ticket_ids)))
        auth = {"Authorization": f"Bearer {token}"}

        def get() -> bytes:
            return request_bytes("GET", f"{HOST}:{http_port}", f"/v1/tickets/{next(reads)}", auth)

        read = await at_rate(HOST, http_port, get, rate=args.get_rate, duration_s=args.duration)
        published = await stream_count(env["NATS_URL"])
        return post, read, published - await ticket_count(env["DATABASE_URL"]), drained_s


async def relay_drain_time(database_url: str) -> float:
    """Seconds after the load stopped until the outbox had nothing left to publish."""
    conn = await asyncpg.connect(database_url)
    try:
        started = time.perf_counter()
        while True:
            if not await conn.fetchval("SELECT count(*) FROM ticketing.outbox WHERE published_at IS NULL"):
                return time.perf_counter() - started
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def some_ticket_ids(database_url: str, limit: int) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id FROM ticketing.tickets ORDER BY random() LIMIT $1", limit)
        return [str(row["id"]) for row in rows]
    finally:
        await conn.close()


async def ticket_count(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ticketing.tickets"))
    finally:
        await conn.close()


async def stream_count(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info("TICKETING")
        return int(info.state.messages)
    finally:
        await nc.close()


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    with EmbeddedNats(tmp / "nats") as bus, EmbeddedPostgres(tmp / "postgres") as db:
        await migrate_all(db.url)
        env = {
            **os.environ,
            "NATS_URL": bus.url,
            "DATABASE_URL": db.url,
            "SUPPORTDESK_DATA_DIR": str(tmp),
            "SUPPORTDESK_LOG_LEVEL": "WARNING",
        }
        bare = await ceiling(env, tmp, args.duration, args.connections, args.half_rate or None)
        # Ours at half of the *ceiling's* rate: the load the target names.
        half_rate = args.half_rate or bare.peak.rate / 2
        post, read, events_minus_tickets, drained_s = await ours(env, tmp, args, half_rate)
    return {
        "machine": machine(),
        "duration_s": args.duration,
        "connections": args.connections,
        "ceiling_post_saturated": bare.peak.summary(),
        "ceiling_post_half_rate": bare.half.summary(),
        # http: FastAPI (the ceiling) or the gateway; grpc: the bare gRPC server or ticketing.
        "ceiling_cpu_ms_per_request_at_half_rate": bare.cpu_ms_per_request_at_half,
        "post_saturated": post.peak.summary(),
        "post_half_rate": post.half.summary(),
        "cpu_ms_per_request_at_half_rate": post.cpu_ms_per_request_at_half,
        "ratio_to_ceiling": round(post.peak.rate / bare.peak.rate, 2),
        "get_ticket": read.summary(),
        # Each ticket creation publishes exactly one event: 0 means the relay published every one.
        "events_on_bus_minus_tickets_in_db": events_minus_tickets,
        "relay_drain_after_load_s": round(drained_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured phase")
    parser.add_argument("--connections", type=int, default=32, help="concurrent clients at saturation")
    parser.add_argument(
        "--half-rate", type=float, default=0.0, help="POST rate of the latency phase (0: half the ceiling's)"
    )
    parser.add_argument("--get-rate", type=float, default=300.0, help="GET /v1/tickets/{id} requests per second")
    args = parser.parse_args()
    with temp_dir("supportdesk-api-bench-") as tmp:
        result = asyncio.run(run(args, tmp))
    print(json.dumps(result, indent=2))
    print(f"written {write_result('gateway_api', result)}")


if __name__ == "__main__":
    main()
