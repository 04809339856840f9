"""Notify delivery: event published → in-app push on a connected WebSocket, and webhook isolation.

1. Push latency. notify (consumers, outbox relay) and the gateway (uvicorn, /v1/stream) on embedded NATS and
   Postgres; one agent connected. ``offer.created`` events are published at a steady rate; the time from each
   publish until its frame arrives on the socket.
2. A hanging webhook endpoint. Two healthy local endpoints receive every event, first alone, then beside a
   third that never answers (each attempt runs to its timeout). The healthy endpoints' delivery latency
   (created → 2xx recorded) in both phases shows whether the hanging one slows them.

Embedded Postgres and NATS in a temporary folder; nothing else is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import nats
import uvicorn
from websockets.asyncio.client import connect

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.kit.bus.streams import ALL_STREAMS, declare_streams
from services.kit.settings import BusSettings
from services.notify.deliveries.admin import DeliveryAdmin
from services.notify.deliveries.model import Endpoint
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres
from tests.integration import notify_events as ev
from tests.integration.notify_fixtures import free_port, http_receiver, notify_settings, running_notify

RESULTS = Path(__file__).resolve().parent / "results"


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return {
        "n": len(ordered),
        "p50": pct(50),
        "p90": pct(90),
        "p99": pct(99),
        "max": ordered[-1] * 1000,
        "mean": statistics.fmean(ordered) * 1000,
    }


async def push_latency(url: str, nats_url: str, tmp: Path, events: int, rate: float) -> dict[str, float]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await declare_streams(js, BusSettings(stream_duplicate_window_s=120), ALL_STREAMS)
    settings = notify_settings(url, free_port())
    async with running_notify(url, js, settings) as notify:
        port = free_port()
        app = create_app(GatewaySettings(data_dir=tmp, notify_addr=f"127.0.0.1:{free_port()}", nats_url=nats_url))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not (server.started and app.state.stream_hub.available):  # noqa: ASYNC110 - polling a server flag
            await asyncio.sleep(0.05)
        secret = load_or_create_local_secret(tmp / "secrets" / "local-jwt.key")
        token = mint_local_token(
            secret, role="agent", subject="a-1", issuer="supportdesk-local", audience="supportdesk"
        )
        sent: dict[str, float] = {}
        latencies: list[float] = []
        async with connect(f"ws://127.0.0.1:{port}/v1/stream?access_token={token}") as ws:

            async def receive() -> None:
                while len(latencies) < events:
                    frame = json.loads(await ws.recv())
                    latencies.append(time.perf_counter() - sent[frame["data"]["ticket_id"]])

            receiver = asyncio.create_task(receive())
            for _ in range(events):
                envelope = ev.offer_created(str(uuid.uuid4()), "a-1")
                sent[envelope.subject] = time.perf_counter()
                await notify.publish(envelope)
                await asyncio.sleep(1 / rate)
            await asyncio.wait_for(receiver, 60)
        server.should_exit = True
        await task
    await nc.close()
    return summary_ms(latencies[min(20, events // 10) :])  # the first few warm connections and caches


async def webhook_phase(url: str, nats_url: str, events: int, hanging: bool) -> dict[str, float]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in await js.streams_info():
        if stream.config.name:
            await js.delete_stream(stream.config.name)
    await asyncio.sleep(0.5)
    await declare_streams(js, BusSettings(stream_duplicate_window_s=120), ALL_STREAMS)
    settings = notify_settings(url, free_port(), webhook_timeout_s=5.0, delivery_per_target=4)
    async with http_receiver() as receiver, running_notify(url, js, settings) as notify:
        admin = DeliveryAdmin(notify.pool)
        await notify.pool.execute("TRUNCATE deliveries, delivery_attempts, webhook_endpoints CASCADE")
        paths = ["/ok-1", "/ok-2", *(["/hang"] if hanging else [])]
        for path in paths:
            await admin.create_endpoint(
                str(uuid.uuid4()), Endpoint(uuid.uuid4(), "bench", receiver.base_url + path, "", (">",))
            )
        for _ in range(events):
            await notify.publish(ev.ticket_created(str(uuid.uuid4()), "c-1"))
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = await notify.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = 'delivered' AND target IN "
                "(SELECT id::text FROM webhook_endpoints WHERE url NOT LIKE '%/hang')"
            )
            if done == 2 * events:
                break
            await asyncio.sleep(0.1)
        rows = await notify.pool.fetch(
            "SELECT extract(epoch FROM delivered_at - created_at) AS s FROM deliveries "
            "WHERE status = 'delivered' AND channel = 'webhook'"
        )
    await nc.close()
    return summary_ms([float(r["s"]) for r in rows])


async def run(args: argparse.Namespace, pg_url: str, nats_url: str, tmp: Path) -> dict[str, Any]:
    urls = []
    for name in ("bench_push", "bench_hooks_a", "bench_hooks_b"):
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        urls.append(pg_url.rsplit("/", 1)[0] + f"/{name}")
    push = await push_latency(urls[0], nats_url, tmp, args.events, args.rate)
    alone = await webhook_phase(urls[1], nats_url, args.webhook_events, hanging=False)
    beside = await webhook_phase(urls[2], nats_url, args.webhook_events, hanging=True)
    return {"push_ms": push, "webhook_alone_ms": alone, "webhook_beside_hanging_ms": beside}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second for the push test")
    parser.add_argument("--webhook-events", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    folder.chmod(0o711)
    try:
        with (
            EmbeddedPostgres(folder / "pg", run_as=os.environ.get("SUPPORTDESK_PG_USER")) as pg,
            EmbeddedNats(folder / "nats") as bus,
        ):
            result = asyncio.run(run(args, pg.url, bus.url, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'figure':58} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for key, label in (
        ("push_ms", f"event published → WebSocket frame ({args.rate:.0f}/s), ms"),
        ("webhook_alone_ms", "healthy webhooks, alone: created → delivered, ms"),
        ("webhook_beside_hanging_ms", "healthy webhooks beside a hanging one, ms"),
    ):
        r = result[key]
        print(f"{label:58} {r['p50']:8.1f} {r['p90']:8.1f} {r['p99']:8.1f} {r['max']:8.1f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"notify_delivery-{int(time.time())}.json"
    out.write_text(json.dumps({"machine": platform.platform(), "args": vars(args), **result}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
