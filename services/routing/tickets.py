"""Tickets entering and moving through routing: ticketing's events, step relaxation, and transfers."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from services.kit import wake
from services.kit.bus.consumer import Delivered
from services.kit.bus.envelope import Envelope
from services.kit.db import Connection
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.routing import (
    agent_store,
    config_store,
    convert,
    dispatch,
    entries,
    matching,
    offer_store,
    rules,
    sla,
    store,
    timers,
)
from services.routing.config_cache import Config, OnDemand
from services.routing.domain import EntryState, Presence, QueueEntry, TicketFacts
from services.routing.events import event, publish
from services.routing.timers import Timer

# Statuses in which nobody needs to work on the ticket: it leaves the queue and frees its agent.
PARKING_STATUSES = frozenset({"pending", "resolved", "closed"})


class TicketNotRoutedYet(Exception):
    """A later event of a ticket arrived before its ``created``; retried (redelivered) until that is applied."""


async def handle_ticket_event(
    conn: Connection, envelope: Envelope, config: OnDemand, opened: sla.Opened | None = None
) -> None:
    """Apply one of ticketing's events; runs inside the consumer's inbox transaction, after the SLA clocks
    (``opened``: they started with this event)."""
    now = datetime.now(UTC)
    if envelope.type == convert.TICKET_CREATED:
        await on_created(conn, convert.created_ticket(envelope.data), now, await config.get(), opened)
    elif envelope.type == convert.TICKET_STATUS_CHANGED:
        await on_status_changed(conn, *convert.status_change(envelope.data), now)
    elif envelope.type == convert.TICKET_PRIORITY_CHANGED:
        await on_priority_changed(conn, *convert.priority_change(envelope.data))
    # Messages, notes, assignments, CSAT and flags do not move a ticket in routing.


def _new_entry(ticket: TicketFacts, now: datetime, config: Config, sla_due: datetime | None) -> QueueEntry:
    """The queue entry of a ticket routing sees for the first time, under the first rule it matches."""
    queue, steps, rule = rules.route(config.rules, ticket)
    return QueueEntry(
        ticket_id=ticket.ticket_id,
        queue=queue,
        priority=ticket.priority,
        state=EntryState.WAITING,
        ticket_version=ticket.version,
        ticket_created_at=ticket.created_at,
        enqueued_at=now,
        steps=steps,
        # A late event may find some steps passed already: they count from the ticket's creation.
        step=rules.step_in_force(steps, ticket.created_at, now),
        routed_since=ticket.created_at,
        waiting_since=now,
        category=ticket.category,
        language=ticket.language,
        customer_tier=ticket.customer_tier,
        ticket_status=ticket.status,
        rule_id=rule.id if rule else None,
        sla_due_at=sla_due,
    )


def _announcements(entry: QueueEntry, now: datetime) -> list[Envelope]:
    """A new entry's events: the escalation its first step may ask for, then "queued"."""
    escalation = entries.escalation(entry, -1, now)
    queued = event(convert.TICKET_QUEUED, entry.ticket_id, convert.ticket_queued(entry))
    return [queued] if escalation is None else [escalation, queued]


async def on_created(
    conn: Connection, ticket: TicketFacts, now: datetime, config: Config, opened: sla.Opened | None = None
) -> QueueEntry | None:
    """Queue a new ticket under its rule, announce it, and offer it at once if an agent fits."""
    sla_due = opened.earliest_deadline if opened else await sla.earliest_deadline(conn, ticket.ticket_id)
    entry = _new_entry(ticket, now, config, sla_due)
    if not await store.insert_entry(conn, entry):
        return None  # a redelivery: already routed
    # A new entry has no relaxation timer to cancel: the next step's (if any) is armed with the dispatch's.
    relax = entries.relaxation(entry)
    return await dispatch.offer_ticket(
        conn,
        entry,
        now,
        queue=config.queues.get(entry.queue),
        announce=_announcements(entry, now),
        arm=[relax] if relax else [],
    )


