"""Two routing replicas on one database, under a stream of tickets, answers and resolutions: no ticket is ever
held twice, no agent ever holds more than its capacity, and every ticket reaches an agent."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.js import JetStreamContext

from services.kit.bus.streams import declare_consumer
from services.kit.db import create_pool
from services.kit.errors import DomainError
from services.routing import consumers
from services.routing.domain import Presence, Queue
from services.routing.service import RoutingService
from tests.integration.bus_fixtures import BUS, migrated_pool
from tests.integration.test_routing_flows import Desk, replica, stop
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TICKETS = 240
AGENTS = 16
CATEGORIES = ("payment_failed", "account_frozen", "bank_card", "complaint", "other", "transaction_query")
SKILLS = ("payments", "account_security", "cards", "complaints")

# Sampled while everything runs, in one snapshot each: both must stay zero.
OVER_CAPACITY = """
SELECT count(*) FROM agents a
WHERE (SELECT count(*) FROM offers o WHERE o.agent_id = a.id AND o.state = 'pending')
    + (SELECT count(*) FROM assignments s WHERE s.agent_id = a.id AND s.released_at IS NULL) > a.capacity
"""
HELD_TWICE = """
SELECT count(*) FROM (
    SELECT ticket_id FROM (
        SELECT ticket_id FROM offers WHERE state = 'pending'
        UNION ALL SELECT ticket_id FROM assignments WHERE released_at IS NULL
    ) h GROUP BY ticket_id HAVING count(*) > 1
) twice
"""


@pytest.fixture
async def replicas(fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[tuple[Desk, Desk]]:
    first = await migrated_pool(fresh_database_url, "routing", "services.routing")
    second = await create_pool(fresh_database_url, schema="routing", application="test-2", min_size=1, max_size=8)
    await declare_consumer(js, consumers.TICKET_EVENTS, BUS)
    desks = (Desk(first, js, RoutingService(first)), Desk(second, js, RoutingService(second)))
    for desk in desks:
        desk.tasks = replica(desk.pool, js, relay=False)
    yield desks
    for desk in desks:
        await stop(desk.tasks)
    await first.close()
    await second.close()


async def test_two_replicas_never_assign_a_ticket_twice_nor_overload_an_agent(replicas: tuple[Desk, Desk]) -> None:
    one, two = replicas
    rng = random.Random(7)
    await one.service.update_queue(Queue("payments", direct_assignment=True))
    await two.service.update_queue(Queue("cards", direct_assignment=True))
    for i in range(AGENTS):
        desk = replicas[i % 2]
        skills = {s: rng.randint(4, 5) for s in SKILLS}
        await desk.agent(f"agent-{i:02}", skills, capacity=rng.randint(1, 3), available=i % 4 != 0)

    versions: dict[uuid.UUID, int] = {}
    violations: list[str] = []
    done = asyncio.Event()

    async def open_tickets() -> None:
        for i in range(TICKETS):
            desk = replicas[i % 2]
            ticket = await desk.ticket(
                category=rng.choice(CATEGORIES),
                priority=rng.choice(("normal", "high", "urgent")),
                language=rng.choice(("zh", "en")),
            )
            versions[ticket] = 1
            if i % 20 == 0:
                await asyncio.sleep(0)

    async def answer_offers() -> None:
        turn = 0
        while not done.is_set():
            rows = await one.pool.fetch("SELECT id, agent_id FROM offers WHERE state = 'pending' LIMIT 50")
            for row in rows:
                turn += 1
                service = replicas[turn % 2].service
                try:
                    if turn % 9 == 0:
                        await service.decline_offer(str(row["id"]), row["agent_id"], "busy")
                    else:
                        await service.accept_offer(str(row["id"]), row["agent_id"])
                except DomainError as exc:
                    if exc.code != "offer_not_pending":
                        violations.append(f"answering an offer failed: {exc.code}")
            await asyncio.sleep(0.01)

    async def resolve_assigned() -> None:
        resolved: set[uuid.UUID] = set()
        while not done.is_set():
            rows = await two.pool.fetch("SELECT ticket_id FROM queue_entries WHERE state = 'assigned'")
            for ticket in {r["ticket_id"] for r in rows} - resolved:
                resolved.add(ticket)
                versions[ticket] += 1
                await replicas[versions[ticket] % 2].status(ticket, "resolved", versions[ticket], before="new")
            await asyncio.sleep(0.02)

    async def toggle_presence() -> None:
        # Agents come and go: the ones who start away join, some step away and come back.
        await asyncio.sleep(0.3)
        for i in range(0, AGENTS, 4):
            await replicas[i % 2].service.set_presence(f"agent-{i:02}", Presence.AVAILABLE)
        while not done.is_set():
            name = f"agent-{rng.randrange(AGENTS):02}"
            await one.service.set_presence(name, Presence.AWAY)
            await asyncio.sleep(0.05)
            await two.service.set_presence(name, Presence.AVAILABLE)

    async def sample_invariants() -> None:
        while not done.is_set():
            if await one.pool.fetchval(OVER_CAPACITY):
                violations.append("an agent held more than its capacity")
            if await one.pool.fetchval(HELD_TWICE):
                violations.append("a ticket was offered or held twice at once")
            await asyncio.sleep(0.05)

    async def all_resolved() -> bool:
        parked = await one.pool.fetchval("SELECT count(*) FROM queue_entries WHERE state = 'parked'")
        return bool(parked == TICKETS)

    workers = [
        asyncio.create_task(work()) for work in (answer_offers, resolve_assigned, toggle_presence, sample_invariants)
    ]
    try:
        await open_tickets()
        await eventually(all_resolved, timeout=180, what=f"all {TICKETS} tickets assigned and resolved")
    finally:
        done.set()
        await asyncio.gather(*workers)

    pool: asyncpg.Pool = one.pool
    assert violations == []
    per_ticket = await pool.fetch("SELECT ticket_id, count(*) AS n FROM assignments GROUP BY ticket_id")
    assert len(per_ticket) == TICKETS, "every ticket reached an agent"
    assert {r["n"] for r in per_ticket} == {1}, "no ticket was assigned twice"
    assert await pool.fetchval("SELECT count(*) FROM assignments WHERE released_at IS NULL") == 0
    assert await pool.fetchval("SELECT count(*) FROM offers WHERE state = 'pending'") == 0
    assert await pool.fetchval("SELECT count(*) FROM agents WHERE active <> 0") == 0
    assigned_events = await pool.fetch(
        """
        SELECT subject, count(*) AS n FROM outbox
        WHERE event_type = 'support.routing.v1.ticket.assigned' GROUP BY subject
        """
    )
    assert len(assigned_events) == TICKETS
    assert {r["n"] for r in assigned_events} == {1}
