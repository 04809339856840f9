"""Routing's one consumer of ticketing events and its timer handlers, with the SLA clocks' beside them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

import asyncpg

from services.kit.bus.consumer import Delivered, Together
from services.kit.bus.envelope import Envelope
from services.kit.bus.streams import TICKETING, ConsumerSpec
from services.kit.db import Connection
from services.routing import config_cache, convert, dispatch, entries, offers, sla, tickets
from services.routing.timers import BatchHandler, Timer, TimerHandler, TimerScheduler

TICKET_EVENTS = ConsumerSpec(TICKETING, "routing-ticket-events", (convert.TICKETING_EVENTS,))
# One timer per transaction: a batch's handlers share a transaction, and locks one handler took would be held
# while the next waits for another row, which is how deadlocks between the scheduler and requests start.
TIMER_BATCH = 1
# Claiming loops per replica: one timer per transaction makes a burst (a backlog's relaxation steps coming due
# together) wait one transaction at a time; four work through it together without holding each other up.
TIMER_LOOPS = 4


async def on_ticket_event(conn: Connection, event: Envelope) -> None:
    """Inside the one inbox transaction: the SLA clocks first (the queue order reads their deadline), then
    routing itself, both with the configuration as of this transaction (read only if one of them needs it)."""
    config = config_cache.OnDemand(conn)
    opened = await sla.handle_ticket_event(conn, event, config.sla_rules)
    await tickets.handle_ticket_event(conn, event, config, opened)


async def on_tickets_created(conn: Connection, batch: Sequence[Delivered]) -> Collection[str]:
    """``on_ticket_event`` for many ``ticket.created`` events applied together, in one transaction (all of them:
    none is left)."""
    config = config_cache.OnDemand(conn)
    opened = await sla.open_tickets(conn, [d.envelope for d in batch], config.sla_rules)
    created = [(d, convert.created_ticket(d.envelope.data), opened[d.envelope.id]) for d in batch]
    await tickets.on_created_many(conn, created, await config.get())
    return ()


# A burst of new tickets (the busiest path) is applied a fetched batch at a time.
TICKETS_CREATED_TOGETHER = Together(frozenset({convert.TICKET_CREATED}), on_tickets_created)


async def _recheck_ticket(conn: Connection, timer: Timer) -> None:
    await dispatch.recheck_ticket(conn, timer, datetime.now(UTC))


async def _recheck_agent(conn: Connection, timer: Timer) -> None:
    await dispatch.recheck_agent(conn, timer, datetime.now(UTC))


ROUTING_TIMER_HANDLERS: Mapping[str, TimerHandler] = {
    entries.OFFER_EXPIRE: offers.on_expire,
    entries.RELAX: tickets.on_relax,
    dispatch.RECHECK_TICKET: _recheck_ticket,
    dispatch.RECHECK_AGENT: _recheck_agent,
}


def timer_handlers() -> dict[str, TimerHandler]:
    clash = set(ROUTING_TIMER_HANDLERS) & set(sla.TIMER_HANDLERS)
    if clash:
        raise RuntimeError(f"timer kinds handled twice: {sorted(clash)}")
    return {**ROUTING_TIMER_HANDLERS, **sla.TIMER_HANDLERS}


# Kinds that come due in bursts (every ticket queued while no agent fits arms a re-check, and a backlog's steps
# relax together) and mostly find little to do: handled in batches first.
TIMER_BATCHES: Mapping[str, BatchHandler] = {
    dispatch.RECHECK_TICKET: dispatch.recheck_tickets,
    entries.RELAX: tickets.relax_many,
}


def scheduler(pool: asyncpg.Pool) -> TimerScheduler:
    return TimerScheduler(pool, timer_handlers(), batch_size=TIMER_BATCH, loops=TIMER_LOOPS, batched=TIMER_BATCHES)
