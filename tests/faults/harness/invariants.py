"""Convergence and the invariants, each reported as a number; the scenario asserts the numbers.

The checks read the services' tables directly (read-only) and JetStream's consumer state: the test is an
observer with more access than any client, which is what lets it count what a client cannot see.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import asyncpg
import nats
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import sla_pb2

from tests.faults.harness.load import Load
from tests.faults.harness.system import System

CONVERGENCE_S = 60.0
# Diagnostics of the last check: a few of the requests behind a non-zero count.
EXAMPLES: dict[str, list[object]] = {}
# What was still to do at each look while converging.
TRACE: list[tuple[float, dict[str, object]]] = []
SLA_TYPES = {
    "support.routing.v1.sla.warning": routing_events.SlaWarning,
    "support.routing.v1.sla.breached": routing_events.SlaBreached,
}


@dataclass
class Backlog:
    outbox: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, tuple[int, int]] = field(default_factory=dict)  # durable -> (pending, ack pending)
    due_timers: int = 0
    due_deliveries: int = 0
    unrouted: int = 0
    # stream -> last sequence: two empty looks with the same sequences mean nothing moved in between.
    streams: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return (
            not any(self.outbox.values())
            and not any(p or a for p, a in self.consumers.values())
            and self.due_timers == 0
            and self.due_deliveries == 0
            and self.unrouted == 0
        )


async def backlog(system: System, load: Load) -> Backlog:
    found = Backlog()
    async with system.db() as conn:
        for schema in await _schemas_with(conn, "outbox"):
            found.outbox[schema] = await conn.fetchval(
                f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'  # noqa: S608 - catalog names
            )
        found.due_timers = await conn.fetchval(
            "SELECT count(*) FROM routing.timers WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= now()"
        )
        found.due_deliveries = await conn.fetchval(
            "SELECT count(*) FROM notify.deliveries "
            "WHERE status = 'delivering' OR (status = 'pending' AND next_attempt_at <= now())"
        )
        created = list(_ok_ticket_ids(load))
        found.unrouted = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::uuid[]) AS t(id) "
            "WHERE NOT EXISTS (SELECT FROM routing.queue_entries q WHERE q.ticket_id = t.id)",
            created,
        )
    nc = await nats.connect(system.nats.url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for stream in await js.streams_info():
            found.streams[stream.config.name] = stream.state.last_seq
            for consumer in await js.consumers_info(stream.config.name):
                found.consumers[consumer.name] = (consumer.num_pending, consumer.num_ack_pending)
    finally:
        await nc.close()
    return found


async def converge(system: System, load: Load, timeout: float = CONVERGENCE_S) -> tuple[float, Backlog]:  # noqa: ASYNC109
    """Seconds until nothing is left to do anywhere; the last backlog seen (non-empty means it never was).

    One empty look is not enough: its parts are read one after another, so an event can pass from a part not yet
    read to one already read. Two empty looks with no stream having moved in between leave no such gap.
    """
    started = time.monotonic()
    last = Backlog()
    TRACE.clear()
    while time.monotonic() - started < timeout:
        previous = last
        try:
            last = await backlog(system, load)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, nats.errors.Error, TimeoutError):
            last = Backlog(unrouted=-1)
        TRACE.append((round(time.monotonic() - started, 1), vars(last)))
        if last.empty and previous.empty and previous.streams == last.streams and last.streams:
            return time.monotonic() - started, last
        await asyncio.sleep(0.2)
    return time.monotonic() - started, last


class VersionWatch:
    """Samples routing's projections while the scenario runs: a ticket's version there must never go down."""

    def __init__(self, system: System) -> None:
        self._system = system
        self.seen: dict[tuple[str, str], int] = {}
        self.regressions = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            try:
                async with self._system.db() as conn:
                    while True:
                        await self.sample(conn)
                        await asyncio.sleep(0.25)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                await asyncio.sleep(0.25)  # Postgres is down: nothing to sample

    async def sample(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT 'queue' AS p, ticket_id::text AS t, ticket_version AS v FROM routing.queue_entries "
            "UNION ALL SELECT 'sla', ticket_id::text, applied_version FROM routing.sla_tickets"
        )
        for row in rows:
            key = (row["p"], row["t"])
            if row["v"] < self.seen.get(key, 0):
                self.regressions += 1
            self.seen[key] = max(row["v"], self.seen.get(key, 0))
        self.samples += 1


async def invariants(system: System, load: Load, watch: VersionWatch) -> dict[str, int]:
    async with system.db() as conn:
        await watch.sample(conn)
        return {
            **await _tickets(conn, load),
            **await _messages(conn, load),
            **await _assignments(conn, load),
            **await timer_counts(conn),
            **await _projections(conn),
            "version_regressions": watch.regressions,
            "dead_letters": await _dead_letters(conn),
        }


async def _tickets(conn: asyncpg.Connection, load: Load) -> dict[str, int]:
    creates = [r for r in load.requests if r.op == "create_ticket"]
    ok = {f"{quote(r.actor, safe='')}:{r.key}": r.result_id for r in creates if r.outcome == "ok"}
    rows = await conn.fetch("SELECT id::text AS id, request_id FROM ticketing.tickets")
    stored = {row["request_id"]: row["id"] for row in rows}
    routed = {
        row["id"]
        for row in await conn.fetch(
            "SELECT q.ticket_id::text AS id FROM routing.queue_entries q JOIN routing.sla_tickets s USING (ticket_id)"
        )
    }
    lost = [request_id for request_id, ticket in ok.items() if stored.get(request_id) != ticket or ticket not in routed]
    unexpected = [request_id for request_id, ticket in stored.items() if ok.get(request_id) != ticket]
    by_key = {f"{quote(r.actor, safe='')}:{r.key}": r for r in creates}
    EXAMPLES["lost"] = [vars(by_key[k]) for k in lost[:3]]
    EXAMPLES["unexpected"] = [vars(by_key[k]) if k in by_key else k for k in unexpected[:3]]
    return {
        "tickets_ok": len(ok),
        "tickets_failed": sum(r.outcome == "failed" for r in creates),
        "unknown_resolved": sum(r.retries > 0 and r.outcome != "unknown" for r in creates),
        "unknown_left": sum(r.outcome == "unknown" for r in creates),
        "lost": len(lost),
        "unexpected": len(unexpected),
    }


async def _messages(conn: asyncpg.Connection, load: Load) -> dict[str, int]:
    adds = [r for r in load.requests if r.op == "add_message"]
    ok = {(r.target, f"{quote(r.actor, safe='')}:{r.key}"): r.result_id for r in adds if r.outcome == "ok"}
    rows = await conn.fetch(
        "SELECT id::text AS id, ticket_id::text AS ticket, request_id FROM ticketing.messages "
        "WHERE author_type <> 'system'"
    )
    stored = {(row["ticket"], row["request_id"]): row["id"] for row in rows}
    by_key = {(r.target, f"{quote(r.actor, safe='')}:{r.key}"): r for r in adds}
    EXAMPLES["messages_unexpected"] = [
        vars(by_key[k]) if k in by_key else k for k, m in stored.items() if ok.get(k) != m
    ][:3]
    return {
        "messages_ok": len(ok),
        "messages_lost": sum(1 for k, m in ok.items() if stored.get(k) != m),
        "messages_unexpected": sum(1 for k, m in stored.items() if ok.get(k) != m),
        "messages_unknown_left": sum(r.outcome == "unknown" for r in adds),
    }


async def _assignments(conn: asyncpg.Connection, load: Load) -> dict[str, int]:
    # Held by two agents at once: two assignments of a ticket whose holding intervals overlap (the database
    # refuses it, which is what this counts on).
    overlapping = await conn.fetchval(
        """
        SELECT count(*) FROM routing.assignments a JOIN routing.assignments b
            ON a.ticket_id = b.ticket_id AND a.id < b.id
           AND b.assigned_at < coalesce(a.released_at, 'infinity')
           AND a.assigned_at < coalesce(b.released_at, 'infinity')
        """
    )
    # An accept the client was told succeeded must be an assignment to that agent.
    held = {
        (r["ticket"], r["agent"])
        for r in await conn.fetch(
            "SELECT ticket_id::text AS ticket, agent_id AS agent FROM routing.assignments WHERE via = 'offer'"
        )
    }
    phantom = [r for r in load.requests if r.op == "accept" and r.outcome == "ok" and (r.target, r.actor) not in held]
    EXAMPLES["phantom_accepts"] = [vars(r) for r in phantom[:3]]
    over = await conn.fetchval(
        """
        SELECT count(*) FROM routing.agents a
        WHERE a.active > a.capacity
           OR a.active <> (SELECT count(*) FROM routing.offers o WHERE o.agent_id = a.id AND o.state = 'pending')
                        + (SELECT count(*) FROM routing.assignments s WHERE s.agent_id = a.id AND s.released_at IS NULL)
        """
    )
    mismatch = await conn.fetchval(
        """
        SELECT count(*) FROM routing.assignments s JOIN ticketing.tickets t ON t.id = s.ticket_id
        WHERE s.released_at IS NULL AND t.assignee_id <> s.agent_id AND s.assigned_at < now() - interval '5 seconds'
        """
    )
    return {
        "assignments": await conn.fetchval("SELECT count(*) FROM routing.assignments"),
        "accepts_ok": sum(r.op == "accept" and r.outcome == "ok" for r in load.requests),
        "double_assignment": overlapping + len(phantom),
        "over_capacity": over,
        "assignee_mismatch": mismatch,
    }


async def timer_counts(conn: asyncpg.Connection) -> dict[str, int]:
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE kind LIKE 'sla.%') AS armed,
               count(*) FILTER (WHERE fired_at IS NOT NULL) AS fired,
               count(*) FILTER (WHERE fired_at < due_at) AS early,
               count(*) FILTER (WHERE cancelled_at IS NOT NULL) AS cancelled,
               count(*) FILTER (
                   WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at < now() - interval '5 seconds'
               ) AS missed
        FROM routing.timers
        """
    )
    # What the fired SLA timers announced, from the outbox (the source of truth; the stream may hold duplicates),
    # keyed by clock (ticket, metric, start of the cycle) and percent (0: the breach).
    events: Counter[tuple[str, str, datetime, int]] = Counter()
    for ev in await conn.fetch(
        "SELECT event_type, payload FROM routing.outbox WHERE event_type = ANY($1::text[])", list(SLA_TYPES)
    ):
        message = SLA_TYPES[ev["event_type"]].FromString(bytes(ev["payload"]))
        clock = message.clock
        metric = sla_pb2.SlaMetric.Name(clock.metric).removeprefix("SLA_METRIC_").lower()
        start = clock.start_time.ToDatetime(tzinfo=UTC)
        events[(clock.ticket_id, metric, start, getattr(message, "percent", 0))] += 1
    # A timer cancelled because its clock stopped or paused before reaching the timer's share of the target must
    # have announced nothing. "Before" is measured on the clock (running time when it last ran), not on the
    # timer's due_at: a handler that found the ticket busy moved that to its retry, and a clock stopped after its
    # deadline meanwhile announced its own breach (met late) and cancelled the timer, which is one announcement.
    # Calendar time, as the suite's policy has no business hours. Keys: <ticket>:<metric>:<cycle>[:<percent>].
    cancelled = await conn.fetch(
        """
        SELECT t.key, c.started_at, c.target,
               coalesce(c.stopped_at, CASE WHEN c.state = 'paused' THEN (c.pauses -> -1 ->> 'start')::timestamptz END,
                        now()) - c.started_at - c.paused_total AS ran
        FROM routing.timers t
        JOIN routing.sla_clocks c ON c.ticket_id::text = split_part(t.key, ':', 1)
             AND c.metric = split_part(t.key, ':', 2) AND c.cycle::text = split_part(t.key, ':', 3)
        WHERE t.kind LIKE 'sla.%' AND t.cancelled_at IS NOT NULL AND t.fired_at IS NULL
        """
    )
    announced_cancelled = 0
    for timer in cancelled:
        ticket, metric, _, *rest = timer["key"].split(":")
        percent = int(rest[0]) if rest else 0  # 0: the breach, at the whole target
        if timer["ran"] < timer["target"] * (percent or 100) / 100:
            announced_cancelled += events[(ticket, metric, timer["started_at"], percent)] > 0
    return {
        "sla_timers_armed": row["armed"],
        "timers_fired": row["fired"],
        "timers_early": row["early"],
        "timers_cancelled": row["cancelled"],
        "timers_missed": row["missed"],
        "sla_events": sum(events.values()),
        "timers_fired_twice": sum(n - 1 for n in events.values() if n > 1),
        "cancelled_fired": announced_cancelled,
    }


