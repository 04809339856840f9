"""SQL behind routing's sampled gauges: one aggregate query each, sampled every few seconds."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.db import Connection


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    waiting: int
    longest_wait_s: float


async def queue_depths(conn: Connection) -> list[QueueDepth]:
    """Every queue with its waiting tickets and the age of the oldest (0 when none waits)."""
    rows = await conn.fetch(
        """
        SELECT u.name, count(e.ticket_id) AS waiting,
               coalesce(extract(epoch FROM now() - min(e.ticket_created_at)), 0) AS longest
        FROM queues u
        LEFT JOIN queue_entries e ON e.queue = u.name AND e.state = 'waiting'
        GROUP BY u.name
        """
    )
    return [QueueDepth(r["name"], r["waiting"], float(r["longest"])) for r in rows]


@dataclass(frozen=True, slots=True)
class SkillDepth:
    skill: str
    waiting: int
    longest_wait_s: float


async def skill_depths(conn: Connection) -> list[SkillDepth]:
    """Every skill agents have or waiting tickets need, with the waiting tickets whose current step requires
    it (its first requirement or a further one) and the age of the oldest; a ticket any agent may take counts
    under no skill."""
    rows = await conn.fetch(
        """
        WITH needs AS (
            SELECT e.ticket_id, e.req_skill AS skill, e.ticket_created_at FROM queue_entries e
            WHERE e.state = 'waiting' AND e.req_skill <> ''
            UNION
            SELECT e.ticket_id, x.skill, e.ticket_created_at
            FROM queue_entries e CROSS JOIN LATERAL jsonb_object_keys(e.req_extra) AS x (skill)
            WHERE e.state = 'waiting'
        ), skills AS (
            SELECT DISTINCT skill FROM agent_skills UNION SELECT skill FROM needs
        )
        SELECT s.skill, count(n.ticket_id) AS waiting,
               coalesce(extract(epoch FROM now() - min(n.ticket_created_at)), 0) AS longest
        FROM skills s LEFT JOIN needs n ON n.skill = s.skill
        GROUP BY s.skill
        """
    )
    return [SkillDepth(r["skill"], r["waiting"], float(r["longest"])) for r in rows]


async def agents_by_presence(conn: Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT presence, count(*) AS n FROM agents GROUP BY presence")
    return {r["presence"]: r["n"] for r in rows}


async def running_clocks(conn: Connection) -> dict[tuple[str, str], int]:
    """Running SLA clocks per (metric, status): ``on_track``, ``at_risk`` (past 80 %) or ``breached``."""
    rows = await conn.fetch(
        """
        SELECT metric,
               CASE WHEN now() >= deadline THEN 'breached'
                    WHEN now() >= at_risk_at THEN 'at_risk'
                    ELSE 'on_track' END AS status,
               count(*) AS n
        FROM sla_clocks WHERE state = 'running'
        GROUP BY 1, 2
        """
    )
    return {(r["metric"], r["status"]): r["n"] for r in rows}
