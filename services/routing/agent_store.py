"""SQL for agents: profile, presence, load (``active``), and the dispatch index rows that follow them.

Agents are locked ``FOR NO KEY UPDATE``, so the foreign-key checks of offers and assignments (``KEY SHARE``)
never conflict with a lock on their agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.kit.db import Connection
from services.routing.domain import Agent, AgentCounts, AgentProfile, Presence, Skill

_SELECT = """
SELECT a.id, a.display_name, a.languages, a.capacity, a.presence, a.active, a.last_assigned_at,
       a.presence_changed_at, a.version,
       ARRAY(SELECT s.skill FROM agent_skills s WHERE s.agent_id = a.id ORDER BY s.skill) AS skill_names,
       ARRAY(SELECT s.proficiency FROM agent_skills s WHERE s.agent_id = a.id ORDER BY s.skill) AS skill_levels
FROM agents a
"""

_LIST_WHERE = """
WHERE (cardinality($1::text[]) = 0 OR a.presence = ANY ($1::text[]))
  AND ($2 = '' OR a.id IN (SELECT s.agent_id FROM agent_skills s WHERE s.skill = $2))
  AND ($3::text IS NULL OR a.id > $3)
ORDER BY a.id
LIMIT $4
"""


async def insert_agent(
    conn: Connection,
    agent_id: str,
    profile: AgentProfile,
    now: datetime,
    *,
    request_id: str | None = None,
    fingerprint: str = "",
) -> bool:
    """Create the agent (offline until it says otherwise); False if the id, or ``request_id``, exists."""
    inserted = await conn.fetchval(
        """
        INSERT INTO agents (id, display_name, languages, capacity, presence_changed_at, created_at, request_id,
                            request_fingerprint)
        VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
        ON CONFLICT DO NOTHING
        RETURNING true
        """,
        agent_id,
        profile.display_name,
        list(profile.languages),
        profile.capacity,
        now,
        request_id,
        fingerprint,
    )
    if not inserted:
        return False
    await _replace_skills(conn, agent_id, profile.skills)
    return True


async def agent_by_request_id(conn: Connection, request_id: str) -> tuple[str, str] | None:
    """The id of the agent ``request_id`` created and the fingerprint of that request."""
    row = await conn.fetchrow("SELECT id, request_fingerprint FROM agents WHERE request_id = $1", request_id)
    return (row["id"], row["request_fingerprint"]) if row else None


async def request_fingerprint(conn: Connection, agent_id: str) -> str | None:
    """The fingerprint of the request that created ``agent_id``; None if there is no such agent."""
    value: str | None = await conn.fetchval("SELECT request_fingerprint FROM agents WHERE id = $1", agent_id)
    return value


async def update_profile(conn: Connection, agent_id: str, profile: AgentProfile) -> None:
    await conn.execute(
        """
        UPDATE agents SET display_name = $2, languages = $3, capacity = $4, version = version + 1
        WHERE id = $1
        """,
        agent_id,
        profile.display_name,
        list(profile.languages),
        profile.capacity,
    )
    await _replace_skills(conn, agent_id, profile.skills)


async def _replace_skills(conn: Connection, agent_id: str, skills: Sequence[Skill]) -> None:
    await conn.execute("DELETE FROM agent_skills WHERE agent_id = $1", agent_id)
    await conn.execute(
        """
        INSERT INTO agent_skills (agent_id, skill, proficiency)
        SELECT $1, s.skill, s.proficiency FROM unnest($2::text[], $3::smallint[]) AS s (skill, proficiency)
        """,
        agent_id,
        [s.name for s in skills],
        [s.proficiency for s in skills],
    )
    await conn.execute("SELECT agent_keys_rebuild($1)", agent_id)


async def get_agent(conn: Connection, agent_id: str) -> Agent | None:
    row = await conn.fetchrow(_SELECT + " WHERE a.id = $1", agent_id)
    return _agent(row) if row else None


async def lock_agent(conn: Connection, agent_id: str) -> Agent | None:
    row = await conn.fetchrow(_SELECT + " WHERE a.id = $1 FOR NO KEY UPDATE OF a", agent_id)
    return _agent(row) if row else None


async def try_lock_agent(conn: Connection, agent_id: str) -> tuple[Agent | None, bool]:
    """(the agent, True), or (None, False) if another transaction holds it, or (None, True) if there is none."""
    row = await conn.fetchrow(_SELECT + " WHERE a.id = $1 FOR NO KEY UPDATE OF a SKIP LOCKED", agent_id)
    if row is not None:
        return _agent(row), True
    exists = await conn.fetchval("SELECT true FROM agents WHERE id = $1", agent_id)
    return None, not exists


async def set_presence(conn: Connection, agent_id: str, presence: Presence, now: datetime) -> None:
    await conn.execute(
        """
        UPDATE agents SET presence = $2, presence_changed_at = $3, version = version + 1
        WHERE id = $1
        """,
        agent_id,
        presence.value,
        now,
    )


async def reserve(conn: Connection, agent_id: str, *, available_only: bool, given_at: datetime | None) -> bool:
    """Count one more ticket against the agent if it has room; False (nothing changed) if it has none.
    ``given_at``: the ticket is a new one for the agent (offered or assigned), which puts it behind the agents
    idle longer; None for one it gets back (a reopen)."""
    reserved = await conn.fetchval(
        """
        UPDATE agents SET active = active + 1, last_assigned_at = coalesce($3, last_assigned_at)
        WHERE id = $1 AND active < capacity AND (NOT $2 OR presence = 'available')
        RETURNING true
        """,
        agent_id,
        available_only,
        given_at,
    )
    return bool(reserved)


async def release(conn: Connection, agent_id: str) -> None:
    """One ticket fewer against the agent."""
    await conn.execute("UPDATE agents SET active = active - 1 WHERE id = $1", agent_id)


async def list_agents(
    conn: Connection, *, presences: Sequence[Presence], skill: str, after: str | None, limit: int
) -> list[Agent]:
    rows = await conn.fetch(
        _SELECT + _LIST_WHERE,
        [p.value for p in presences],
        skill,
        after,
        limit,
    )
    return [_agent(r) for r in rows]


async def count_agents(conn: Connection) -> AgentCounts:
    """Every agent once: available with free capacity, busy (available, at capacity), away, offline."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE presence = 'available' AND active < capacity) AS available,
               count(*) FILTER (WHERE presence = 'available' AND active >= capacity) AS busy,
               count(*) FILTER (WHERE presence = 'away') AS away,
               count(*) FILTER (WHERE presence = 'offline') AS offline
        FROM agents
        """
    )
    assert row is not None
    return AgentCounts(**dict(row))


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(
        id=row["id"],
        display_name=row["display_name"],
        skills=tuple(Skill(n, p) for n, p in zip(row["skill_names"], row["skill_levels"], strict=True)),
        languages=tuple(row["languages"]),
        capacity=row["capacity"],
        presence=Presence(row["presence"]),
        active=row["active"],
        last_assigned_at=row["last_assigned_at"],
        presence_changed_at=row["presence_changed_at"],
        version=row["version"],
    )
