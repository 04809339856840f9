"""SLA clocks against a migrated Postgres: ticket events move clocks, durable timers warn and breach once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from google.protobuf.message import Message as ProtoMessage
from nats.js import JetStreamContext
from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import sla_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.envelope import Envelope
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.store import add_to_outbox
from services.kit.proto_enums import timestamp, to_proto
from services.routing import config_cache
from services.routing.sla import TIMER_HANDLERS, earliest_deadline, handle_ticket_event
from services.routing.sla import convert as sla_convert
from services.routing.sla import service as sla_service
from services.routing.sla import store as sla_store
from services.routing.sla.domain import Escalation, Metric, PolicyMatch, PolicySpec
from services.routing.sla.service import SlaAdmin
from services.routing.timers import TimerScheduler
from tests.faults.harness.invariants import timer_counts
from tests.integration.bus_fixtures import migrated_pool, stream_messages
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WARNING = "support.routing.v1.sla.warning"
BREACHED = "support.routing.v1.sla.breached"
FULFILLED = "support.routing.v1.sla.fulfilled"
MIN = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    yield pool
    await pool.close()


# --- ticketing's events, as ticketing publishes them ---------------------------------------------------


def _envelope(kind: str, ticket_id: uuid.UUID, payload: ProtoMessage, at: datetime) -> Envelope:
    return Envelope(
        type=f"support.ticketing.v1.ticket.{kind}",
        source="supportdesk/ticketing",
        subject=str(ticket_id),
        data=payload.SerializeToString(),
        time=at,
    )


def created(
    ticket_id: uuid.UUID, at: datetime, *, priority: str = "normal", category: str = "payment_failed"
) -> Envelope:
    ticket = ticket_pb2.Ticket(
        id=str(ticket_id),
        customer_id="c-1",
        category=to_proto(ticket_pb2.Category, category),
        priority=to_proto(common_pb2.Priority, priority),
        status=ticket_pb2.TICKET_STATUS_NEW,
        customer_tier="standard",
        version=1,
        create_time=timestamp(at),
    )
    return _envelope("created", ticket_id, ticketing_events.TicketCreated(ticket=ticket), at)


def message(ticket_id: uuid.UUID, version: int, author: str, at: datetime) -> Envelope:
    payload = ticketing_events.MessageAdded(
        message=ticket_pb2.Message(
            id=str(uuid.uuid4()),
            ticket_id=str(ticket_id),
            author=ticket_pb2.Actor(type=to_proto(ticket_pb2.ActorType, author), id=f"{author}-1"),
            visibility=ticket_pb2.MESSAGE_VISIBILITY_PUBLIC,
            body="hello",
            create_time=timestamp(at),
        ),
        ticket_version=version,
        customer_id="c-1",
    )
    return _envelope("message_added", ticket_id, payload, at)


def status(ticket_id: uuid.UUID, version: int, from_status: str, to_status: str, at: datetime) -> Envelope:
    payload = ticketing_events.TicketStatusChanged(
        ticket_id=str(ticket_id),
        from_status=to_proto(ticket_pb2.TicketStatus, from_status),
        to_status=to_proto(ticket_pb2.TicketStatus, to_status),
        ticket_version=version,
    )
    return _envelope("status_changed", ticket_id, payload, at)


def assigned(ticket_id: uuid.UUID, version: int, at: datetime) -> Envelope:
    payload = ticketing_events.TicketAssigned(ticket_id=str(ticket_id), assignee_id="a-1", ticket_version=version)
    return _envelope("assigned", ticket_id, payload, at)


# --- helpers -------------------------------------------------------------------------------------------


async def deliver(pool: asyncpg.Pool, *events: Envelope) -> None:
    """Each event in its own transaction, as routing's consumer applies it."""
    for event in events:
        async with pool.acquire() as conn, conn.transaction():
            await handle_ticket_event(conn, event, config_cache.OnDemand(conn).sla_rules)


async def db_now(pool: asyncpg.Pool) -> datetime:
    now: datetime = await pool.fetchval("SELECT now()")
    return now