async def on_created_many(
    conn: Connection, created: Sequence[tuple[Delivered, TicketFacts, sla.Opened | None]], config: Config
) -> None:
    """``on_created`` for many new tickets applied together: entries, offers, events and timers are written for
    all at once. A ticket costs a statement of its own only where an open agent may satisfy its first step (the
    reservation, which must see the ones before it); a backlog no agent can take costs none, and waits with the
    re-check any unmatched ticket gets. Agents reserved here stay locked until the batch commits, so the writes
    that follow the reservations are few."""
    now = datetime.now(UTC)
    planned: list[tuple[Delivered, QueueEntry, list[Envelope]]] = []
    for delivered, ticket, opened in created:
        sla_due = opened.earliest_deadline if opened else await sla.earliest_deadline(conn, ticket.ticket_id)
        entry = _new_entry(ticket, now, config, sla_due)
        with delivered.current():  # the events continue the ticket's trace
            planned.append((delivered, entry, _announcements(entry, now)))
    inserted = await store.insert_entries(conn, [entry for _, entry, _ in planned])
    planned = [p for p in planned if p[1].ticket_id in inserted]  # the others were routed already
    may_match = await store.keys_with_open_agents(conn, {matching.need_of(e).key for _, e, _ in planned})
    announced: list[Envelope] = []
    armings: list[timers.Arming] = []
    made: list[entries.MadeOffer] = []
    for delivered, entry, announce in planned:
        queue = config.queues.get(entry.queue) or await dispatch.queue_of(conn, entry)
        agent_id = None
        if matching.need_of(entry).key in may_match:
            agent_id = (await dispatch.reserve_for(conn, entry, queue, now)).agent_id
        if agent_id is not None and queue.direct_assignment:
            with delivered.current():  # rare: assigned at once, as a dispatch of its own does
                await entries.hand_over(conn, entry, queue, agent_id, now, announce)
            continue
        if agent_id is None:
            armings.append(dispatch.recheck(entry.ticket_id, now))  # left waiting unmatched
        else:
            with delivered.current():
                offer = entries.offer_to(entry, queue, agent_id, now)
            made.append(offer)
            announce = [*announce, offer.announced]
            armings.append(offer.expiry)
        relax = entries.relaxation(entry)
        if relax is not None:
            armings.append(relax)
        announced += announce
    await offer_store.insert_offers(conn, [m.offer for m in made])
    await store.save_entries(conn, [m.entry for m in made])
    await publish(conn, *announced)
    await timers.arm_all(conn, armings, wakes=wake.BATCHED_TIMERS)


async def on_status_changed(conn: Connection, ticket_id: uuid.UUID, status: str, version: int, now: datetime) -> None:
    entry = await store.lock_entry(conn, ticket_id)
    if entry is None:
        raise TicketNotRoutedYet(f"status of ticket {ticket_id} changed before routing saw it created")
    if version <= entry.ticket_version:
        return  # stale or already applied
    if status in PARKING_STATUSES:
        if entry.state is EntryState.PARKED:
            await store.save_entry(conn, dataclasses.replace(entry, ticket_status=status, ticket_version=version))
            return
        holder = entry.agent_id
        await entries.park(conn, entry, now, status, version)
        if holder is not None:
            await dispatch.dispatch_agent(conn, holder, now)
        return
    current = dataclasses.replace(entry, ticket_status=status, ticket_version=version)
    if status == "open" and entry.state is EntryState.PARKED and entry.ticket_status != "closed":
        await _reopen(conn, current, now)
        return
    await store.save_entry(conn, current)


async def _reopen(conn: Connection, entry: QueueEntry, now: datetime) -> None:
    """The customer came back: the agent who held the ticket keeps it if it can take it; else it is routed anew."""
    holder = entry.agent_id
    if holder is not None:
        agent = await agent_store.lock_agent(conn, holder)
        if (
            agent is not None
            and agent.presence is not Presence.OFFLINE
            and await agent_store.reserve(conn, holder, available_only=False, given_at=None)
        ):
            await offer_store.insert_assignment(
                conn, ticket_id=entry.ticket_id, agent_id=holder, queue=entry.queue, via="reopen", waited=None, at=now
            )
            await store.save_entry(conn, dataclasses.replace(entry, state=EntryState.ASSIGNED))
            return
    waiting = await entries.requeue(conn, entry, now, last_agent=None, restart=True, announce=True)
    await dispatch.offer_ticket(conn, waiting, now)


