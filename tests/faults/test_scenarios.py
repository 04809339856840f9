"""Faults under load: every scenario ends with nothing lost, nothing extra, nothing twice, and convergence.

The bounded run (the default suite) uses short durations and one round with a fixed seed; the long run
(README, "Reliability") raises them through the environment and adds the scenarios marked long-only.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.envelope import Envelope
from services.runtime.embedded_postgres import EmbeddedPostgres
from tests.faults.harness.invariants import dead_letter_ids
from tests.faults.harness.results import Results
from tests.faults.harness.scenario import Context, FaultSettings, assert_invariants, run_scenario

pytestmark = pytest.mark.faults

# Short enough that a stopped consumer outlives it within a bounded run.
ACK_WAIT_S = 2.0


@pytest.fixture
def scenario(
    fault_postgres: EmbeddedPostgres,
    fault_settings: FaultSettings,
    fault_results: Results,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    logs = tmp_path_factory.mktemp("fault-logs")

    async def run(name: str, fault: Any, **kwargs: Any) -> dict[str, Any]:
        return await run_scenario(
            name,
            fault,
            postgres=fault_postgres,
            settings=fault_settings,
            results=fault_results,
            logs_dir=Path(logs),
            **kwargs,
        )

    return run


async def test_kill_9_each_service_at_random_moments(scenario: Any) -> None:
    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        victims = list(ctx.system.replicas) * ctx.settings.rounds
        ctx.rng.shuffle(victims)
        for i, name in enumerate(victims):
            # Spread over the run, each at a random moment of its slot: mid-transaction, between publish and
            # outbox mark, between commit and ack, wherever it falls.
            await ctx.at((i + ctx.rng.uniform(0.1, 0.6)) / (len(victims) + 0.5), started)
            replica = ctx.system.replicas[name]
            replica.kill()
            await asyncio.sleep(ctx.rng.uniform(0.1, 0.8))
            ctx.system.release(replica)
            await ctx.system.wait_ready()  # each fault hits a working system

    row = await scenario("kill9_services", fault)
    assert all(p["kills"] >= 1 for p in row["processes"].values()), row["processes"]
    assert_invariants(row)


async def test_kill_9_nats_then_restart_on_the_same_store(scenario: Any) -> None:
    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        for i in range(ctx.settings.rounds):
            await ctx.at((i + 0.3) / ctx.settings.rounds, started)
            ctx.system.kill_nats()
            await asyncio.sleep(ctx.rng.uniform(1.0, 2.0))
            await ctx.system.restart_nats()

    assert_invariants(await scenario("kill9_nats", fault))


async def test_postgres_immediate_stop_under_load_then_restart(scenario: Any) -> None:
    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        for i in range(ctx.settings.rounds):
            await ctx.at((i + 0.3) / ctx.settings.rounds, started)
            ctx.system.stop_postgres_immediately()
            await asyncio.sleep(ctx.rng.uniform(1.0, 2.0))
            await ctx.system.restart_postgres()

    assert_invariants(await scenario("postgres_immediate_stop", fault))


async def test_sigstop_routing_longer_than_the_ack_wait(scenario: Any) -> None:
    """A frozen consumer and timer scheduler: its messages are redelivered to the other replica while the
    original handling is still open, and it resumes afterwards as if nothing happened."""

    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        # The replica the gateway does not call first (consumer and scheduler only), then the one it calls.
        frozen = [ctx.system.replicas["routing-1"]]
        if ctx.settings.long:
            frozen.append(ctx.system.replicas["routing-0"])
        for i, replica in enumerate(frozen * ctx.settings.rounds):
            await ctx.at((i + 0.15) / (len(frozen) * ctx.settings.rounds), started)
            ctx.system.sigstop(replica)
            await asyncio.sleep(2.5 * ACK_WAIT_S)
            ctx.system.sigcont(replica)

    row = await scenario(
        "sigstop_routing",
        fault,
        routing_replicas=2,
        env={"SUPPORTDESK_CONSUMER_ACK_WAIT_S": str(ACK_WAIT_S)},
    )
    assert_invariants(row)


async def test_poison_events_are_dead_lettered_and_the_rest_flows(scenario: Any) -> None:
    """An undecodable payload, a message that is not an event, and a well-formed event that can never apply
    (a status change of a ticket nobody created: retried with back-off until max_deliver, then dead-lettered)."""
    poison: dict[str, str] = {}

    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        await ctx.at(0.3, started)
        nc = await nats.connect(ctx.system.nats.url)
        try:
            js = nc.jetstream()
            garbage = Envelope.new(
                type="support.ticketing.v1.ticket.created",
                source="fault-suite",
                subject=str(uuid.uuid4()),
                data=b"\x0a\xff\xff\xff\xff\x0f",
            )
            await js.publish(garbage.type, garbage.data, headers=garbage.headers())
            poison["undecodable"] = garbage.id
            await js.publish("support.ticketing.v1.ticket.created", b"not an event at all")
            orphan = str(uuid.uuid4())
            change = Envelope.new(
                type="support.ticketing.v1.ticket.status_changed",
                source="fault-suite",
                subject=orphan,
                data=ticketing_events.TicketStatusChanged(
                    ticket_id=orphan,
                    from_status=ticket_pb2.TICKET_STATUS_NEW,
                    to_status=ticket_pb2.TICKET_STATUS_OPEN,
                    ticket_version=2,
                ).SerializeToString(),
            )
            await js.publish(change.type, change.data, headers=change.headers())
            poison["never_applies"] = change.id
        finally:
            await nc.close()

    async def after(ctx: Context, row: dict[str, Any]) -> None:
        async with ctx.system.db() as conn:
            letters = await dead_letter_ids(conn)
        row["dead_lettered"] = sorted(f"{c}:{e}:{d}" for c, e, d in letters)
        row["poison_published"] = 3

    row = await scenario(
        "poison_event",
        fault,
        env={"SUPPORTDESK_CONSUMER_MAX_DELIVER": "4"},
        after=after,
    )
    letters = row["dead_lettered"]
    # routing reads every ticket event, notify only ticket.created: 3 + 2 letters.
    assert f"routing-ticket-events:{poison['undecodable']}:1" in letters
    assert f"notify-ticket-events:{poison['undecodable']}:1" in letters
    assert f"routing-ticket-events:{poison['never_applies']}:4" in letters
    assert sum(letter.endswith(":None:1") for letter in letters) == 2  # the message with no event headers
    assert_invariants(row, dead_letters=5)


async def test_two_routing_replicas_over_the_same_queue_during_faults(scenario: Any) -> None:
    """Both consume the same durable consumer and fire the same timers; each is killed at random moments."""

    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        kills = 3 * ctx.settings.rounds
        for i in range(kills):
            await ctx.at((i + ctx.rng.uniform(0.1, 0.7)) / (kills + 0.5), started)
            replica = ctx.system.replicas[ctx.rng.choice(["routing-0", "routing-1"])]
            replica.kill()
            await asyncio.sleep(ctx.rng.uniform(0.2, 1.0))
            ctx.system.release(replica)
            await ctx.system.wait_ready()

    row = await scenario("routing_replicas", fault, routing_replicas=2)
    assert row["processes"]["routing-0"]["kills"] + row["processes"]["routing-1"]["kills"] >= 3
    assert_invariants(row)


async def test_nats_unreachable_longer_than_the_duplicate_window(scenario: Any) -> None:
    """NATS frozen (connections open, nothing answered) past a 2 s duplicate window: publishes the relay gave
    up on are stored after all, republished once the window no longer catches them, and consumers' inboxes
    drop the duplicates."""

    async def fault(ctx: Context) -> None:
        started = time.monotonic()
        for i in range(ctx.settings.rounds):
            await ctx.at((i + 0.3) / ctx.settings.rounds, started)
            ctx.system.pause_nats()
            await asyncio.sleep(4.0)
            ctx.system.resume_nats()

    row = await scenario(
        "nats_unreachable",
        fault,
        env={"SUPPORTDESK_STREAM_DUPLICATE_WINDOW_S": "2"},
    )
    assert_invariants(row)