async def sla_events(pool: asyncpg.Pool, event_type: str, ticket_id: uuid.UUID | None = None) -> list[Any]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1 AND ($2::text IS NULL OR subject = $2) ORDER BY id",
        event_type,
        str(ticket_id) if ticket_id else None,
    )
    decode: dict[str, Any] = {
        WARNING: routing_events.SlaWarning,
        BREACHED: routing_events.SlaBreached,
        FULFILLED: routing_events.SlaFulfilled,
    }
    return [decode[event_type].FromString(bytes(r["payload"])) for r in rows]


async def clocks(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[tuple[str, int], asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM sla_clocks WHERE ticket_id = $1", ticket_id)
    return {(r["metric"], r["cycle"]): r for r in rows}


async def ticket_timers(pool: asyncpg.Pool, ticket_id: uuid.UUID) -> dict[tuple[str, str], asyncpg.Record]:
    rows = await pool.fetch("SELECT * FROM timers WHERE starts_with(key, $1)", f"{ticket_id}:")
    return {(r["kind"], r["key"].removeprefix(f"{ticket_id}:")): r for r in rows}


def scheduler(pool: asyncpg.Pool) -> asyncio.Task[None]:
    return asyncio.create_task(TimerScheduler(pool, TIMER_HANDLERS).run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def fast_policy(pool: asyncpg.Pool, target: timedelta = SECOND) -> uuid.UUID:
    """A first policy for beta_access tickets with a short first-response target."""
    policy, _ = await SlaAdmin(pool).create_policy(
        "fast-policy",
        PolicySpec(
            name="fast",
            position=1,
            match=PolicyMatch(categories=("beta_access",)),
            targets={Metric.FIRST_RESPONSE: target},
            warning_percents=(50, 80),
            escalation=Escalation(raise_priority=True, notify_supervisor=True),
        ),
    )
    return policy.id


# --- tests ---------------------------------------------------------------------------------------------


async def test_a_created_ticket_runs_clocks_with_the_default_targets_and_timers(pool: asyncpg.Pool) -> None:
    normal, urgent = uuid.uuid4(), uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, created(normal, at), created(urgent, at, priority="urgent", category="account_frozen"))

    normal_clocks = await clocks(pool, normal)
    assert set(normal_clocks) == {("first_response", 1), ("resolution", 1)}
    assert normal_clocks[("first_response", 1)]["deadline"] == at + 5 * MIN
    assert normal_clocks[("resolution", 1)]["deadline"] == at + 24 * 60 * MIN
    assert normal_clocks[("first_response", 1)]["queue"] == "payments"
    assert all(c["state"] == "running" for c in normal_clocks.values())
    urgent_clocks = await clocks(pool, urgent)
    assert urgent_clocks[("first_response", 1)]["deadline"] == at + 2 * MIN
    assert urgent_clocks[("resolution", 1)]["deadline"] == at + 4 * 60 * MIN

    armed = await ticket_timers(pool, urgent)
    assert {k: r["due_at"] for k, r in armed.items() if k[1].startswith("first_response")} == {
        ("sla.warning", "first_response:1:50"): at + 60 * SECOND,
        ("sla.warning", "first_response:1:80"): at + 96 * SECOND,
        ("sla.breach", "first_response:1"): at + 2 * MIN,
    }
    async with pool.acquire() as conn:
        assert await earliest_deadline(conn, urgent) == at + 2 * MIN
        assert await earliest_deadline(conn, uuid.uuid4()) is None


async def test_an_agent_reply_fulfils_first_response_and_cancels_its_timers(pool: asyncpg.Pool) -> None:
    ticket = uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, created(ticket, at), message(ticket, 2, "customer", at + SECOND))
    await deliver(pool, message(ticket, 3, "system", at + 2 * SECOND))
    assert await sla_events(pool, FULFILLED) == []
    await deliver(pool, message(ticket, 4, "agent", at + 30 * SECOND))

    [fulfilled] = await sla_events(pool, FULFILLED, ticket)
    assert fulfilled.clock.metric == sla_pb2.SLA_METRIC_FIRST_RESPONSE
    assert fulfilled.clock.state == sla_pb2.SLA_CLOCK_STATE_FULFILLED
    assert not fulfilled.clock.breached
    assert fulfilled.clock.stop_time.ToDatetime().timestamp() == pytest.approx((at + 30 * SECOND).timestamp())
    armed = await ticket_timers(pool, ticket)
    for key in ("first_response:1:50", "first_response:1:80"):
        assert armed[("sla.warning", key)]["cancelled_at"] is not None
    assert armed[("sla.breach", "first_response:1")]["cancelled_at"] is not None
    assert armed[("sla.breach", "resolution:1")]["cancelled_at"] is None
    async with pool.acquire() as conn:
        assert await earliest_deadline(conn, ticket) == at + 24 * 60 * MIN  # only resolution still runs


async def test_a_short_target_warns_at_50_and_80_percent_then_breaches_each_once(pool: asyncpg.Pool) -> None:
    policy_id = await fast_policy(pool)
    ticket = uuid.uuid4()
    running = scheduler(pool)
    try:
        await deliver(pool, created(ticket, await db_now(pool), category="beta_access"))
        await eventually(lambda: _has(pool, BREACHED, ticket), what="the breach")
    finally:
        await stop(running)

    warnings = await sla_events(pool, WARNING, ticket)
    assert [w.percent for w in warnings] == [50, 80]
    [breached] = await sla_events(pool, BREACHED, ticket)
    assert breached.clock.policy_id == str(policy_id)
    assert breached.clock.breached
    assert breached.clock.state == sla_pb2.SLA_CLOCK_STATE_BREACHED
    assert (breached.escalation.raise_priority, breached.escalation.notify_supervisor) == (True, True)
    order = [r["event_type"] for r in await pool.fetch("SELECT event_type FROM outbox ORDER BY id")]
    assert order == [WARNING, WARNING, BREACHED]
    fired = await pool.fetch("SELECT lateness FROM timers WHERE fired_at IS NOT NULL")
    assert len(fired) == 3
    assert all(r["lateness"] >= timedelta(0) for r in fired), "a timer fired early"

    # A reply after the breach: fulfilled, met late; nothing is announced twice.
    await deliver(pool, message(ticket, 2, "agent", await db_now(pool)))
    [late] = await sla_events(pool, FULFILLED, ticket)
    assert late.clock.breached
    assert len(await sla_events(pool, BREACHED, ticket)) == 1
    assert len(await sla_events(pool, WARNING, ticket)) == 2


async def _has(pool: asyncpg.Pool, event_type: str, ticket_id: uuid.UUID, count: int = 1) -> bool:
    return len(await sla_events(pool, event_type, ticket_id)) >= count


async def test_pending_pauses_and_resuming_credits_the_paused_time(pool: asyncpg.Pool) -> None:
    ticket = uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, created(ticket, at), status(ticket, 2, "new", "pending", at + 10 * SECOND))

    paused = await clocks(pool, ticket)
    assert {c["state"] for c in paused.values()} == {"paused"}
    armed = await ticket_timers(pool, ticket)
    assert all(r["cancelled_at"] is not None for r in armed.values()), "a paused clock keeps no timer"
    [clock] = (await SlaAdmin(pool).ticket_clocks(str(ticket)))[:1]
    assert clock.pause_reason == "pending"
    async with pool.acquire() as conn:
        assert await earliest_deadline(conn, ticket) is None

    await deliver(pool, status(ticket, 3, "pending", "open", at + 70 * SECOND))
    resumed = await clocks(pool, ticket)
    first = resumed[("first_response", 1)]
    assert first["state"] == "running"
    assert first["paused_total"] == 60 * SECOND
    assert first["deadline"] == at + 5 * MIN + 60 * SECOND
    assert resumed[("resolution", 1)]["deadline"] == at + 24 * 60 * MIN + 60 * SECOND
    armed = await ticket_timers(pool, ticket)
    breach = armed[("sla.breach", "first_response:1")]
    assert breach["cancelled_at"] is None
    assert breach["due_at"] == at + 5 * MIN + 60 * SECOND
    assert armed[("sla.warning", "first_response:1:50")]["due_at"] == at + 150 * SECOND + 60 * SECOND


