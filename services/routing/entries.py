"""A ticket's place in routing, moved between waiting, offered, assigned and parked inside the caller's
transaction: the entry, the agent's load, offers, assignments, timers and events change together."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit.bus.envelope import Envelope
from services.kit.db import Connection
from services.routing import agent_store, convert, offer_store, rules, sla, store, timers
from services.routing.domain import EntryState, Offer, OfferState, Queue, QueueEntry
from services.routing.events import event, publish

RELAX = "route.relax"
OFFER_EXPIRE = "offer.expire"


def relaxation(entry: QueueEntry) -> timers.Arming | None:
    """The timer for the entry's next step; None at the last step."""
    upcoming = rules.next_relaxation(entry.steps, entry.step, entry.routed_since)
    if upcoming is None:
        return None
    step, due = upcoming
    return timers.Arming(RELAX, str(entry.ticket_id), due, {"step": step})


async def arm_relaxation(conn: Connection, entry: QueueEntry) -> None:
    """Arm the timer for the entry's next step, or cancel it at the last step."""
    arming = relaxation(entry)
    if arming is None:
        await cancel_relaxation(conn, entry.ticket_id)
        return
    await timers.arm_all(conn, [arming])


async def cancel_relaxation(conn: Connection, ticket_id: uuid.UUID) -> None:
    await timers.cancel(conn, kind=RELAX, key=str(ticket_id))


def escalation(entry: QueueEntry, before: int, now: datetime) -> Envelope | None:
    """The event telling supervisors, if moving from step ``before`` (-1: none yet) to the entry's step entered
    one that asks."""
    if not rules.escalates(entry.steps, before, entry.step):
        return None
    waited = now - entry.routed_since
    return event(
        convert.TICKET_ESCALATED,
        entry.ticket_id,
        convert.ticket_escalated(entry.ticket_id, entry.queue, entry.step, waited),
    )


async def announce_escalation(conn: Connection, entry: QueueEntry, before: int, now: datetime) -> None:
    """Tell supervisors if moving from step ``before`` (-1: none yet) to the entry's step entered one that asks."""
    announced = escalation(entry, before, now)
    if announced is not None:
        await publish(conn, announced)


def stepped(entry: QueueEntry, step: int, now: datetime, *, fresh: bool) -> tuple[QueueEntry, Envelope | None]:
    """The entry with ``step`` in force (``fresh``: the first step of a routing episode), and the escalation to
    announce if that step asks for one."""
    old = -1 if fresh else entry.step
    if step <= old:
        return entry, None
    # A relaxed step is a new chance for the agent who last let the ticket go.
    moved = dataclasses.replace(entry, step=step, last_agent_id=None if step > entry.step else entry.last_agent_id)
    return moved, escalation(moved, old, now)


async def move_to_step(conn: Connection, entry: QueueEntry, step: int, now: datetime, *, fresh: bool) -> QueueEntry:
    """Put ``step`` in force (``fresh``: the first step of a routing episode), tell supervisors if it asks to."""
    moved, announced = stepped(entry, step, now, fresh=fresh)
    if announced is not None:
        await publish(conn, announced)
    return moved


async def hand_over(
    conn: Connection,
    entry: QueueEntry,
    queue: Queue,
    agent_id: str,
    now: datetime,
    announce: Sequence[Envelope] = (),
) -> QueueEntry:
    """Offer the waiting ticket to the agent already reserved for it, or assign it if the queue says so.

    ``announce``: events of the caller's to publish first, in the same outbox write.
    """
    if queue.direct_assignment:
        await offer_store.insert_assignment(
            conn,
            ticket_id=entry.ticket_id,
            agent_id=agent_id,
            queue=entry.queue,
            via="direct",
            waited=now - entry.waiting_since,
            at=now,
        )
        assigned = dataclasses.replace(entry, state=EntryState.ASSIGNED, agent_id=agent_id)
        await store.save_entry(conn, assigned)
        await cancel_relaxation(conn, entry.ticket_id)
        await publish(
            conn,
            *announce,
            event(
                convert.TICKET_ASSIGNED,
                entry.ticket_id,
                convert.ticket_assigned(entry.ticket_id, agent_id, entry.queue, now),
            ),
        )
        return assigned
    made = offer_to(entry, queue, agent_id, now)
    await offer_store.insert_offer(conn, made.offer)
    await store.save_entry(conn, made.entry)
    await timers.arm_all(conn, [made.expiry])
    await publish(conn, *announce, made.announced)
    return made.entry


