"""An agent answers an offer (accept, decline) or lets it expire.

Locks are taken entry, then offer, then agent, as everywhere in routing, so concurrent answers, expiries and
status changes queue behind each other instead of deadlocking.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from services.kit.db import Connection
from services.kit.errors import FailedPrecondition, NotFound, PermissionDenied
from services.routing import agent_store, agents, convert, dispatch, entries, offer_store, store, timers
from services.routing.domain import EntryState, Offer, OfferState, Presence, QueueEntry
from services.routing.events import event, publish
from services.routing.timers import Timer

MISSED_OFFER = "missed_offer"


async def _lock_answerable(
    conn: Connection, offer_id: uuid.UUID, agent_id: str, now: datetime
) -> tuple[Offer, QueueEntry]:
    seen = await offer_store.get_offer(conn, offer_id)
    if seen is None:
        raise NotFound("offer_not_found", f"offer {offer_id} does not exist")
    if seen.agent_id != agent_id:
        raise PermissionDenied("not_offer_agent", "the offer was made to another agent")
    entry = await store.lock_entry(conn, seen.ticket_id)
    offer = await offer_store.lock_offer(conn, offer_id)
    assert entry is not None  # offers reference entries
    assert offer is not None
    if offer.state is not OfferState.PENDING:
        raise FailedPrecondition(
            "offer_not_pending", f"the offer is already {offer.state.value}", state=offer.state.value
        )
    if offer.expires_at <= now:
        raise FailedPrecondition("offer_not_pending", "the offer has expired", state=OfferState.EXPIRED.value)
    return offer, entry


async def accept(conn: Connection, offer_id: uuid.UUID, agent_id: str, now: datetime) -> Offer:
    """The agent takes the ticket: it holds it now, and ticketing is told."""
    offer, entry = await _lock_answerable(conn, offer_id, agent_id, now)
    accepted = await offer_store.close_offer(conn, offer.id, OfferState.ACCEPTED, now, "")
    # The capacity the offer reserved now counts the assignment.
    await offer_store.insert_assignment(
        conn,
        ticket_id=entry.ticket_id,
        agent_id=agent_id,
        queue=entry.queue,
        via="offer",
        waited=now - entry.waiting_since,
        at=now,
    )
    await store.save_entry(conn, dataclasses.replace(entry, state=EntryState.ASSIGNED, agent_id=agent_id))
    await timers.cancel(conn, kind=entries.OFFER_EXPIRE, key=str(offer.id))
    await entries.cancel_relaxation(conn, entry.ticket_id)
    await publish(
        conn,
        event(convert.OFFER_EVENTS[OfferState.ACCEPTED], entry.ticket_id, convert.offer_changed(accepted)),
        event(
            convert.TICKET_ASSIGNED,
            entry.ticket_id,
            convert.ticket_assigned(entry.ticket_id, agent_id, entry.queue, now),
        ),
    )
    return accepted


async def decline(conn: Connection, offer_id: uuid.UUID, agent_id: str, reason: str, now: datetime) -> Offer:
    """Back to the head of its queue (its age is kept), offered to someone else; the agent gets other work."""
    offer, entry = await _lock_answerable(conn, offer_id, agent_id, now)
    declined = await entries.close_offer(conn, offer, OfferState.DECLINED, now, reason[:500])
    entry = await entries.requeue(conn, entry, now, last_agent=agent_id, restart=False, announce=False)
    await dispatch.offer_ticket(conn, entry, now)
    await dispatch.dispatch_agent(conn, agent_id, now)
    return declined


async def on_expire(conn: Connection, timer: Timer) -> None:
    """Timer ``offer.expire``: nobody answered in time, so the agent is probably not there: away it goes."""
    now = max(datetime.now(UTC), timer.due_at)
    seen = await offer_store.get_offer(conn, uuid.UUID(timer.key))
    if seen is None or seen.state is not OfferState.PENDING:
        return
    entry = await store.lock_entry_or_give_way(conn, seen.ticket_id)
    offer = await offer_store.lock_offer(conn, seen.id)
    if entry is None or offer is None or offer.state is not OfferState.PENDING:
        return  # answered meanwhile
    await entries.close_offer(conn, offer, OfferState.EXPIRED, now, "no answer in time")
    agent = await agent_store.lock_agent(conn, offer.agent_id)
    if agent is not None and agent.presence is Presence.AVAILABLE:
        await agents.change_presence(conn, agent, Presence.AWAY, MISSED_OFFER, now)
    entry = await entries.requeue(conn, entry, now, last_agent=offer.agent_id, restart=False, announce=False)
    await dispatch.offer_ticket(conn, entry, now)