async def test_duplicate_stale_and_reordered_events_are_applied_once_in_order(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = uuid.uuid4()
    at = await db_now(pool)
    first = created(ticket, at)
    # The same event again (new event id: the inbox cannot catch it), then a stale one.
    await deliver(pool, first, created(ticket, at + SECOND))
    await deliver(pool, message(ticket, 2, "agent", at + 2 * SECOND))
    await deliver(pool, message(ticket, 2, "agent", at + 3 * SECOND), created(ticket, at))
    assert set(await clocks(pool, ticket)) == {("first_response", 1), ("resolution", 1)}
    assert (await clocks(pool, ticket))[("first_response", 1)]["deadline"] == at + 5 * MIN
    assert len(await sla_events(pool, FULFILLED, ticket)) == 1
    assert await pool.fetchval("SELECT count(*) FROM timers WHERE starts_with(key, $1)", f"{ticket}:") == 6

    # Version 4 (pending) arrives before version 3 (the customer's message): it waits, then both apply in order.
    await deliver(pool, status(ticket, 4, "open", "pending", at + 20 * SECOND))
    assert ("next_response", 1) not in await clocks(pool, ticket)
    assert (await clocks(pool, ticket))[("resolution", 1)]["state"] == "running"
    await deliver(pool, message(ticket, 3, "customer", at + 10 * SECOND))
    applied = await clocks(pool, ticket)
    assert applied[("next_response", 1)]["started_at"] == at + 10 * SECOND
    assert applied[("next_response", 1)]["state"] == "paused"
    assert applied[("resolution", 1)]["state"] == "paused"
    assert await pool.fetchval("SELECT applied_version FROM sla_tickets WHERE ticket_id = $1", ticket) == 4
    await deliver(pool, message(ticket, 3, "customer", at + 11 * SECOND))  # stale now
    assert ("next_response", 2) not in await clocks(pool, ticket)

    # Version 5 never comes: after the gap timer, version 6 (back to open) is applied anyway.
    monkeypatch.setattr(sla_service, "GAP_WAIT", timedelta(milliseconds=200))
    running = scheduler(pool)
    try:
        await deliver(pool, status(ticket, 6, "pending", "open", at + 40 * SECOND))
        await eventually(lambda: _applied_version(pool, ticket, 6), what="the event after the gap")
    finally:
        await stop(running)
    resumed = await clocks(pool, ticket)
    assert resumed[("next_response", 1)]["state"] == "running"
    assert resumed[("next_response", 1)]["deadline"] == at + 10 * SECOND + 10 * MIN + 20 * SECOND
    assert await pool.fetchval("SELECT count(*) FROM sla_event_buffer") == 0
    await deliver(pool, assigned(ticket, 5, at + 30 * SECOND))  # the missing one, too late: ignored
    assert await _applied_version(pool, ticket, 6)


async def _applied_version(pool: asyncpg.Pool, ticket_id: uuid.UUID, version: int) -> bool:
    applied = await pool.fetchval("SELECT applied_version FROM sla_tickets WHERE ticket_id = $1", ticket_id)
    return bool(applied == version)


async def test_events_before_ticket_created_wait_for_it(pool: asyncpg.Pool) -> None:
    ticket = uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, message(ticket, 2, "agent", at + SECOND))
    assert await clocks(pool, ticket) == {}
    await deliver(pool, created(ticket, at))
    state = await clocks(pool, ticket)
    assert state[("first_response", 1)]["state"] == "fulfilled"
    assert state[("resolution", 1)]["state"] == "running"


