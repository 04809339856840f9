"""Routing dispatch: what one decision costs as the desk grows, and how fast a new ticket reaches an agent.

1. Decision cost. Seeds a routing schema (COPY) with agents and waiting tickets at two sizes (default 100 agents
   / 1,000 tickets and 10,000 / 100,000), then times the two hot queries on random samples, each in a
   transaction rolled back afterwards: *best agent for a ticket* (pick, lock and reserve the agent) and *best
   waiting ticket for an agent* (pick and lock it). Prints EXPLAIN ANALYZE of both at the large size.
2. Event to offer. A routing consumer and timer scheduler on embedded NATS, agents available: ticket.created
   events published at a steady rate; the time from the consumer receiving each event until its transaction
   (inbox, SLA clocks, queue entry, offer, outbox) has committed and the message is acked.

Embedded Postgres and NATS in a temporary folder; nothing else is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
from google.protobuf.timestamp_pb2 import Timestamp
from nats.aio.msg import Msg
from support.common.v1 import common_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from benchmarks.common import machine, percentile, temp_dir, write_result
from services.kit.bus.consumer import EventConsumer
from services.kit.bus.envelope import Envelope
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import ALL_STREAMS, declare_consumer, declare_streams
from services.kit.db import create_pool
from services.kit.migrations import migrate
from services.kit.proto_enums import to_proto
from services.kit.settings import BusSettings
from services.routing import agent_store, config_store, consumers, matching, rules, store
from services.routing.domain import AgentProfile, EntryState, Presence, QueueEntry, Skill, TicketFacts
from services.routing.matching import Need, RoutingKey
from services.routing.service import RoutingService
from services.runtime.embedded_nats import EmbeddedNats
from services.runtime.embedded_postgres import EmbeddedPostgres

SKILLS = ("payments", "account_security", "cards", "complaints")
CATEGORIES = (
    "payment_failed",
    "transaction_query",
    "account_locked",
    "account_frozen",
    "suspicious_activity",
    "password_reset",
    "bank_card",
    "complaint",
    "beta_access",
    "other",
)
NOW = datetime.now(UTC)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "mean": 1000 * statistics.fmean(seconds),
        "p50": 1000 * percentile(seconds, 50),
        "p95": 1000 * percentile(seconds, 95),
        "p99": 1000 * percentile(seconds, 99),
    }


# --- seeding ---------------------------------------------------------------------------------------------


async def seed(conn: asyncpg.Connection, rng: random.Random, agents: int, tickets: int) -> None:
    """Agents (80 % of them available, with varied load) and waiting tickets under the default rules."""
    # Bulk load without the per-row triggers (the load check needs real offers); the keys are built after.
    await conn.execute("SET session_replication_role = replica")
    agent_rows, skill_rows = [], []
    for i in range(agents):
        agent_id = f"agent-{i:06}"
        capacity = rng.randint(1, 5)
        presence = rng.choices(("available", "away", "offline"), (8, 1, 1))[0]
        last = None if rng.random() < 0.1 else NOW - timedelta(seconds=rng.uniform(0, 3600))
        languages = [lang for lang, share in (("zh", 0.75), ("en", 0.6)) if rng.random() < share] or ["zh"]
        agent_rows.append((agent_id, agent_id, languages, capacity, presence, rng.randint(0, capacity), last, NOW))
        for skill in SKILLS:
            if rng.random() < 0.5:
                skill_rows.append((agent_id, skill, rng.randint(1, 5)))
    await conn.copy_records_to_table(
        "agents",
        records=agent_rows,
        columns=["id", "display_name", "languages", "capacity", "presence", "active", "last_assigned_at", "created_at"],
    )
    await conn.copy_records_to_table("agent_skills", records=skill_rows, columns=["agent_id", "skill", "proficiency"])
    await conn.execute(
        """
        INSERT INTO agent_keys (agent_id, skill, language, proficiency, active, last_assigned_at, open)
        SELECT a.id, s.skill, l.language, s.proficiency, a.active, a.last_assigned_at,
               a.presence = 'available' AND a.active < a.capacity
        FROM agents a
        CROSS JOIN LATERAL (
            SELECT skill, proficiency FROM agent_skills WHERE agent_id = a.id UNION ALL SELECT '', 0
        ) s
        CROSS JOIN LATERAL (SELECT DISTINCT unnest(a.languages || '{""}'::text[]) AS language) l
        """
    )
    all_rules = await config_store.all_rules(conn)
    entry_rows = []
    for _ in range(tickets):
        created = NOW - timedelta(seconds=rng.uniform(0, 600))
        facts = TicketFacts(
            ticket_id=uuid.uuid4(),
            category=rng.choice(CATEGORIES),
            language=rng.choices(("zh", "en"), (7, 3))[0],
            priority=rng.choices(("low", "normal", "high", "urgent"), (1, 5, 3, 2))[0],
            customer_tier="standard",
            status="new",
            version=1,
            created_at=created,
        )
        queue, steps, rule = rules.route(all_rules, facts)
        entry = QueueEntry(
            ticket_id=facts.ticket_id,
            queue=queue,
            priority=facts.priority,
            state=EntryState.WAITING,
            ticket_version=1,
            ticket_created_at=created,
            enqueued_at=created,
            steps=steps,
            step=rules.step_in_force(steps, created, NOW),
            routed_since=created,
            waiting_since=created,
            category=facts.category,
            language=facts.language,
            rule_id=rule.id if rule else None,
            sla_due_at=None if rng.random() < 0.2 else created + timedelta(minutes=rng.choice((2, 5))),
        )
        need = matching.need_of(entry)
        entry_rows.append(
            (
                entry.ticket_id,
                entry.queue,
                entry.priority,
                "waiting",
                1,
                created,
                created,
                store.steps_to_json(steps),
                entry.step,
                created,
                created,
                entry.category,
                entry.language,
                entry.rule_id,
                entry.sla_due_at,
                need.key.skill,
                need.key.level,
                need.key.language,
                json.dumps(dict(need.extra)),
            )
        )
    await conn.copy_records_to_table(
        "queue_entries",
        records=entry_rows,
        columns=[
            "ticket_id",
            "queue",
            "priority",
            "state",
            "ticket_version",
            "ticket_created_at",
            "enqueued_at",
            "steps",
            "step",
            "routed_since",
            "waiting_since",
            "category",
            "language",
            "rule_id",
            "sla_due_at",
            "req_skill",
            "req_level",
            "req_language",
            "req_extra",
        ],
    )
    await conn.execute("SET session_replication_role = origin")
    for table in ("agents", "agent_skills", "agent_keys", "queue_entries"):
        await conn.execute(f"VACUUM ANALYZE {table}")


# --- the decision cost -----------------------------------------------------------------------------------


def _need(row: asyncpg.Record) -> Need:
    return Need(RoutingKey(row["req_skill"], row["req_level"], row["req_language"]), json.loads(row["req_extra"]))


async def time_agent_picks(conn: asyncpg.Connection, rng: random.Random, samples: int) -> list[float]:
    rows = await conn.fetch(
        """
        SELECT req_skill, req_level, req_language, req_extra, last_agent_id FROM queue_entries
        WHERE state = 'waiting' ORDER BY random() LIMIT $1
        """,
        samples,
    )
    timings = []
    for row in rows:
        tx = conn.transaction()
        await tx.start()
        started = time.perf_counter()
        exclude = [row["last_agent_id"]] if row["last_agent_id"] else []
        await store.reserve_agent_for(conn, _need(row), exclude, datetime.now(UTC))
        timings.append(time.perf_counter() - started)
        await tx.rollback()
    return timings


async def time_ticket_picks(conn: asyncpg.Connection, rng: random.Random, samples: int) -> list[float]:
    ids = [
        r["id"]
        for r in await conn.fetch(
            "SELECT id FROM agents WHERE presence = 'available' AND active < capacity ORDER BY random() LIMIT $1",
            samples,
        )
    ]
    agents = [await agent_store.get_agent(conn, agent_id) for agent_id in ids]
    timings = []
    for agent in agents:
        assert agent is not None
        tx = conn.transaction()
        await tx.start()
        started = time.perf_counter()
        await store.pick_ticket_for(conn, agent, matching.probe_keys(agent))
        timings.append(time.perf_counter() - started)
        await tx.rollback()
    return timings


async def explain(conn: asyncpg.Connection) -> dict[str, str]:
    """EXPLAIN ANALYZE of both hot queries for a typical call (a payments ticket; a multi-skilled agent)."""
    row = await conn.fetchrow(
        """
        SELECT req_skill, req_level, req_language, req_extra FROM queue_entries
        WHERE state = 'waiting' AND req_skill = 'payments' LIMIT 1
        """
    )
    agent_id = await conn.fetchval(
        """
        SELECT a.id FROM agents a WHERE presence = 'available' AND active < capacity
        ORDER BY (SELECT count(*) FROM agent_skills s WHERE s.agent_id = a.id) DESC, a.id LIMIT 1
        """
    )
    agent = await agent_store.get_agent(conn, agent_id)
    assert row is not None
    assert agent is not None
    need = _need(row)
    plans = {}
    tx = conn.transaction()
    await tx.start()
    lines = await conn.fetch(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + store.RESERVE_AGENT_SQL,
        need.key.skill,
        need.key.language,
        need.key.level,
        [],
        json.dumps(dict(need.extra)),
        None,
    )
    plans["best_agent_for_ticket"] = "\n".join(r[0] for r in lines)
    await tx.rollback()
    tx = conn.transaction()
    await tx.start()
    probes = matching.probe_keys(agent)
    lines = await conn.fetch(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + store.PICK_TICKET_SQL,
        *store.probe_arrays(probes),
        agent.id,
        json.dumps({s.name: s.proficiency for s in agent.skills}),
    )
    plans["best_ticket_for_agent"] = f"-- agent with {len(probes)} probe keys\n" + "\n".join(r[0] for r in lines)
    await tx.rollback()
    return plans


async def decision_cost(
    admin_url: str, size: tuple[int, int], samples: int, seed_value: int, with_plans: bool
) -> dict[str, Any]:
    agents, tickets = size
    name = f"bench_{agents}_{tickets}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, "routing", "services.routing")
        await conn.execute("SET search_path TO routing")
        rng = random.Random(seed_value)
        began = time.perf_counter()
        await seed(conn, rng, agents, tickets)
        seeded_s = time.perf_counter() - began
        await time_agent_picks(conn, rng, min(200, samples))  # warm the caches and the prepared statements
        await time_ticket_picks(conn, rng, min(200, samples))
        agent_picks = await time_agent_picks(conn, rng, samples)
        ticket_picks = await time_ticket_picks(conn, rng, samples)
        result: dict[str, Any] = {
            "agents": agents,
            "waiting_tickets": tickets,
            "seed_s": seeded_s,
            "best_agent_for_ticket_ms": summary_ms(agent_picks),
            "best_ticket_for_agent_ms": summary_ms(ticket_picks),
        }
        if with_plans:
            result["plans"] = await explain(conn)
        return result
    finally:
        await conn.close()


# --- event to offer --------------------------------------------------------------------------------------


class TimedConsumer(EventConsumer):
    """Records how long each message takes from receipt to commit and ack."""

    timings: list[float]
    expected: int
    all_done: asyncio.Event

    async def handle(self, msg: Msg) -> None:
        started = time.perf_counter()
        await super().handle(msg)
        self.timings.append(time.perf_counter() - started)
        if len(self.timings) >= self.expected:
            self.all_done.set()


def created_event(rng: random.Random) -> Envelope:
    ticket_id = uuid.uuid4()
    created = Timestamp()
    created.FromDatetime(datetime.now(UTC))
    ticket = ticket_pb2.Ticket(
        id=str(ticket_id),
        customer_id="c-bench",
        category=to_proto(ticket_pb2.Category, rng.choice(CATEGORIES)),
        priority=to_proto(common_pb2.Priority, rng.choice(("normal", "high", "urgent"))),
        status=ticket_pb2.TICKET_STATUS_NEW,
        language=rng.choice(("zh", "en")),
        customer_tier="standard",
        version=1,
        create_time=created,
    )
    return Envelope.new(
        type="support.ticketing.v1.ticket.created",
        source="supportdesk/ticketing",
        subject=str(ticket_id),
        data=ticketing_events.TicketCreated(ticket=ticket).SerializeToString(),
    )


async def event_to_offer(admin_url: str, nats_url: str, tickets: int, rate: float, seed_value: int) -> dict[str, Any]:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "bench_e2e"')
        await admin.execute('CREATE DATABASE "bench_e2e"')
    finally:
        await admin.close()
    url = admin_url.rsplit("/", 1)[0] + "/bench_e2e"
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, "routing", "services.routing")
    finally:
        await conn.close()
    pool = await create_pool(url, schema="routing", application="bench", min_size=4, max_size=16)
    nc = await nats.connect(nats_url)
    tasks: list[asyncio.Task[None]] = []
    try:
        js = nc.jetstream()
        bus = BusSettings(stream_duplicate_window_s=120)
        await declare_streams(js, bus, ALL_STREAMS)
        await declare_consumer(js, consumers.TICKET_EVENTS, bus)
        service = RoutingService(pool)
        rng = random.Random(seed_value)
        # Enough room for every ticket: each is offered at once to an agent who can take it.
        for i in range(max(50, tickets // 4)):
            profile = AgentProfile(
                display_name=f"agent {i}",
                skills=tuple(Skill(s, rng.randint(4, 5)) for s in SKILLS),
                languages=("zh", "en"),
                capacity=5,
            )
            await service.create_agent(f"agent-{i:04}", profile)
            await service.set_presence(f"agent-{i:04}", Presence.AVAILABLE)
        consumer = TimedConsumer(js, pool, consumers.TICKET_EVENTS, consumers.on_ticket_event, max_deliver=10)
        consumer.timings, consumer.expected, consumer.all_done = [], tickets, asyncio.Event()
        tasks = [
            asyncio.create_task(consumer.run()),
            asyncio.create_task(consumers.scheduler(pool).run()),
            asyncio.create_task(OutboxRelay(pool, js, "routing").run()),
        ]
        began = time.perf_counter()
        for i in range(tickets):
            event = created_event(rng)
            await js.publish(event.type, event.data, headers=event.headers())
            lag = began + (i + 1) / rate - time.perf_counter()
            if lag > 0:
                await asyncio.sleep(lag)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.all_done.wait(), 120)
        offered = await pool.fetchval("SELECT count(DISTINCT ticket_id) FROM offers")
        return {
            "tickets": tickets,
            "rate_per_s": rate,
            "offered": offered,
            "consumed_to_committed_ms": summary_ms(consumer.timings[:tickets]),
        }
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        await pool.close()


# --- main ------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, pg_url: str, nats_url: str) -> dict[str, Any]:
    small = await decision_cost(pg_url, (args.small_agents, args.small_tickets), args.samples, 1, False)
    large = await decision_cost(pg_url, (args.large_agents, args.large_tickets), args.samples, 2, True)
    e2e = await event_to_offer(pg_url, nats_url, args.events, args.rate, 3)
    return {"small": small, "large": large, "event_to_offer": e2e}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-agents", type=int, default=100)
    parser.add_argument("--small-tickets", type=int, default=1_000)
    parser.add_argument("--large-agents", type=int, default=10_000)
    parser.add_argument("--large-tickets", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=2_000, help="timed decisions of each kind per size")
    parser.add_argument("--events", type=int, default=2_000, help="ticket.created events for the end-to-end part")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second published")
    args = parser.parse_args()
    with (
        temp_dir("supportdesk-bench-routing-") as folder,
        EmbeddedPostgres(folder / "pg", run_as=os.environ.get("SUPPORTDESK_PG_USER")) as pg,
        EmbeddedNats(folder / "nats") as bus,
    ):
        result = asyncio.run(run(args, pg.url, bus.url))
    result["machine"] = machine()
    report(result)
    print(f"written {write_result('routing_dispatch', result)}")


def report(result: dict[str, Any]) -> None:
    small, large, e2e = result["small"], result["large"], result["event_to_offer"]
    print(f"\n{'decision (ms)':<34}{'mean':>8}{'p50':>8}{'p95':>8}{'p99':>8}")
    for size in (small, large):
        label = f"{size['agents']:,} agents / {size['waiting_tickets']:,} waiting"
        print(label)
        for key, name in (
            ("best_agent_for_ticket_ms", "  best agent for a ticket"),
            ("best_ticket_for_agent_ms", "  best ticket for an agent"),
        ):
            t = size[key]
            print(f"{name:<34}{t['mean']:>8.3f}{t['p50']:>8.3f}{t['p95']:>8.3f}{t['p99']:>8.3f}")
    for key in ("best_agent_for_ticket_ms", "best_ticket_for_agent_ms"):
        ratio = large[key]["mean"] / small[key]["mean"]
        print(f"large / small mean, {key.removesuffix('_ms').replace('_', ' ')}: {ratio:.2f}x")
    t = e2e["consumed_to_committed_ms"]
    print(
        f"\nevent consumed -> offer committed, {e2e['tickets']} tickets at {e2e['rate_per_s']:.0f}/s "
        f"({e2e['offered']} offered): mean {t['mean']:.2f}  p50 {t['p50']:.2f}  p95 {t['p95']:.2f}  "
        f"p99 {t['p99']:.2f} ms"
    )
    for name, plan in large.get("plans", {}).items():
        print(f"\nEXPLAIN ANALYZE {name} ({large['agents']:,} agents / {large['waiting_tickets']:,} waiting):\n{plan}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
