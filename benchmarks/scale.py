"""Scale curves: dispatch decision cost over a grid of desk sizes, and SLA timers with 100,000 armed.

Both reuse their own benchmarks (``routing_dispatch.decision_cost``, ``sla_timers.one_run``), each size in a
database of its own on the run's Postgres, dropped afterwards.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]

from benchmarks import sla_timers
from benchmarks.routing_dispatch import decision_cost
from services.kit.migrations import migrate


def _database(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def _drop(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def dispatch_grid(
    admin_url: str, agents: tuple[int, ...], tickets: tuple[int, ...], samples: int
) -> list[dict[str, Any]]:
    """Mean and p99 of both dispatch decisions at every (agents, waiting tickets) size."""
    cells = []
    for seed, (a, t) in enumerate((a, t) for a in agents for t in tickets):
        cell = await decision_cost(admin_url, (a, t), samples, seed, False)
        await _drop(admin_url, f"bench_{a}_{t}")
        cells.append(cell)
    return cells


async def timers(
    admin_url: str, postmaster_pid: int, armed: int, due: int, spread_s: float, batch: int
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
        )
    finally:
        await _drop(admin_url, name)
    return asdict(run)