@dataclass(frozen=True, slots=True)
class MadeOffer:
    """What offering a waiting ticket to the agent reserved for it writes: the offer, the entry as offered, the
    offer's expiry timer and its event."""

    offer: Offer
    entry: QueueEntry
    expiry: timers.Arming
    announced: Envelope


def offer_to(entry: QueueEntry, queue: Queue, agent_id: str, now: datetime) -> MadeOffer:
    offer = Offer(
        id=uuid.uuid4(),
        ticket_id=entry.ticket_id,
        agent_id=agent_id,
        queue=entry.queue,
        state=OfferState.PENDING,
        created_at=now,
        expires_at=now + queue.offer_timeout,
    )
    return MadeOffer(
        offer=offer,
        entry=dataclasses.replace(entry, state=EntryState.OFFERED, agent_id=agent_id),
        expiry=timers.Arming(OFFER_EXPIRE, str(offer.id), offer.expires_at),
        announced=event(convert.OFFER_EVENTS[OfferState.PENDING], entry.ticket_id, convert.offer_changed(offer)),
    )


async def close_offer(conn: Connection, offer: Offer, state: OfferState, now: datetime, reason: str = "") -> Offer:
    """End a pending offer (locked by the caller) and free the capacity it reserved."""
    closed = await offer_store.close_offer(conn, offer.id, state, now, reason)
    await agent_store.release(conn, offer.agent_id)
    await timers.cancel(conn, kind=OFFER_EXPIRE, key=str(offer.id))
    await publish(conn, event(convert.OFFER_EVENTS[state], offer.ticket_id, convert.offer_changed(closed)))
    return closed


async def release_holder(conn: Connection, entry: QueueEntry, now: datetime, reason: str) -> str | None:
    """Take the ticket back from whoever is offered or holds it (the entry is locked); that agent's id."""
    if entry.state is EntryState.OFFERED:
        offer = await offer_store.lock_pending_offer_of_ticket(conn, entry.ticket_id)
        if offer is not None:
            await close_offer(conn, offer, OfferState.WITHDRAWN, now, reason)
        return entry.agent_id
    if entry.state is EntryState.ASSIGNED:
        holder = await offer_store.release_assignment(conn, entry.ticket_id, now, reason)
        if holder is not None:
            await agent_store.release(conn, holder)
        return entry.agent_id
    return None


async def requeue(
    conn: Connection,
    entry: QueueEntry,
    now: datetime,
    *,
    last_agent: str | None,
    restart: bool,
    announce: bool,
) -> QueueEntry:
    """Put the entry back to waiting, keeping its age (so its place in line).

    ``restart`` starts a new routing episode (reopened, or moved to another queue): step deadlines count from
    now and the wait statistics start again. Otherwise (declined, missed, withdrawn) the steps already
    passed stay passed: an unanswered offer never resets them.
    """
    since = now if restart else entry.routed_since
    waiting = dataclasses.replace(
        entry,
        state=EntryState.WAITING,
        agent_id=None,
        last_agent_id=last_agent,
        routed_since=since,
        step=0 if restart else entry.step,
        waiting_since=now if restart or entry.state is not EntryState.OFFERED else entry.waiting_since,
    )
    waiting = await move_to_step(conn, waiting, rules.step_in_force(waiting.steps, since, now), now, fresh=restart)
    await store.save_entry(conn, waiting)
    await arm_relaxation(conn, waiting)
    due = await sla.earliest_deadline(conn, entry.ticket_id)
    await store.set_entry_sla_due(conn, entry.ticket_id, due)
    waiting = dataclasses.replace(waiting, sla_due_at=due)
    if announce:
        await publish(conn, event(convert.TICKET_QUEUED, entry.ticket_id, convert.ticket_queued(waiting)))
    return waiting


async def park(conn: Connection, entry: QueueEntry, now: datetime, status: str, version: int) -> QueueEntry:
    """Off the queue (pending on the customer, resolved or closed): capacity freed, the holder remembered."""
    holder = await release_holder(conn, entry, now, f"ticket {status}")
    # Only someone who held the ticket gets it back on reopen; an unaccepted offer gives no claim.
    keep = holder if entry.state is EntryState.ASSIGNED else None
    parked = dataclasses.replace(
        entry,
        state=EntryState.PARKED,
        agent_id=entry.agent_id if entry.state is EntryState.PARKED else keep,
        ticket_status=status,
        ticket_version=version,
    )
    await store.save_entry(conn, parked)
    await cancel_relaxation(conn, entry.ticket_id)
    return parked
