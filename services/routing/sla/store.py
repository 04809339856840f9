"""SQL for SLA calendars, policies, ticket state, clocks and statistics (routing's schema)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from services.kit.bus.envelope import Envelope
from services.kit.db import Connection
from services.routing.sla.calendar import Calendar, CalendarSpec, OpeningHours, format_minute, parse_minute
from services.routing.sla.domain import (
    Clock,
    ClockState,
    Escalation,
    Metric,
    Pause,
    Policy,
    PolicyMatch,
    PolicySpec,
    SlaStats,
    TicketSla,
)

# --- per-ticket serialisation --------------------------------------------------------------------------

# One lock per ticket, also for tickets that have no row yet (events may arrive before ticket.created).
_TICKET_LOCK = "hashtextextended('sla:' || $1::uuid::text, 0)"


async def lock_ticket(conn: Connection, ticket_id: uuid.UUID) -> None:
    await conn.execute(f"SELECT pg_advisory_xact_lock({_TICKET_LOCK})", ticket_id)


async def lock_tickets(conn: Connection, ticket_ids: Iterable[uuid.UUID]) -> None:
    """``lock_ticket`` for several, in one statement and in id order (so two lockers never deadlock)."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('sla:' || t.id::text, 0)) FROM unnest($1::uuid[]) AS t(id)",
        sorted(ticket_ids),
    )