async def on_priority_changed(conn: Connection, ticket_id: uuid.UUID, priority: str, version: int) -> None:
    """A new priority moves the ticket in the waiting order; its rule and steps stay."""
    entry = await store.lock_entry(conn, ticket_id)
    if entry is None:
        raise TicketNotRoutedYet(f"priority of ticket {ticket_id} changed before routing saw it created")
    if version <= entry.ticket_version:
        return
    await store.save_entry(conn, dataclasses.replace(entry, priority=priority, ticket_version=version))


async def on_relax(conn: Connection, timer: Timer) -> None:
    """Timer ``route.relax``: the next step's time has come; a wider set of agents may take the ticket."""
    now = max(datetime.now(UTC), timer.due_at)
    entry = await store.lock_entry_or_give_way(conn, uuid.UUID(timer.key))
    if entry is None or entry.state not in (EntryState.WAITING, EntryState.OFFERED):
        return
    step = rules.step_in_force(entry.steps, entry.routed_since, now)
    if step > entry.step:
        entry = await entries.move_to_step(conn, entry, step, now, fresh=False)
        await store.save_entry(conn, entry)
    await entries.arm_relaxation(conn, entry)
    if entry.state is EntryState.WAITING:
        await dispatch.offer_ticket(conn, entry, now)


async def relax_many(conn: Connection, due: Sequence[Timer]) -> set[int]:
    """Timers ``route.relax`` in a batch (a backlog's steps come due together): each entry free to lock moves to
    the step now in force, supervisors are told where a step asks, the next step's timer is armed, and a waiting
    entry gets the re-check any unmatched one gets. Returned, for ``on_relax`` one at a time: the timers of
    entries another transaction holds, and of waiting entries whose step in force an open agent may satisfy
    (an offer is to be made, which takes locks a batch must not hold while it waits for more)."""
    clock = datetime.now(UTC)
    timer_of = {uuid.UUID(t.key): t for t in due}
    locked = await store.lock_entries_free_now(conn, timer_of)
    held_elsewhere = timer_of.keys() - {e.ticket_id for e in locked}
    relaxed: list[tuple[QueueEntry, Envelope | None, datetime]] = []
    for entry in locked:
        if entry.state not in (EntryState.WAITING, EntryState.OFFERED):
            continue  # parked or assigned since: nothing to relax
        now = max(clock, timer_of[entry.ticket_id].due_at)
        step = rules.step_in_force(entry.steps, entry.routed_since, now)
        moved, escalation = entries.stepped(entry, step, now, fresh=False)
        relaxed.append((moved, escalation, now))
    waiting_keys = {matching.need_of(e).key for e, _, _ in relaxed if e.state is EntryState.WAITING}
    may_match = await store.keys_with_open_agents(conn, waiting_keys) if waiting_keys else set()
    to_offer = {
        e.ticket_id for e, _, _ in relaxed if e.state is EntryState.WAITING and matching.need_of(e).key in may_match
    }
    settled = [(e, esc, now) for e, esc, now in relaxed if e.ticket_id not in to_offer]
    await store.save_entries(conn, [e for e, _, _ in settled])
    await publish(conn, *(esc for _, esc, _ in settled if esc is not None))
    armings = [a for a in (entries.relaxation(e) for e, _, _ in settled) if a is not None]
    armings += [dispatch.recheck(e.ticket_id, now) for e, _, now in settled if e.state is EntryState.WAITING]
    await timers.arm_all(conn, armings, wakes=wake.BATCHED_TIMERS)
    return {timer_of[t].id for t in held_elsewhere | to_offer}


# --- transfers -------------------------------------------------------------------------------------------


async def transfer(
    conn: Connection, ticket_id: uuid.UUID, *, to_agent: str, to_queue: str, by: str, reason: str, now: datetime
) -> QueueEntry:
    """To an agent (who holds it at once, within capacity) or to a queue (routed again from its first step)."""
    if bool(to_agent) == bool(to_queue):
        raise InvalidArgument("invalid_argument", "exactly one of to_agent_id and to_queue", field="to_agent_id")
    entry = await store.lock_entry(conn, ticket_id)
    if entry is None:
        raise NotFound("ticket_not_routed", f"ticket {ticket_id} is not in routing")
    if entry.ticket_status == "closed":
        raise FailedPrecondition("ticket_closed", "a closed ticket cannot be transferred")
    if to_agent:
        return await _to_agent(conn, entry, to_agent, by, reason, now)
    return await _to_queue(conn, entry, to_queue, by, reason, now)