async def test_timers_due_while_no_scheduler_ran_fire_once_on_restart(pool: asyncpg.Pool) -> None:
    await fast_policy(pool)
    ticket = uuid.uuid4()
    await deliver(pool, created(ticket, await db_now(pool), category="beta_access"))
    deadline = (await clocks(pool, ticket))[("first_response", 1)]["deadline"]
    await eventually(lambda: _passed(pool, deadline + SECOND), what="the deadline to pass while nothing runs")

    running = [scheduler(pool), scheduler(pool)]  # two replicas come back at once
    try:
        await eventually(lambda: _has(pool, BREACHED, ticket), what="the late breach")
        await eventually(lambda: _has(pool, WARNING, ticket, 2), what="the late warnings")
    finally:
        for task in running:
            await stop(task)
    assert [w.percent for w in await sla_events(pool, WARNING, ticket)] == [50, 80]
    assert len(await sla_events(pool, BREACHED, ticket)) == 1
    breach = (await ticket_timers(pool, ticket))[("sla.breach", "first_response:1")]
    assert breach["lateness"] >= SECOND
    clock = (await clocks(pool, ticket))[("first_response", 1)]
    assert clock["breached_at"] == deadline
    assert clock["breach_recorded_at"] - clock["breached_at"] >= SECOND