async def known_tickets(conn: Connection, ticket_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these tickets SLA has state of, or buffered events for."""
    rows = await conn.fetch(
        """
        SELECT ticket_id FROM sla_tickets WHERE ticket_id = ANY($1::uuid[])
        UNION SELECT ticket_id FROM sla_event_buffer WHERE ticket_id = ANY($1::uuid[])
        """,
        list(ticket_ids),
    )
    return {row["ticket_id"] for row in rows}


async def try_lock_ticket(conn: Connection, ticket_id: uuid.UUID, *, wait_ms: int) -> bool:
    """Take the ticket's lock, waiting at most ``wait_ms``; False if it is still held elsewhere."""
    locked: bool = await conn.fetchval("SELECT sla_lock_ticket($1, $2)", ticket_id, wait_ms)
    return locked


async def db_now(conn: Connection) -> datetime:
    now: datetime = await conn.fetchval("SELECT now()")
    return now


# --- tickets -------------------------------------------------------------------------------------------

_TICKET_COLUMNS = "ticket_id, applied_version, category, priority, customer_tier, queue, status, created_at"


async def get_ticket(conn: Connection, ticket_id: uuid.UUID) -> TicketSla | None:
    row = await conn.fetchrow(f"SELECT {_TICKET_COLUMNS} FROM sla_tickets WHERE ticket_id = $1", ticket_id)
    return _ticket(row) if row else None


async def ticket_and_backlog(conn: Connection, ticket_id: uuid.UUID) -> tuple[TicketSla | None, bool]:
    """The ticket's SLA state and whether events of it wait in the buffer, in one round trip."""
    row = await conn.fetchrow(
        f"""
        SELECT t.*, EXISTS (SELECT 1 FROM sla_event_buffer b WHERE b.ticket_id = $1) AS has_buffered
        FROM (SELECT 1) AS one LEFT JOIN LATERAL (
            SELECT {_TICKET_COLUMNS} FROM sla_tickets WHERE ticket_id = $1
        ) AS t ON true
        """,
        ticket_id,
    )
    assert row is not None
    return (_ticket(row) if row["ticket_id"] is not None else None), row["has_buffered"]


def _ticket(row: asyncpg.Record) -> TicketSla:
    return TicketSla(
        ticket_id=row["ticket_id"],
        version=row["applied_version"],
        category=row["category"],
        priority=row["priority"],
        customer_tier=row["customer_tier"],
        queue=row["queue"],
        status=row["status"],
        created_at=row["created_at"],
    )


_SAVE_TICKET = f"""
    INSERT INTO sla_tickets ({_TICKET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (ticket_id) DO UPDATE SET
        applied_version = EXCLUDED.applied_version, priority = EXCLUDED.priority,
        status = EXCLUDED.status, updated_at = now()
"""


def _ticket_values(ticket: TicketSla) -> tuple[Any, ...]:
    return (
        ticket.ticket_id,
        ticket.version,
        ticket.category,
        ticket.priority,
        ticket.customer_tier,
        ticket.queue,
        ticket.status,
        ticket.created_at,
    )


async def save_ticket(conn: Connection, ticket: TicketSla) -> None:
    await conn.execute(_SAVE_TICKET, *_ticket_values(ticket))


async def save_tickets(conn: Connection, tickets: Iterable[TicketSla]) -> None:
    """``save_ticket`` for several, pipelined in one round trip."""
    values = [_ticket_values(t) for t in tickets]
    if values:
        await conn.executemany(_SAVE_TICKET, values)


# --- events that arrived ahead of a gap ----------------------------------------------------------------


async def buffer_event(conn: Connection, ticket_id: uuid.UUID, version: int, event: Envelope) -> bool:
    """Keep an early event; False if this version is already buffered."""
    inserted = await conn.fetchval(
        """
        INSERT INTO sla_event_buffer (ticket_id, version, event_type, event_time, payload)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT DO NOTHING
        RETURNING true
        """,
        ticket_id,
        version,
        event.type,
        event.time,
        event.data,
    )
    return bool(inserted)


async def buffered_events(conn: Connection, ticket_id: uuid.UUID) -> list[tuple[int, Envelope]]:
    rows = await conn.fetch(
        """
        SELECT version, event_type, event_time, payload FROM sla_event_buffer
        WHERE ticket_id = $1 ORDER BY version
        """,
        ticket_id,
    )
    return [
        (
            r["version"],
            Envelope(
                type=r["event_type"],
                source="",
                subject=str(ticket_id),
                data=bytes(r["payload"]),
                time=r["event_time"],
            ),
        )
        for r in rows
    ]


async def buffered_count(conn: Connection, ticket_id: uuid.UUID) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM sla_event_buffer WHERE ticket_id = $1", ticket_id)
    return count


async def drop_buffered(conn: Connection, ticket_id: uuid.UUID, up_to_version: int) -> None:
    await conn.execute("DELETE FROM sla_event_buffer WHERE ticket_id = $1 AND version <= $2", ticket_id, up_to_version)


# --- clocks --------------------------------------------------------------------------------------------

_CLOCK_COLUMNS = (
    "ticket_id, metric, cycle, policy_id, target, calendar_id, warning_percents, raise_priority, "
    "notify_supervisor, state, started_at, deadline, at_risk_at, pauses, paused_total, stopped_at, breached_at, "
    "breach_recorded_at, warned, queue, priority"
)


def _clock(row: asyncpg.Record) -> Clock:
    return Clock(
        ticket_id=row["ticket_id"],
        metric=Metric(row["metric"]),
        cycle=row["cycle"],
        policy_id=row["policy_id"],
        target=row["target"],
        calendar_id=row["calendar_id"],
        warning_percents=tuple(row["warning_percents"]),
        escalation=Escalation(raise_priority=row["raise_priority"], notify_supervisor=row["notify_supervisor"]),
        state=ClockState(row["state"]),
        started_at=row["started_at"],
        deadline=row["deadline"],
        at_risk_at=row["at_risk_at"],
        queue=row["queue"],
        priority=row["priority"],
        pauses=tuple(
            Pause(
                reason=p["reason"],
                start=datetime.fromisoformat(p["start"]),
                end=datetime.fromisoformat(p["end"]) if p["end"] else None,
            )
            for p in json.loads(row["pauses"])
        ),
        stopped_at=row["stopped_at"],
        breached_at=row["breached_at"],
        breach_recorded_at=row["breach_recorded_at"],
        warned=tuple(row["warned"]),
    )


def _clock_values(c: Clock) -> tuple[Any, ...]:
    pauses = [
        {"reason": p.reason, "start": p.start.isoformat(), "end": p.end.isoformat() if p.end else None}
        for p in c.pauses
    ]
    return (
        c.ticket_id,
        c.metric.value,
        c.cycle,
        c.policy_id,
        c.target,
        c.calendar_id,
        list(c.warning_percents),
        c.escalation.raise_priority,
        c.escalation.notify_supervisor,
        c.state.value,
        c.started_at,
        c.deadline,
        c.at_risk_at,
        json.dumps(pauses),
        c.paused_total,
        c.stopped_at,
        c.breached_at,
        c.breach_recorded_at,
        list(c.warned),
        c.queue,
        c.priority,
    )


async def latest_clocks(conn: Connection, ticket_id: uuid.UUID) -> dict[Metric, Clock]:
    """The latest cycle of each metric of a ticket."""
    rows = await conn.fetch(
        f"""
        SELECT DISTINCT ON (metric) {_CLOCK_COLUMNS} FROM sla_clocks
        WHERE ticket_id = $1 ORDER BY metric, cycle DESC
        """,
        ticket_id,
    )
    return {c.metric: c for c in map(_clock, rows)}


async def ticket_clocks(conn: Connection, ticket_id: uuid.UUID) -> list[Clock]:
    rows = await conn.fetch(
        f"SELECT {_CLOCK_COLUMNS} FROM sla_clocks WHERE ticket_id = $1 ORDER BY started_at, metric, cycle",
        ticket_id,
    )
    return [_clock(r) for r in rows]


async def get_clock(conn: Connection, ticket_id: uuid.UUID, metric: Metric, cycle: int) -> Clock | None:
    row = await conn.fetchrow(
        f"SELECT {_CLOCK_COLUMNS} FROM sla_clocks WHERE ticket_id = $1 AND metric = $2 AND cycle = $3",
        ticket_id,
        metric.value,
        cycle,
    )
    return _clock(row) if row else None


async def save_clocks(conn: Connection, clocks: Iterable[Clock]) -> None:
    values = [_clock_values(c) for c in clocks]
    if not values:
        return
    await conn.executemany(
        f"""
        INSERT INTO sla_clocks ({_CLOCK_COLUMNS})
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14::jsonb, $15, $16, $17, $18, $19, $20,
                $21)
        ON CONFLICT (ticket_id, metric, cycle) DO UPDATE SET
            policy_id = EXCLUDED.policy_id, target = EXCLUDED.target, calendar_id = EXCLUDED.calendar_id,
            warning_percents = EXCLUDED.warning_percents, raise_priority = EXCLUDED.raise_priority,
            notify_supervisor = EXCLUDED.notify_supervisor, state = EXCLUDED.state,
            deadline = EXCLUDED.deadline, at_risk_at = EXCLUDED.at_risk_at, pauses = EXCLUDED.pauses,
            paused_total = EXCLUDED.paused_total, stopped_at = EXCLUDED.stopped_at,
            breached_at = EXCLUDED.breached_at, breach_recorded_at = EXCLUDED.breach_recorded_at,
            warned = EXCLUDED.warned, priority = EXCLUDED.priority, updated_at = now()
        """,
        values,
    )


async def earliest_deadline(conn: Connection, ticket_id: uuid.UUID) -> datetime | None:
    # FILTER, not WHERE: the partial index sla_clocks_running must not be chosen to find one ticket's clocks.
    deadline: datetime | None = await conn.fetchval(
        "SELECT min(deadline) FILTER (WHERE state = 'running') FROM sla_clocks WHERE ticket_id = $1", ticket_id
    )
    return deadline


# --- calendars -----------------------------------------------------------------------------------------

_CALENDAR_COLUMNS = "id, name, time_zone, hours, holidays, version"


def _calendar(row: asyncpg.Record) -> Calendar:
    return Calendar(
        id=row["id"],
        version=row["version"],
        spec=CalendarSpec(
            name=row["name"],
            time_zone=row["time_zone"],
            hours=tuple(
                OpeningHours(
                    weekday=h["weekday"],
                    open_minute=parse_minute(h["open"], "hours.open"),
                    close_minute=parse_minute(h["close"], "hours.close"),
                )
                for h in json.loads(row["hours"])
            ),
            holidays=tuple(row["holidays"]),
        ),
    )


def _hours_json(spec: CalendarSpec) -> str:
    return json.dumps(
        [
            {"weekday": h.weekday, "open": format_minute(h.open_minute), "close": format_minute(h.close_minute)}
            for h in spec.hours
        ]
    )


async def all_calendars(conn: Connection) -> list[Calendar]:
    """Every calendar (they are few: an admin's list)."""
    rows = await conn.fetch(f"SELECT {_CALENDAR_COLUMNS} FROM sla_calendars")
    return [_calendar(r) for r in rows]


async def get_calendar(conn: Connection, calendar_id: uuid.UUID, *, for_update: bool = False) -> Calendar | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_CALENDAR_COLUMNS} FROM sla_calendars WHERE id = $1{lock}", calendar_id)
    return _calendar(row) if row else None


