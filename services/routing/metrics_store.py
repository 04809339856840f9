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
