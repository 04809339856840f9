"""Durable timers at scale: firing lateness with 100k timers, and the scheduler's cost at 1k vs 100k armed.

Starts an embedded Postgres in a temporary folder, migrates routing's schema, bulk-arms timers (the rows
``timers.arm`` writes), then runs ``services.routing.timers.TimerScheduler`` with a no-op handler and as many
claiming loops as routing runs, in a child process (so its CPU and memory are its own), until every timer due in
the run has fired, and reads each one's ``lateness`` (fired_at - due_at, by the database clock) from the table.
Three runs:

- ``1k armed``: 1,000 timers due over the firing window;
- ``100k armed, 1k due``: the same 1,000 plus 99,000 armed for tomorrow: what armed-but-idle timers cost;
- ``100k armed, 100k due``: every timer due over a 90 s window (~1,100 fires/s): lateness in steady state.

    .venv/bin/python benchmarks/sla_timers.py [--timers 100000] [--spread 90] [--small 1000] [--batch 200] [--loops 4]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import machine, temp_dir, write_result  # noqa: E402
from services.kit.migrations import migrate  # noqa: E402
from services.runtime.embedded_postgres import EmbeddedPostgres  # noqa: E402

# Time between arming and the first due timer: the child starts and connects meanwhile.
LEAD_S = 4.0


@dataclass
class Run:
    name: str
    armed: int
    fired: int
    window_s: float
    lateness_p50_ms: float
    lateness_p90_ms: float
    lateness_p99_ms: float
    lateness_max_ms: float
    scheduler_cpu_s: float
    scheduler_cpu_ms_per_fire: float
    scheduler_rss_peak_mb: float
    postgres_cpu_s: float
    claim_query_ms: float
    # Seconds of the window (by due time) in which some timer fired more than 100 ms late: stalls, not noise.
    seconds_over_100ms: int


# --- the child: one scheduler replica ------------------------------------------------------------------


async def _noop(conn: Any, timer: Any) -> None:
    return None


async def child(dsn: str, batch_size: int, loops: int) -> None:
    from services.kit.db import create_pool
    from services.routing.timers import TimerScheduler

    pool = await create_pool(dsn, schema="routing", application="bench-scheduler", min_size=2, max_size=4)
    await TimerScheduler(pool, {"bench": _noop}, batch_size=batch_size, loops=loops).run()


# --- the parent ----------------------------------------------------------------------------------------


async def arm(conn: asyncpg.Connection, count: int, lead_s: float, spread_s: float, *, prefix: str) -> None:
    """Arm ``count`` timers due uniformly at random in [now + lead, now + lead + spread)."""
    await conn.execute(
        """
        INSERT INTO timers (kind, key, due_at, payload)
        SELECT 'bench', $1 || g, now() + make_interval(secs => $2 + random() * $3), '{}'
        FROM generate_series(1, $4) AS g
        """,
        prefix,
        lead_s,
        spread_s,
        count,
    )


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def postgres_cpu(postmaster: psutil.Process, *, besides: int) -> dict[int, float]:
    """CPU seconds of the server's processes, except the backend ``besides`` (the benchmark's own)."""
    usage = {postmaster.pid: cpu_of(postmaster)}
    for backend in postmaster.children(recursive=True):
        if backend.pid == besides:
            continue
        try:
            usage[backend.pid] = cpu_of(backend)
        except psutil.NoSuchProcess:
            continue
    return usage


async def claim_query_ms(conn: asyncpg.Connection) -> float:
    """Execution time of the scheduler's claim query with everything armed (EXPLAIN ANALYZE, rolled back)."""
    async with conn.transaction():
        plan = await conn.fetchval(
            """
            EXPLAIN (ANALYZE, FORMAT JSON)
            SELECT id, kind, key, due_at, payload, attempts FROM timers
            WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now() + interval '1 day'
            ORDER BY due_at LIMIT 200 FOR UPDATE SKIP LOCKED
            """
        )
    return float(json.loads(plan)[0]["Execution Time"])


