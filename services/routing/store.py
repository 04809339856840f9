"""SQL for queue entries: reading and writing them, the two dispatch picks, and queue statistics.

Rows are locked ``FOR NO KEY UPDATE``, never ``FOR UPDATE``: offers and assignments reference entries and
agents, and the foreign-key checks of their inserts take ``KEY SHARE`` locks, which ``FOR UPDATE`` would
conflict with (a classic deadlock between two transactions working on the same agent).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.kit.db import Connection
from services.routing.domain import Agent, EntryState, Queue, QueueEntry, Requirement, Step
from services.routing.matching import Need, RoutingKey, need_of

_COLUMNS = (
    "ticket_id, queue, priority, state, ticket_version, ticket_created_at, enqueued_at, steps, step, routed_since, "
    "waiting_since, category, language, customer_tier, ticket_status, rule_id, agent_id, last_agent_id, sla_due_at"
)
_QUEUE_COLUMNS = "direct_assignment, offer_timeout, requeue_on_offline, version"


# --- steps as stored (entries and rules) -----------------------------------------------------------------


def steps_to_json(steps: Sequence[Step]) -> str:
    return json.dumps(
        [
            {
                "after_s": s.after.total_seconds(),
                "requirements": [{"skill": r.skill, "min_proficiency": r.min_proficiency} for r in s.requirements],
                "any_agent": s.any_agent,
                "notify_supervisor": s.notify_supervisor,
            }
            for s in steps
        ]
    )


def steps_from_json(raw: str) -> tuple[Step, ...]:
    return tuple(
        Step(
            after=timedelta(seconds=s["after_s"]),
            requirements=tuple(Requirement(r["skill"], r["min_proficiency"]) for r in s["requirements"]),
            any_agent=s["any_agent"],
            notify_supervisor=s["notify_supervisor"],
        )
        for s in json.loads(raw)
    )


# --- entries ---------------------------------------------------------------------------------------------


def _need_args(entry: QueueEntry) -> tuple[str, int, str, str]:
    need = need_of(entry)
    return need.key.skill, need.key.level, need.key.language, json.dumps(dict(need.extra))


def _entry_args(entry: QueueEntry) -> tuple[Any, ...]:
    return (
        entry.ticket_id,
        entry.queue,
        entry.priority,
        entry.state.value,
        entry.ticket_version,
        entry.ticket_created_at,
        entry.enqueued_at,
        steps_to_json(entry.steps),
        entry.step,
        entry.routed_since,
        entry.waiting_since,
        entry.category,
        entry.language,
        entry.customer_tier,
        entry.ticket_status,
        entry.rule_id,
        entry.agent_id,
        entry.last_agent_id,
        entry.sla_due_at,
        *_need_args(entry),
    )


async def insert_entry(conn: Connection, entry: QueueEntry) -> bool:
    """Insert the entry; False if the ticket is already in routing."""
    inserted = await conn.fetchval(
        f"""
        INSERT INTO queue_entries ({_COLUMNS}, req_skill, req_level, req_language, req_extra)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
                $20, $21, $22, $23::jsonb)
        ON CONFLICT (ticket_id) DO NOTHING
        RETURNING true
        """,
        *_entry_args(entry),
    )
    return bool(inserted)


_ENTRY_TYPES = (
    "uuid, text, text, text, bigint, timestamptz, timestamptz, jsonb, integer, timestamptz, timestamptz, text, text, "
    "text, text, uuid, text, text, timestamptz, text, smallint, text, jsonb"
)
_INSERT_ENTRIES = f"""
    INSERT INTO queue_entries ({_COLUMNS}, req_skill, req_level, req_language, req_extra)
    SELECT * FROM unnest({", ".join(f"${i}::{t}[]" for i, t in enumerate(_ENTRY_TYPES.split(", "), start=1))})
    ON CONFLICT (ticket_id) DO NOTHING
    RETURNING ticket_id
