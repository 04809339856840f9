"""The two dispatch queries pick exactly what the pure reference pickers say, on random agents and tickets."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.routing import agent_store, matching, store
from services.routing.domain import (
    Agent,
    AgentProfile,
    EntryState,
    Presence,
    QueueEntry,
    Requirement,
    Skill,
    Step,
)
from tests.integration.bus_fixtures import migrated_pool

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SKILLS = ("payments", "cards", "complaints")
LANGUAGES = ("zh", "en", "ja")


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    yield pool
    await pool.close()


def random_step(rng: random.Random, dense: bool) -> Step:
    # Dense: few distinct requirements, so many tickets share each index range and its order matters.
    skills = rng.sample(SKILLS[:1] if dense else SKILLS, rng.choice((0, 1, 1, 1) if dense else (0, 1, 1, 1, 2)))
    return Step(
        after=timedelta(0),
        requirements=tuple(Requirement(s, rng.choice((2, 4)) if dense else rng.randint(1, 5)) for s in skills),
        any_agent=rng.random() < 0.15,
    )


async def seed_agents(conn: asyncpg.Connection, rng: random.Random, n: int) -> list[Agent]:
    moments = [None, T0, T0 - timedelta(minutes=5), T0 - timedelta(minutes=1)]
    for i in range(n):
        profile = AgentProfile(
            display_name=f"agent {i}",
            skills=tuple(Skill(s, rng.randint(1, 5)) for s in SKILLS if rng.random() < 0.6),
            languages=tuple(lang for lang in LANGUAGES if rng.random() < 0.5),
            capacity=rng.randint(1, 3),
        )
        agent_id = f"a-{rng.randrange(10_000):04}-{i}"
        await agent_store.insert_agent(conn, agent_id, profile, T0)
        # Load and presence set directly: the transaction is rolled back before the load check at commit.
        await conn.execute(
            "UPDATE agents SET presence = $2, active = least($3, capacity), last_assigned_at = $4 WHERE id = $1",
            agent_id,
            rng.choice((Presence.AVAILABLE, Presence.AVAILABLE, Presence.AWAY, Presence.OFFLINE)).value,
            rng.randint(0, 3),
            rng.choice(moments),
        )
    return await agent_store.list_agents(conn, presences=(), skill="", after=None, limit=100)


async def seed_entries(
    conn: asyncpg.Connection, rng: random.Random, n: int, agent_ids: list[str], *, dense: bool
) -> list[QueueEntry]:
    entries = []
    for _ in range(n):
        created = T0 - timedelta(seconds=rng.choice((0, 10, 20, 30)))
        entry = QueueEntry(
            ticket_id=uuid.uuid4(),
            queue="payments",
            priority=rng.choice(("low", "normal", "high", "urgent")),
            state=rng.choice((EntryState.WAITING, EntryState.WAITING, EntryState.PARKED)),
            ticket_version=1,
            ticket_created_at=created,
            enqueued_at=created,
            steps=(random_step(rng, dense),),
            step=0,
            routed_since=created,
            waiting_since=created,
            language=rng.choice(("zh",) if dense else ("", *LANGUAGES)),
            last_agent_id=rng.choice((None, None, *agent_ids)),
            sla_due_at=rng.choice((None, T0 + timedelta(minutes=2), T0 + timedelta(minutes=5))),
        )
        assert await store.insert_entry(conn, entry)
        entries.append(entry)
    return entries


class _Undo(Exception):
    pass


async def reserve_and_undo(conn: asyncpg.Connection, need: matching.Need, exclude: list[str]) -> store.AgentPick:
    """The agent the query reserves, with the reservation rolled back (a savepoint)."""
    pick = None
    try:
        async with conn.transaction():
            pick = await store.reserve_agent_for(conn, need, exclude, T0)
            raise _Undo
    except _Undo:
        pass
    assert pick is not None
    return pick


@pytest.mark.parametrize(("seed", "dense"), [(1, False), (2, False), (3, False), (4, True), (5, True)])
async def test_the_dispatch_queries_agree_with_the_reference_pickers(
    pool: asyncpg.Pool, seed: int, dense: bool
) -> None:
    rng = random.Random(seed)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            agents = await seed_agents(conn, rng, 40)
            entries = await seed_entries(conn, rng, 120, [a.id for a in agents], dense=dense)
            await conn.execute("ANALYZE agent_keys; ANALYZE queue_entries")
            # The batched re-check may send a ticket no agent can take to the full pick, never skip one it can.
            worth = await store.waiting_with_open_agents(conn, {e.ticket_id for e in entries})
            matched = 0
            for entry in entries:
                need = matching.need_of(entry)
                exclude = [entry.last_agent_id] if entry.last_agent_id else []
                expected = matching.best_agent(agents, need, exclude)
                pick = await reserve_and_undo(conn, need, exclude)
                assert pick.agent_id == (expected.id if expected else None), (entry, need)
                assert not pick.contended
                matched += expected is not None
                if entry.state is not EntryState.WAITING:
                    assert entry.ticket_id not in worth, entry
                elif expected is not None:
                    assert entry.ticket_id in worth, (entry, need)
            taken = 0
            for agent in agents:
                expected_entry = matching.best_ticket(entries, agent)
                picked = await store.pick_ticket_for(conn, agent, matching.probe_keys(agent))
                got = picked.entry.ticket_id if picked.entry else None
                assert got == (expected_entry.ticket_id if expected_entry else None), agent
                taken += got is not None
            # The data must give both pickers real choices, or the agreement proves little.
            assert matched > 10
            assert taken > 10
        finally:
            await tx.rollback()