async def one_run(
    dsn: str,
    postmaster: psutil.Process,
    name: str,
    *,
    due: int,
    idle: int,
    spread_s: float,
    batch_size: int,
    loops: int,
) -> Run:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "routing"})
    try:
        await conn.execute("TRUNCATE timers")
        await arm(conn, idle, 86_400.0, 3_600.0, prefix="idle-")
        await arm(conn, due, LEAD_S, spread_s, prefix="due-")
        await conn.execute("VACUUM ANALYZE timers")  # what autovacuum does to a table in steady use
        plan_ms = await claim_query_ms(conn)
        own_backend = await conn.fetchval("SELECT pg_backend_pid()")
        pg_before = postgres_cpu(postmaster, besides=own_backend)
        process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", dsn, "--batch-size", str(batch_size), "--loops", str(loops), cwd=ROOT
        )
        scheduler = psutil.Process(process.pid)
        rss_peak = 0
        started = time.monotonic()
        try:
            while True:
                rss_peak = max(rss_peak, scheduler.memory_info().rss)
                # Counted through the scheduler's own index, so watching costs little.
                waiting = await conn.fetchval(
                    """
                    SELECT count(*) FROM timers
                    WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at < now() + interval '1 hour'
                    """
                )
                fired = due - waiting
                if fired >= due:
                    break
                if process.returncode is not None:
                    raise SystemExit(f"the scheduler exited with {process.returncode}")
                if time.monotonic() - started > LEAD_S + spread_s + 300:
                    raise SystemExit(f"{name}: only {fired} of {due} timers fired")
                await asyncio.sleep(0.25)
            cpu = cpu_of(scheduler)
            rss_peak = max(rss_peak, scheduler.memory_info().rss)
            pg_after = postgres_cpu(postmaster, besides=own_backend)  # before the scheduler's backends exit with it
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
        lateness = await conn.fetchrow(
            """
            SELECT count(*) AS fired,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness) AS p50,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY lateness) AS p90,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY lateness) AS p99,
                   max(lateness) AS worst
            FROM timers WHERE fired_at IS NOT NULL
            """
        )
        assert lateness is not None
        slow_seconds = await conn.fetchval(
            """
            SELECT count(*) FROM (
                SELECT date_trunc('second', due_at) FROM timers WHERE fired_at IS NOT NULL
                GROUP BY 1 HAVING max(lateness) > interval '100 milliseconds'
            ) AS slow
            """
        )
        early = await conn.fetchval("SELECT count(*) FROM timers WHERE fired_at < due_at")
        if early:
            raise SystemExit(f"{name}: {early} timers fired early")
    finally:
        await conn.close()

    def ms(value: timedelta) -> float:
        return round(value.total_seconds() * 1000, 1)

    return Run(
        name=name,
        armed=due + idle,
        fired=lateness["fired"],
        window_s=spread_s,
        lateness_p50_ms=ms(lateness["p50"]),
        lateness_p90_ms=ms(lateness["p90"]),
        lateness_p99_ms=ms(lateness["p99"]),
        lateness_max_ms=ms(lateness["worst"]),
        scheduler_cpu_s=round(cpu, 2),
        scheduler_cpu_ms_per_fire=round(cpu * 1000 / max(due, 1), 3),
        scheduler_rss_peak_mb=round(rss_peak / 2**20, 1),
        postgres_cpu_s=round(sum(v - pg_before.get(pid, 0.0) for pid, v in pg_after.items()), 2),
        claim_query_ms=round(plan_ms, 3),
        seconds_over_100ms=slow_seconds,
    )


async def benchmark(dsn: str, postmaster: psutil.Process, args: argparse.Namespace) -> list[Run]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "routing", "services.routing")
    finally:
        await conn.close()
    small, large = args.small, args.timers
    run = functools.partial(one_run, dsn, postmaster, batch_size=args.batch, loops=args.loops)
    return [
        await run(f"{small:,} armed", due=small, idle=0, spread_s=args.small_spread),
        await run(f"{large:,} armed, {small:,} due", due=small, idle=large - small, spread_s=args.small_spread),
        await run(f"{large:,} armed, all due", due=large, idle=0, spread_s=args.spread),
    ]


def print_table(runs: list[Run]) -> None:
    header = (
        f"{'run':<26} {'armed':>8} {'fired':>8} {'window':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'sched CPU s':>11} {'CPU ms/fire':>11} {'RSS MB':>7} {'PG CPU s':>8} {'claim ms':>8} "
        f"{'s >100ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.name:<26} {r.armed:>8,} {r.fired:>8,} {r.window_s:>6.0f}s {r.lateness_p50_ms:>8.1f} "
            f"{r.lateness_p90_ms:>8.1f} {r.lateness_p99_ms:>8.1f} {r.lateness_max_ms:>8.1f} {r.scheduler_cpu_s:>11.2f} "
            f"{r.scheduler_cpu_ms_per_fire:>11.3f} {r.scheduler_rss_peak_mb:>7.1f} {r.postgres_cpu_s:>8.2f} "
            f"{r.claim_query_ms:>8.3f} {r.seconds_over_100ms:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=90.0, help="seconds over which all timers come due")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--small-spread", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=200, help="the scheduler's batch size (its default: 200)")
    parser.add_argument("--loops", type=int, help="the scheduler's claiming loops (default: as many as routing runs)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(child(args.child, args.batch_size, args.loops))
        return
    if args.loops is None:
        # Read here, not at import: the scheduler's child process must not load the routing service.
        from services.routing.consumers import TIMER_LOOPS

        args.loops = TIMER_LOOPS

    with (
        temp_dir("supportdesk-bench-timers-") as data_dir,
        EmbeddedPostgres(data_dir / "pg", run_as=os.environ.get("SUPPORTDESK_PG_USER")) as server,
    ):
        assert server.pid is not None
        runs = asyncio.run(benchmark(server.url, psutil.Process(server.pid), args))
    print_table(runs)
    result = {
        "machine": machine(),
        "args": {k: v for k, v in vars(args).items() if k not in ("child", "batch_size")},
        "runs": [asdict(r) for r in runs],
    }
    print(f"\nwritten {write_result('sla_timers', result)}")


if __name__ == "__main__":
    main()