"""


async def insert_entries(conn: Connection, new: Sequence[QueueEntry]) -> set[uuid.UUID]:
    """``insert_entry`` for several in one statement: the ids of those inserted (the others were in routing)."""
    if not new:
        return set()
    columns = [list(c) for c in zip(*(_entry_args(e) for e in new), strict=True)]
    return {row["ticket_id"] for row in await conn.fetch(_INSERT_ENTRIES, *columns)}


_SAVE_ENTRY = """
    UPDATE queue_entries SET
        queue = $2, priority = $3, state = $4, ticket_version = $5, steps = $6::jsonb, step = $7,
        routed_since = $8, waiting_since = $9, ticket_status = $10, rule_id = $11, agent_id = $12,
        last_agent_id = $13, req_skill = $14, req_level = $15, req_language = $16, req_extra = $17::jsonb,
        updated_at = now()
    WHERE ticket_id = $1
"""


def _save_args(entry: QueueEntry) -> tuple[Any, ...]:
    return (
        entry.ticket_id,
        entry.queue,
        entry.priority,
        entry.state.value,
        entry.ticket_version,
        steps_to_json(entry.steps),
        entry.step,
        entry.routed_since,
        entry.waiting_since,
        entry.ticket_status,
        entry.rule_id,
        entry.agent_id,
        entry.last_agent_id,
        *_need_args(entry),
    )


async def save_entry(conn: Connection, entry: QueueEntry) -> None:
    """Write the entry's mutable columns and the requirement columns of its step in force (not sla_due_at,
    which the SLA clocks keep)."""
    await conn.execute(_SAVE_ENTRY, *_save_args(entry))


async def save_entries(conn: Connection, saved: Sequence[QueueEntry]) -> None:
    """``save_entry`` for several, pipelined in one round trip."""
    if saved:
        await conn.executemany(_SAVE_ENTRY, [_save_args(e) for e in saved])


async def set_entry_sla_due(conn: Connection, ticket_id: uuid.UUID, due_at: datetime | None) -> None:
    await conn.execute("UPDATE queue_entries SET sla_due_at = $2 WHERE ticket_id = $1", ticket_id, due_at)


async def get_entry(conn: Connection, ticket_id: uuid.UUID) -> QueueEntry | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM queue_entries WHERE ticket_id = $1", ticket_id)
    return _entry(row) if row else None


async def lock_entry(conn: Connection, ticket_id: uuid.UUID) -> QueueEntry | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM queue_entries WHERE ticket_id = $1 FOR NO KEY UPDATE", ticket_id)
    return _entry(row) if row else None


async def lock_entries_free_now(conn: Connection, ticket_ids: Collection[uuid.UUID]) -> list[QueueEntry]:
    """Those of the entries no other transaction holds, locked (in ticket order); the others are skipped."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM queue_entries WHERE ticket_id = ANY($1::uuid[])
        ORDER BY ticket_id FOR NO KEY UPDATE SKIP LOCKED
        """,
        list(ticket_ids),
    )
    return [_entry(row) for row in rows]


class EntryBusy(Exception):
    """Another transaction holds the entry; a timer handler gives way (and is retried) rather than wait."""


async def lock_entry_or_give_way(conn: Connection, ticket_id: uuid.UUID) -> QueueEntry | None:
    """The entry, locked; None if there is none; EntryBusy if another transaction holds it.

    For timer handlers: the scheduler holds the timer's row, and whoever holds the entry may be about to
    cancel or move that very timer, so waiting here could deadlock.
    """
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM queue_entries WHERE ticket_id = $1 FOR NO KEY UPDATE SKIP LOCKED", ticket_id
    )
    if row is not None:
        return _entry(row)
    if await conn.fetchval("SELECT true FROM queue_entries WHERE ticket_id = $1", ticket_id):
        raise EntryBusy(f"entry {ticket_id} is held by another transaction")
    return None


async def try_lock_waiting(conn: Connection, ticket_id: uuid.UUID) -> tuple[QueueEntry | None, bool]:
    """(the entry, locked) if it is waiting; (None, True) if it is not; (None, False) if another holds it."""
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM queue_entries
        WHERE ticket_id = $1 AND state = 'waiting' FOR NO KEY UPDATE SKIP LOCKED
        """,
        ticket_id,
    )
    if row is not None:
        return _entry(row), True
    waiting = await conn.fetchval(
        "SELECT true FROM queue_entries WHERE ticket_id = $1 AND state = 'waiting'",
        ticket_id,
    )
    return None, not waiting