async def _to_agent(
    conn: Connection, entry: QueueEntry, agent_id: str, by: str, reason: str, now: datetime
) -> QueueEntry:
    if entry.agent_id == agent_id and entry.state in (EntryState.ASSIGNED, EntryState.PARKED):
        return entry
    agent = await agent_store.lock_agent(conn, agent_id)
    if agent is None:
        raise NotFound("agent_not_found", f"agent {agent_id!r} does not exist", agent_id=agent_id)
    if agent.presence is Presence.OFFLINE:
        raise FailedPrecondition("agent_offline", f"agent {agent_id!r} is offline")
    before = entry.agent_id or ""
    if entry.state is EntryState.PARKED:
        # Nobody works a parked ticket: the new agent gets it (and its capacity) when it reopens.
        moved = dataclasses.replace(entry, agent_id=agent_id)
        released = None
    else:
        released = await entries.release_holder(conn, entry, now, "transferred")
        if not await agent_store.reserve(conn, agent_id, available_only=False, given_at=now):
            raise FailedPrecondition(
                "agent_over_capacity",
                f"agent {agent_id!r} already holds {agent.active} of {agent.capacity} tickets",
                agent_id=agent_id,
            )
        waited = now - entry.waiting_since if entry.state is not EntryState.ASSIGNED else None
        await offer_store.insert_assignment(
            conn, ticket_id=entry.ticket_id, agent_id=agent_id, queue=entry.queue, via="transfer", waited=waited, at=now
        )
        moved = dataclasses.replace(entry, state=EntryState.ASSIGNED, agent_id=agent_id)
        await entries.cancel_relaxation(conn, entry.ticket_id)
    await store.save_entry(conn, moved)
    await publish(
        conn,
        event(
            convert.TICKET_TRANSFERRED,
            entry.ticket_id,
            convert.ticket_transferred(
                entry.ticket_id,
                from_agent=before,
                to_agent=agent_id,
                from_queue=entry.queue,
                to_queue=entry.queue,
                by=by,
                reason=reason,
            ),
        ),
        event(
            convert.TICKET_ASSIGNED,
            entry.ticket_id,
            convert.ticket_assigned(entry.ticket_id, agent_id, entry.queue, now),
        ),
    )
    if released is not None and released != agent_id:
        await dispatch.dispatch_agent(conn, released, now)
    return moved


async def _to_queue(
    conn: Connection, entry: QueueEntry, queue_name: str, by: str, reason: str, now: datetime
) -> QueueEntry:
    queue = await config_store.get_queue(conn, queue_name)
    if queue is None:
        raise NotFound("queue_not_found", f"queue {queue_name!r} does not exist", queue=queue_name)
    facts = TicketFacts(
        ticket_id=entry.ticket_id,
        category=entry.category,
        language=entry.language,
        priority=entry.priority,
        customer_tier=entry.customer_tier,
        status=entry.ticket_status,
        version=entry.ticket_version,
        created_at=entry.ticket_created_at,
    )
    rule = rules.rule_for_queue(await config_store.all_rules(conn), queue.name, facts)
    before_agent = entry.agent_id or ""
    was_parked = entry.state is EntryState.PARKED
    released = await entries.release_holder(conn, entry, now, "transferred")
    moved = dataclasses.replace(
        entry,
        queue=queue.name,
        steps=rule.steps if rule else rules.FALLBACK_STEPS,
        rule_id=rule.id if rule else None,
    )
    await publish(
        conn,
        event(
            convert.TICKET_TRANSFERRED,
            entry.ticket_id,
            convert.ticket_transferred(
                entry.ticket_id,
                from_agent=before_agent,
                to_agent="",
                from_queue=entry.queue,
                to_queue=queue.name,
                by=by,
                reason=reason,
            ),
        ),
    )
    if was_parked:
        # It is routed in its new queue when the customer comes back.
        moved = dataclasses.replace(moved, agent_id=None, step=0, routed_since=now)
        await store.save_entry(conn, moved)
    else:
        moved = await entries.requeue(conn, moved, now, last_agent=released, restart=True, announce=True)
        moved = await dispatch.offer_ticket(conn, moved, now, queue=queue)
    if released is not None:
        await dispatch.dispatch_agent(conn, released, now)
    return moved