async def _passed(pool: asyncpg.Pool, instant: datetime) -> bool:
    return await db_now(pool) > instant


async def test_sla_events_reach_the_routing_stream_with_cloudevents_headers(
    pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    ticket = uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, created(ticket, at), message(ticket, 2, "supervisor", at + SECOND))
    relay = asyncio.create_task(OutboxRelay(pool, js, "routing").run())
    try:
        await eventually(lambda: _stream_has(js, 1), what="the fulfilled event on the stream")
    finally:
        await stop(relay)
    [msg] = await stream_messages(js, "ROUTING")
    headers = msg.headers or {}
    assert msg.subject == FULFILLED
    assert headers["ce-type"] == FULFILLED
    assert headers["ce-source"] == "supportdesk/routing"
    assert headers["ce-subject"] == str(ticket)
    assert routing_events.SlaFulfilled.FromString(msg.data).clock.ticket_id == str(ticket)


async def _stream_has(js: JetStreamContext, count: int) -> bool:
    return len(await stream_messages(js, "ROUTING")) >= count


async def test_later_events_do_not_push_back_the_wait_for_a_missing_version(pool: asyncpg.Pool) -> None:
    ticket = uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, created(ticket, at), message(ticket, 3, "customer", at + SECOND))  # version 2 is missing
    gap = await pool.fetchrow("SELECT due_at, armed_at FROM timers WHERE kind = 'sla.gap' AND key = $1", str(ticket))
    assert gap is not None
    await deliver(pool, message(ticket, 4, "customer", at + 2 * SECOND))
    assert await pool.fetchval("SELECT due_at FROM timers WHERE kind = 'sla.gap'") == gap["due_at"]
    await deliver(pool, assigned(ticket, 2, at + SECOND))  # the gap fills: everything applies, the wait ends
    assert await _applied_version(pool, ticket, 4)
    assert await pool.fetchval("SELECT cancelled_at IS NOT NULL FROM timers WHERE kind = 'sla.gap'")


async def test_a_timer_that_finds_its_ticket_busy_is_retried_and_fires_once(pool: asyncpg.Pool) -> None:
    await fast_policy(pool, target=timedelta(milliseconds=400))
    ticket = uuid.uuid4()
    await deliver(pool, created(ticket, await db_now(pool), category="beta_access"))  # no scheduler runs yet
    async with pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        # As an event being applied does: the ticket's lock, held while its timers come due.
        await holder.execute("SELECT pg_advisory_xact_lock(hashtextextended('sla:' || $1::uuid::text, 0))", ticket)
        running = scheduler(pool)
        try:
            await eventually(lambda: _retried(pool), what="a timer to find the ticket busy")
            assert await sla_events(pool, WARNING, ticket) == []
            await transaction.commit()
            await eventually(lambda: _has(pool, BREACHED, ticket), what="the breach after the lock is released")
        finally:
            await stop(running)
    # Whatever order the retried timers fired in, the warnings went out once each, in order, before the breach.
    order = [
        (r["event_type"], r["payload"]) for r in await pool.fetch("SELECT event_type, payload FROM outbox ORDER BY id")
    ]
    assert [t for t, _ in order] == [WARNING, WARNING, BREACHED]
    assert [routing_events.SlaWarning.FromString(bytes(p)).percent for t, p in order if t == WARNING] == [50, 80]