async def lock_entries_of_agent(conn: Connection, agent_id: str) -> list[QueueEntry]:
    """Entries offered to or held by the agent, locked (in ticket order, so concurrent lockers never deadlock)."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM queue_entries
        WHERE agent_id = $1 AND state IN ('offered', 'assigned')
        ORDER BY ticket_id
        FOR NO KEY UPDATE
        """,
        agent_id,
    )
    return [_entry(r) for r in rows]


def _entry(row: asyncpg.Record) -> QueueEntry:
    return QueueEntry(
        ticket_id=row["ticket_id"],
        queue=row["queue"],
        priority=row["priority"],
        state=EntryState(row["state"]),
        ticket_version=row["ticket_version"],
        ticket_created_at=row["ticket_created_at"],
        enqueued_at=row["enqueued_at"],
        steps=steps_from_json(row["steps"]),
        step=row["step"],
        routed_since=row["routed_since"],
        waiting_since=row["waiting_since"],
        category=row["category"],
        language=row["language"],
        customer_tier=row["customer_tier"],
        ticket_status=row["ticket_status"],
        rule_id=row["rule_id"],
        agent_id=row["agent_id"],
        last_agent_id=row["last_agent_id"],
        sla_due_at=row["sla_due_at"],
    )


# --- the two dispatch picks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentPick:
    """The reserved agent (its ``active`` already counts the ticket), or None; ``contended`` when eligible
    agents existed but were all locked by other transactions, so the match must be retried after commit."""

    agent_id: str | None
    contended: bool


# How many candidates a pick considers before giving up on locked rows: other replicas hold few at once.
_CANDIDATES = 8

# Best available agent for a ticket: one range of the partial index agent_keys_dispatch, read in order.
# The winner is locked (SKIP LOCKED, so replicas never wait on each other) and reserved in the same statement:
# `active < capacity` is checked again on the locked row, and the CHECK on agents backs it up.
RESERVE_AGENT_SQL = f"""
WITH candidates AS (
    SELECT k.agent_id, k.active, k.last_assigned_at, k.proficiency
    FROM agent_keys k
    WHERE k.open AND k.skill = $1 AND k.language = $2 AND k.proficiency >= $3
      AND k.agent_id <> ALL ($4::text[])
      AND ($5::jsonb = '{{}}'::jsonb OR NOT EXISTS (
            SELECT 1 FROM jsonb_each_text($5::jsonb) r
            WHERE coalesce((SELECT s.proficiency FROM agent_skills s
                            WHERE s.agent_id = k.agent_id AND s.skill = r.key), 0) < r.value::int))
    ORDER BY k.active, k.last_assigned_at NULLS FIRST, k.proficiency DESC, k.agent_id
    LIMIT {_CANDIDATES}
),
picked AS (
    SELECT a.id
    FROM candidates c JOIN agents a ON a.id = c.agent_id
    WHERE a.presence = 'available' AND a.active < a.capacity
    ORDER BY c.active, c.last_assigned_at NULLS FIRST, c.proficiency DESC, c.agent_id
    LIMIT 1
    FOR NO KEY UPDATE OF a SKIP LOCKED
),
reserved AS (
    UPDATE agents a SET active = a.active + 1, last_assigned_at = $6
    FROM picked
    WHERE a.id = picked.id AND a.active < a.capacity
    RETURNING a.id
)
SELECT (SELECT count(*) FROM candidates) AS candidates, (SELECT id FROM reserved) AS agent_id
"""