async def calendar_by_request_id(conn: Connection, request_id: str) -> tuple[Calendar, str] | None:
    """The calendar ``request_id`` created and the fingerprint of that request."""
    row = await conn.fetchrow(
        f"SELECT request_fingerprint, {_CALENDAR_COLUMNS} FROM sla_calendars WHERE request_id = $1", request_id
    )
    return (_calendar(row), row["request_fingerprint"]) if row else None


async def insert_calendar(conn: Connection, calendar: Calendar, request_id: str, fingerprint: str) -> Calendar | None:
    """Insert, or None when a calendar with ``request_id`` already exists."""
    spec = calendar.spec
    row = await conn.fetchrow(
        f"""
        INSERT INTO sla_calendars (id, request_id, name, time_zone, hours, holidays, version, request_fingerprint)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6::date[], $7, $8)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING {_CALENDAR_COLUMNS}
        """,
        calendar.id,
        request_id,
        spec.name,
        spec.time_zone,
        _hours_json(spec),
        list(spec.holidays),
        calendar.version,
        fingerprint,
    )
    return _calendar(row) if row else None


async def update_calendar(conn: Connection, calendar: Calendar) -> None:
    spec = calendar.spec
    await conn.execute(
        """
        UPDATE sla_calendars SET name = $2, time_zone = $3, hours = $4::jsonb, holidays = $5::date[],
            version = $6, updated_at = now()
        WHERE id = $1
        """,
        calendar.id,
        spec.name,
        spec.time_zone,
        _hours_json(spec),
        list(spec.holidays),
        calendar.version,
    )