async def _retried(pool: asyncpg.Pool) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM timers WHERE attempts > 0 AND error LIKE '%TicketBusy%'"))


async def test_a_clock_stopped_late_while_its_timers_retry_announces_the_breach_once(pool: asyncpg.Pool) -> None:
    """An event holds the ticket past the deadline (a frozen consumer): the timers find it busy and are moved to
    their retry, then the event stops the clock late, announces the breach itself and cancels them."""
    await fast_policy(pool, target=timedelta(milliseconds=300))
    ticket = uuid.uuid4()
    await deliver(pool, created(ticket, await db_now(pool), category="beta_access"))
    deadline = (await clocks(pool, ticket))[("first_response", 1)]["deadline"]
    await eventually(lambda: _passed(pool, deadline), what="the deadline to pass while nothing runs")
    timer_scheduler = TimerScheduler(pool, TIMER_HANDLERS)
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('sla:' || $1::uuid::text, 0))", ticket)
        assert await timer_scheduler.fire_due() == 3  # both warnings and the breach: each finds the ticket busy
        replied_at = await db_now(pool)
        await handle_ticket_event(conn, message(ticket, 2, "agent", replied_at), config_cache.OnDemand(conn).sla_rules)
        await transaction.commit()

    armed = await ticket_timers(pool, ticket)
    breach = armed[("sla.breach", "first_response:1")]
    assert (breach["attempts"], breach["cancelled_at"] is not None, breach["fired_at"]) == (1, True, None)
    assert breach["due_at"] > replied_at  # moved by the retry: "due" is no longer when the target passed
    assert len(await sla_events(pool, BREACHED, ticket)) == 1
    clock = (await clocks(pool, ticket))[("first_response", 1)]
    # Met late: the reply noticed the breach and announced it.
    assert (clock["state"], clock["breached_at"], clock["breach_recorded_at"]) == ("fulfilled", deadline, replied_at)
    assert await sla_events(pool, WARNING, ticket) == []  # a clock that stops announces no warning
    retry_at = max(r["due_at"] for r in armed.values())
    await eventually(lambda: _passed(pool, retry_at), what="the retries to come due")
    assert await timer_scheduler.fire_due() == 0  # cancelled timers are never claimed again
    assert len(await sla_events(pool, BREACHED, ticket)) == 1
    # The fault suite's view of the same rows: one announcement, by a clock that reached its target.
    async with pool.acquire() as conn:
        counts = await timer_counts(conn)
    assert (counts["cancelled_fired"], counts["timers_fired_twice"], counts["timers_early"]) == (0, 0, 0)


async def test_the_fault_suite_counts_a_breach_announced_for_a_clock_met_in_time(pool: asyncpg.Pool) -> None:
    """The other side of the check above: a reply in time cancels the breach timer, so any breach announced for
    that clock (as a stale replica firing the cancelled timer would) is counted."""
    await fast_policy(pool, target=MIN)
    ticket = uuid.uuid4()
    at = await db_now(pool)
    await deliver(pool, created(ticket, at, category="beta_access"), message(ticket, 2, "agent", at + SECOND))
    async with pool.acquire() as conn:
        assert (await timer_counts(conn))["cancelled_fired"] == 0
        [clock] = await sla_store.ticket_clocks(conn, ticket)
        await add_to_outbox(conn, [sla_convert.breached_event(clock)])
        assert (await timer_counts(conn))["cancelled_fired"] == 1