async def _projections(conn: asyncpg.Connection) -> dict[str, int]:
    # SLA timers go on firing after convergence (a breach raises the priority, a new version): a change younger
    # than a few seconds may rightly still be in flight; an older one that is not applied is a stale projection.
    behind = await conn.fetchval(
        """
        SELECT count(*) FROM ticketing.tickets t
        LEFT JOIN routing.sla_tickets s ON s.ticket_id = t.id
        LEFT JOIN routing.queue_entries q ON q.ticket_id = t.id
        WHERE (s.applied_version IS DISTINCT FROM t.version AND t.updated_at < now() - interval '5 seconds')
           OR q.ticket_version > t.version
        """
    )
    return {"projection_behind": behind}


async def _dead_letters(conn: asyncpg.Connection) -> int:
    total = 0
    for schema in await _schemas_with(conn, "dead_letters"):
        total += await conn.fetchval(f'SELECT count(*) FROM "{schema}".dead_letters')  # noqa: S608
    return total


async def dead_letter_ids(conn: asyncpg.Connection) -> list[tuple[str, str | None, int]]:
    rows: list[tuple[str, str | None, int]] = []
    for schema in await _schemas_with(conn, "dead_letters"):
        rows += [
            (r["consumer"], r["event_id"], r["deliveries"])
            for r in await conn.fetch(f'SELECT consumer, event_id, deliveries FROM "{schema}".dead_letters')  # noqa: S608
        ]
    return rows


async def _schemas_with(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = $1 ORDER BY 1", table
    )
    return [r["table_schema"] for r in rows]


def _ok_ticket_ids(load: Load) -> list[str]:
    return [r.result_id for r in load.requests if r.op == "create_ticket" and r.outcome == "ok"]