async def list_calendars(conn: Connection, *, after: uuid.UUID | None, limit: int) -> list[Calendar]:
    rows = await conn.fetch(
        f"""
        SELECT {_CALENDAR_COLUMNS} FROM sla_calendars
        WHERE $1::uuid IS NULL OR id > $1
        ORDER BY id LIMIT $2
        """,
        after,
        limit,
    )
    return [_calendar(r) for r in rows]


# --- policies ------------------------------------------------------------------------------------------

_POLICY_COLUMNS = (
    "id, name, position, priorities, categories, customer_tiers, first_response, next_response, resolution, "
    "calendar_id, warning_percents, raise_priority, notify_supervisor, version, created_at"
)


def _policy(row: asyncpg.Record) -> Policy:
    targets = {m: row[m.value] for m in Metric if row[m.value] is not None}
    return Policy(
        id=row["id"],
        version=row["version"],
        spec=PolicySpec(
            name=row["name"],
            position=row["position"],
            match=PolicyMatch(
                priorities=tuple(row["priorities"]),
                categories=tuple(row["categories"]),
                customer_tiers=tuple(row["customer_tiers"]),
            ),
            targets=targets,
            calendar_id=row["calendar_id"],
            warning_percents=tuple(row["warning_percents"]),
            escalation=Escalation(raise_priority=row["raise_priority"], notify_supervisor=row["notify_supervisor"]),
        ),
    )


def _policy_values(spec: PolicySpec) -> tuple[Any, ...]:
    return (
        spec.name,
        spec.position,
        list(spec.match.priorities),
        list(spec.match.categories),
        list(spec.match.customer_tiers),
        spec.targets.get(Metric.FIRST_RESPONSE),
        spec.targets.get(Metric.NEXT_RESPONSE),
        spec.targets.get(Metric.RESOLUTION),
        spec.calendar_id,
        list(spec.warning_percents),
        spec.escalation.raise_priority,
        spec.escalation.notify_supervisor,
    )


async def all_policies(conn: Connection) -> list[Policy]:
    """Every policy in match order (they are few: an admin's list)."""
    rows = await conn.fetch(f"SELECT {_POLICY_COLUMNS} FROM sla_policies ORDER BY position, created_at, id")
    return [_policy(r) for r in rows]


async def list_policies(conn: Connection, *, after: tuple[int, datetime, uuid.UUID] | None, limit: int) -> list[Policy]:
    rows = await conn.fetch(
        f"""
        SELECT {_POLICY_COLUMNS} FROM sla_policies
        WHERE $1::integer IS NULL OR (position, created_at, id) > ($1, $2, $3)
        ORDER BY position, created_at, id LIMIT $4
        """,
        *(after or (None, None, None)),
        limit,
    )
    return [_policy(r) for r in rows]


async def policy_order_key(conn: Connection, policy_id: uuid.UUID) -> tuple[int, datetime, uuid.UUID] | None:
    row = await conn.fetchrow("SELECT position, created_at, id FROM sla_policies WHERE id = $1", policy_id)
    return (row["position"], row["created_at"], row["id"]) if row else None


