"""One scenario: start the system, load it, inject a fault, heal, converge, count the invariants."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.runtime.embedded_postgres import EmbeddedPostgres
from tests.conftest import make_scratch_dir, temporary_database
from tests.faults.harness.invariants import CONVERGENCE_S, EXAMPLES, TRACE, VersionWatch, converge, invariants
from tests.faults.harness.load import Load
from tests.faults.harness.results import Results
from tests.faults.harness.system import System


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The bounded run's defaults; the long run sets them through the environment (see README)."""

    duration_s: float
    rounds: int
    seed: int
    long: bool
    # JetStream's ack wait in the system under test: how long a killed consumer's messages stay unacked.
    ack_wait_s: float


@dataclass
class Context:
    system: System
    load: Load
    rng: random.Random
    settings: FaultSettings

    async def at(self, fraction: float, started: float) -> None:
        """Wait until ``fraction`` of the load's duration has passed since ``started``."""
        delay = started + fraction * self.settings.duration_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


Fault = Callable[[Context], Awaitable[None]]

# After healing, the load goes on this long before it stops: the healed system must work, not just answer.
TAIL_S = 2.0


async def run_scenario(
    name: str,
    fault: Fault,
    *,
    postgres: EmbeddedPostgres,
    settings: FaultSettings,
    results: Results,
    logs_dir: Path,
    routing_replicas: int = 1,
    env: Mapping[str, str] | None = None,
    after: Callable[[Context, dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    root = make_scratch_dir(f"supportdesk-faults-{name}-")
    keep = True
    with temporary_database(postgres.url) as database_url:
        system = await System.start(
            root,
            postgres,
            database_url,
            routing_replicas=routing_replicas,
            settings={"SUPPORTDESK_CONSUMER_ACK_WAIT_S": str(settings.ack_wait_s), **(env or {})},
        )
        load = Load(system, seed=settings.seed)
        watch = VersionWatch(system)
        watcher = asyncio.create_task(watch.run(), name="version-watch")
        try:
            await load.set_up()
            context = Context(system, load, random.Random(settings.seed), settings)
            started = time.monotonic()
            healed = started

            async def faults_then_heal() -> None:
                nonlocal healed
                await fault(context)
                await heal(system)
                healed = time.monotonic()
                await asyncio.sleep(TAIL_S)  # the healed system, still under load

            await load.run(settings.duration_s, faults_then_heal())
            load_s = time.monotonic() - started
            await load.resolve_unknowns()
            _, left = await converge(system, load, timeout=healed + CONVERGENCE_S - time.monotonic())
            converged_s = time.monotonic() - healed  # from healing, retries of the unknowns included
            row: dict[str, Any] = {
                **await invariants(system, load, watch),
                "requests": len(load.requests),
                "load_s": round(load_s, 1),
                "converged": left.empty,
                "converged_s": round(converged_s, 1),
                "backlog_left": vars(left),
                "requests_by_op": load.by_op(),
                "processes": system.counts(),
                "version_samples": watch.samples,
                "convergence_trace": TRACE[::5] + TRACE[-1:],
            }
            if after is not None:
                await after(context, row)
            results.add(name, row)
            load.write_log(logs_dir / f"{name}-requests.jsonl")
            keep = os.environ.get("SUPPORTDESK_FAULTS_KEEP") == "1"
            return row
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await load.close()
            await system.close()
            if keep:
                print(f"scenario {name}: logs kept in {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)


async def heal(system: System) -> None:
    """Undo every fault still in force and wait until every process answers."""
    if system.nats.pid is None:
        await system.restart_nats()
    else:
        with contextlib.suppress(ProcessLookupError):
            system.resume_nats()
    if system.postgres.pid is None:
        await system.restart_postgres()
    for replica in system.replicas.values():
        if replica.stopped:
            system.sigcont(replica)
        if replica.held:
            system.release(replica)
    await system.wait_ready()


def assert_invariants(row: dict[str, Any], *, dead_letters: int = 0) -> None:
    """What every scenario must show: nothing lost, nothing extra, nothing twice, everything converged."""
    zero = (
        "lost",
        "unexpected",
        "unknown_left",
        "messages_lost",
        "messages_unexpected",
        "messages_unknown_left",
        "double_assignment",
        "over_capacity",
        "assignee_mismatch",
        "timers_early",
        "timers_missed",
        "timers_fired_twice",
        "cancelled_fired",
        "version_regressions",
        "projection_behind",
    )
    broken = {k: row[k] for k in zero if row[k] != 0}
    if broken:
        print("examples:", json.dumps(EXAMPLES, default=str, indent=1))
    assert row["converged"], f"no convergence within 60 s of healing: {row['backlog_left']}"
    assert not broken, f"invariants broken: {broken}"
    assert row["dead_letters"] == dead_letters, f"dead letters: {row['dead_letters']}, expected {dead_letters}"
    # The run must have exercised the system, or the zeros above prove nothing.
    assert row["tickets_ok"] > 0, row
    assert row["assignments"] > 0, row
    assert row["timers_fired"] > 0, row