async def reserve_agent_for(conn: Connection, need: Need, exclude: Sequence[str], given_at: datetime) -> AgentPick:
    """Pick and reserve the best agent for ``need``, given the ticket at ``given_at`` (its last assignment time:
    set when a ticket is offered, not when the offer is accepted, so that accepting never waits on the agent's
    row while a dispatch holds it)."""
    row = await conn.fetchrow(
        RESERVE_AGENT_SQL,
        need.key.skill,
        need.key.language,
        need.key.level,
        list(exclude),
        json.dumps(dict(need.extra)),
        given_at,
    )
    assert row is not None
    return AgentPick(row["agent_id"], row["agent_id"] is None and row["candidates"] > 0)


async def waiting_with_open_agents(conn: Connection, ticket_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tickets wait while an open agent key has their step's skill and language at its level.
    Nothing is locked, and the other conditions of a pick (extra skills, the agent who let the ticket go) are
    left out: an answer too wide only sends a ticket to the full pick, which decides."""
    rows = await conn.fetch(
        """
        SELECT e.ticket_id FROM queue_entries e
        WHERE e.ticket_id = ANY($1::uuid[]) AND e.state = 'waiting'
          AND EXISTS (SELECT 1 FROM agent_keys k
                      WHERE k.open AND k.skill = e.req_skill AND k.language = e.req_language
                        AND k.proficiency >= e.req_level)
        """,
        list(ticket_ids),
    )
    return {row["ticket_id"] for row in rows}


async def keys_with_open_agents(conn: Connection, keys: Collection[RoutingKey]) -> set[RoutingKey]:
    """Which of these requirement keys an open agent key (available, with free capacity) satisfies; nothing is
    locked, and a pick's other conditions are left out, as in ``waiting_with_open_agents``."""
    wanted = list(keys)
    rows = await conn.fetch(
        """
        SELECT n.i FROM unnest($1::text[], $2::int[], $3::text[]) WITH ORDINALITY AS n(skill, level, language, i)
        WHERE EXISTS (SELECT 1 FROM agent_keys k
                      WHERE k.open AND k.skill = n.skill AND k.language = n.language AND k.proficiency >= n.level)
        """,
        *probe_arrays(wanted),
    )
    return {wanted[row["i"] - 1] for row in rows}


@dataclass(frozen=True, slots=True)
class TicketPick:
    entry: QueueEntry | None
    queue: Queue | None
    contended: bool


# Best waiting ticket for an agent: for each requirement key the agent satisfies, the head of that key's range
# of the partial index queue_entries_dispatch (already in waiting order); the best head wins and is locked.
PICK_TICKET_SQL = f"""
WITH probes AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) AS p (skill, level, language)
),
candidates AS (
    SELECT e.ticket_id, e.priority_rank, e.sla_due_at, e.ticket_created_at
    FROM probes p
    CROSS JOIN LATERAL (
        SELECT q.ticket_id, q.priority_rank, q.sla_due_at, q.ticket_created_at
        FROM queue_entries q
        WHERE q.state = 'waiting' AND q.req_skill = p.skill AND q.req_level = p.level
          AND q.req_language = p.language AND q.last_agent_id IS DISTINCT FROM $4
          AND (q.req_extra = '{{}}'::jsonb OR NOT EXISTS (
                SELECT 1 FROM jsonb_each_text(q.req_extra) r
                WHERE coalesce(($5::jsonb ->> r.key)::int, 0) < r.value::int))
        ORDER BY q.priority_rank DESC, q.sla_due_at, q.ticket_created_at, q.ticket_id
        LIMIT 2
    ) e
    ORDER BY e.priority_rank DESC, e.sla_due_at, e.ticket_created_at, e.ticket_id
    LIMIT {_CANDIDATES}
),
picked AS (
    SELECT q.ticket_id
    FROM candidates c JOIN queue_entries q ON q.ticket_id = c.ticket_id
    WHERE q.state = 'waiting'
    ORDER BY c.priority_rank DESC, c.sla_due_at, c.ticket_created_at, c.ticket_id
    LIMIT 1
    FOR NO KEY UPDATE OF q SKIP LOCKED
)
SELECT (SELECT count(*) FROM candidates) AS candidates, {", ".join("e." + c.strip() for c in _COLUMNS.split(","))},
       u.name AS queue_name, {", ".join("u." + c.strip() for c in _QUEUE_COLUMNS.split(","))}
FROM (SELECT 1) one
LEFT JOIN picked ON true
LEFT JOIN queue_entries e ON e.ticket_id = picked.ticket_id
LEFT JOIN queues u ON u.name = e.queue
"""


def probe_arrays(probes: Sequence[RoutingKey]) -> tuple[list[str], list[int], list[str]]:
    return [p.skill for p in probes], [p.level for p in probes], [p.language for p in probes]


async def pick_ticket_for(conn: Connection, agent: Agent, probes: Sequence[RoutingKey]) -> TicketPick:
    """Pick and lock the best waiting ticket ``agent`` may take (not one it just let go)."""
    row = await conn.fetchrow(
        PICK_TICKET_SQL,
        *probe_arrays(probes),
        agent.id,
        json.dumps({s.name: s.proficiency for s in agent.skills}),
    )
    assert row is not None
    if row["ticket_id"] is None:
        return TicketPick(None, None, row["candidates"] > 0)
    queue = Queue(
        name=row["queue_name"],
        direct_assignment=row["direct_assignment"],
        offer_timeout=row["offer_timeout"],
        requeue_on_offline=row["requeue_on_offline"],
        version=row["version"],
    )
    return TicketPick(_entry(row), queue, False)


# --- statistics ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueCounts:
    queue: str
    waiting: int
    oldest_waiting: datetime | None
    offers_outstanding: int
    agents_busy: int
    assigned_recently: int
    mean_recent_wait: timedelta | None


async def queue_counts(conn: Connection, *, after: str | None, limit: int, since: datetime) -> list[QueueCounts]:
    """Per queue in name order after ``after``; ``since`` starts the window of recent assignments."""
    rows = await conn.fetch(
        """
        SELECT u.name,
               w.waiting, w.oldest,
               (SELECT count(*) FROM offers o WHERE o.queue = u.name AND o.state = 'pending') AS offers,
               (SELECT count(DISTINCT e.agent_id) FROM queue_entries e
                WHERE e.queue = u.name AND e.state IN ('offered', 'assigned')) AS busy,
               r.assigned, r.mean_wait
        FROM queues u
        CROSS JOIN LATERAL (
            SELECT count(*) AS waiting, min(e.ticket_created_at) AS oldest
            FROM queue_entries e WHERE e.queue = u.name AND e.state = 'waiting'
        ) w
        CROSS JOIN LATERAL (
            SELECT count(*) AS assigned, avg(a.waited) AS mean_wait
            FROM assignments a WHERE a.queue = u.name AND a.assigned_at >= $3 AND a.waited IS NOT NULL
        ) r
        WHERE $1::text IS NULL OR u.name > $1
        ORDER BY u.name
        LIMIT $2
        """,
        after,
        limit,
        since,
    )
    return [
        QueueCounts(
            queue=r["name"],
            waiting=r["waiting"],
            oldest_waiting=r["oldest"],
            offers_outstanding=r["offers"],
            agents_busy=r["busy"],
            assigned_recently=r["assigned"],
            mean_recent_wait=r["mean_wait"],
        )
        for r in rows
    ]


async def agents_open_for(conn: Connection, keys: Sequence[RoutingKey]) -> int:
    """Available agents with free capacity who meet at least one of ``keys`` (skill and level; any language)."""
    if not keys:
        return 0
    count: int = await conn.fetchval(
        """
        SELECT count(DISTINCT k.agent_id)
        FROM agent_keys k
        JOIN unnest($1::text[], $2::int[]) AS r (skill, level) ON k.skill = r.skill AND k.proficiency >= r.level
        WHERE k.open AND k.language = ''
        """,
        [k.skill for k in keys],
        [k.level for k in keys],
    )
    return count