async def get_policy(conn: Connection, policy_id: uuid.UUID, *, for_update: bool = False) -> Policy | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_POLICY_COLUMNS} FROM sla_policies WHERE id = $1{lock}", policy_id)
    return _policy(row) if row else None


async def policy_by_request_id(conn: Connection, request_id: str) -> tuple[Policy, str] | None:
    """The policy ``request_id`` created and the fingerprint of that request."""
    row = await conn.fetchrow(
        f"SELECT request_fingerprint, {_POLICY_COLUMNS} FROM sla_policies WHERE request_id = $1", request_id
    )
    return (_policy(row), row["request_fingerprint"]) if row else None


async def next_position(conn: Connection) -> int:
    position: int = await conn.fetchval("SELECT coalesce(max(position), 0) + 10 FROM sla_policies")
    return position


async def insert_policy(conn: Connection, policy: Policy, request_id: str, fingerprint: str) -> Policy | None:
    """Insert, or None when a policy with ``request_id`` already exists."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO sla_policies (id, request_id, name, position, priorities, categories, customer_tiers,
            first_response, next_response, resolution, calendar_id, warning_percents, raise_priority,
            notify_supervisor, version, request_fingerprint)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING {_POLICY_COLUMNS}
        """,
        policy.id,
        request_id,
        *_policy_values(policy.spec),
        policy.version,
        fingerprint,
    )
    return _policy(row) if row else None


async def update_policy(conn: Connection, policy: Policy) -> None:
    await conn.execute(
        """
        UPDATE sla_policies SET name = $2, position = $3, priorities = $4, categories = $5, customer_tiers = $6,
            first_response = $7, next_response = $8, resolution = $9, calendar_id = $10, warning_percents = $11,
            raise_priority = $12, notify_supervisor = $13, version = $14, updated_at = now()
        WHERE id = $1
        """,
        policy.id,
        *_policy_values(policy.spec),
        policy.version,
    )


async def delete_policy(conn: Connection, policy_id: uuid.UUID) -> bool:
    status = await conn.execute("DELETE FROM sla_policies WHERE id = $1", policy_id)
    return bool(status != "DELETE 0")


# --- statistics ----------------------------------------------------------------------------------------


async def stats(
    conn: Connection,
    *,
    start: datetime | None,
    end: datetime,
    policy_id: uuid.UUID | None,
    queue: str,
    now: datetime,
) -> list[SlaStats]:
    """Per policy, queue and metric, over clocks that started in [start, end).

    Completed: fulfilled, or breached (a breach decides the outcome even before the clock stops). Met: fulfilled
    without breach. Percentiles: time to fulfil, paused time excluded, over fulfilled clocks.
    """
    rows = await conn.fetch(
        """
        WITH chosen AS (
            SELECT policy_id, queue, metric, state, breached_at, at_risk_at,
                   CASE WHEN state = 'fulfilled' THEN stopped_at - started_at - paused_total END AS took
            FROM sla_clocks
            WHERE ($1::timestamptz IS NULL OR started_at >= $1) AND started_at < $2
              AND ($3::uuid IS NULL OR policy_id = $3) AND ($4 = '' OR queue = $4)
        )
        SELECT policy_id, queue, metric,
               count(*) FILTER (WHERE state = 'fulfilled' OR breached_at IS NOT NULL) AS completed,
               count(*) FILTER (WHERE state = 'fulfilled' AND breached_at IS NULL) AS met,
               count(*) FILTER (WHERE breached_at IS NOT NULL) AS breached,
               count(*) FILTER (WHERE state = 'running' AND breached_at IS NULL AND at_risk_at <= $5) AS at_risk,
               percentile_disc(0.5) WITHIN GROUP (ORDER BY took) AS p50,
               percentile_disc(0.9) WITHIN GROUP (ORDER BY took) AS p90,
               percentile_disc(0.99) WITHIN GROUP (ORDER BY took) AS p99
        FROM chosen
        GROUP BY policy_id, queue, metric
        ORDER BY policy_id, queue, metric
        """,
        start,
        end,
        policy_id,
        queue,
        now,
    )
    return [
        SlaStats(
            policy_id=r["policy_id"],
            queue=r["queue"],
            metric=Metric(r["metric"]),
            completed=r["completed"],
            met=r["met"],
            breached=r["breached"],
            at_risk=r["at_risk"],
            p50=r["p50"],
            p90=r["p90"],
            p99=r["p99"],
        )
        for r in rows
    ]
