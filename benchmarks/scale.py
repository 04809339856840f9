"""Scale curves: dispatch decision cost over a grid of desk sizes, and SLA timers with 100,000 armed.

Both reuse their own benchmarks (``routing_dispatch.decision_cost``, ``sla_timers.one_run``), each size in a
database of its own on the run's Postgres, dropped afterwards. At each size the routing service itself then
runs on that database and handles a burst of ``ticket.created`` events: its memory, idle and after the burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import nats
import psutil  # type: ignore[import-untyped]
from nats.js.errors import NotFoundError

from benchmarks import sla_timers
from benchmarks.common import HOST, log_messages, process, wait_for_port
from benchmarks.routing_dispatch import created_event, decision_cost
from services.kit.bus.streams import ALL_STREAMS, declare_streams
from services.kit.migrations import migrate
from services.kit.settings import BusSettings
from services.routing.consumers import TICKET_EVENTS
from services.runtime.processes import free_port


def _database(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def _drop(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def routing_memory(tmp: Path, env: dict[str, str], database_url: str, events: int) -> dict[str, float]:
    """RSS of a routing service on ``database_url``, idle and after handling ``events`` new tickets."""
    port = free_port(HOST)
    service_env = {
        **env,
        "DATABASE_URL": database_url,
        "SUPPORTDESK_GRPC_HOST": HOST,
        "SUPPORTDESK_GRPC_PORT": str(port),
    }
    conn = await asyncpg.connect(database_url)
    try:
        # The seed leaves agents with a random load and no offers behind it (triggers off); a live service
        # checks the two agree, so the agents start free here.
        await conn.execute("UPDATE routing.agents SET active = 0")
    finally:
        await conn.close()
    nc = await nats.connect(env["NATS_URL"])
    try:
        js = nc.jetstream()
        await declare_streams(js, BusSettings(), ALL_STREAMS)
        # Only this cell's events: whatever an earlier part of the run left in the stream (the last status
        # changes of the system phase) is about tickets this database never saw.
        await js.purge_stream(TICKET_EVENTS.stream.name)
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(TICKET_EVENTS.stream.name, TICKET_EVENTS.durable)
        with process([sys.executable, "-m", "services.routing"], service_env, tmp / "routing-scale.log") as child:
            await wait_for_port(port, child)
            service = psutil.Process(child.pid)
            idle = service.memory_info().rss
            rng = random.Random(events)
            began = time.perf_counter()
            for _ in range(events):
                event = created_event(rng)
                await js.publish(event.type, event.data, headers=event.headers())
            deadline = began + 120
            while time.perf_counter() < deadline:
                try:
                    info = await js.consumer_info(TICKET_EVENTS.stream.name, TICKET_EVENTS.durable)
                except NotFoundError:  # not declared by the service yet
                    info = None
                if info is not None and not info.num_pending and not info.num_ack_pending:
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit("the routing service did not handle its events in time")
            handled_s = time.perf_counter() - began
            busy = service.memory_info().rss
    finally:
        await nc.close()
    return {
        "idle_mb": round(idle / 2**20, 1),
        "after_events_mb": round(busy / 2**20, 1),
        "events": events,
        "events_handled_s": round(handled_s, 2),
        "log_warnings": sum(log_messages(tmp / "routing-scale.log").values()),
    }


async def dispatch_grid(
    admin_url: str,
    agents: tuple[int, ...],
    tickets: tuple[int, ...],
    samples: int,
    *,
    tmp: Path,
    env: dict[str, str],
    events: int,
) -> list[dict[str, Any]]:
    """Mean and p99 of both dispatch decisions at every (agents, waiting tickets) size, and routing's memory."""
    cells = []
    for seed, (a, t) in enumerate((a, t) for a in agents for t in tickets):
        name = f"bench_{a}_{t}"
        cell = await decision_cost(admin_url, (a, t), samples, seed, False)
        if events:
            cell["routing_rss"] = await routing_memory(tmp, env, _database(admin_url, name), events)
        await _drop(admin_url, name)
        cells.append(cell)
    return cells


async def timers(
    admin_url: str, postmaster_pid: int, armed: int, due: int, spread_s: float, batch: int, loops: int
) -> dict[str, Any]:
    """``armed`` timers of which ``due`` come due over ``spread_s``: firing lateness and the scheduler's cost."""
    name = "bench_timers"
    await _drop(admin_url, name)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _database(admin_url, name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "routing", "services.routing")
    finally:
        await conn.close()
    try:
        run = await sla_timers.one_run(
            dsn,
            psutil.Process(postmaster_pid),
            f"{armed:,} armed, {due:,} due over {spread_s:.0f} s",
            due=due,
            idle=armed - due,
            spread_s=spread_s,
            batch_size=batch,
            loops=loops,
        )
    finally:
        await _drop(admin_url, name)
    return asdict(run)
