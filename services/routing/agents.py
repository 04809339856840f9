"""Agents: created and edited by admins; their presence set by themselves or by a missed offer."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.kit import idempotency, idempotency_store
from services.kit.db import Connection
from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound
from services.routing import agent_store, config_store, convert, dispatch, entries, offer_store, store
from services.routing.domain import Agent, AgentProfile, EntryState, OfferState, Presence, check_agent_id, check_profile
from services.routing.events import event, publish

AGENT = "agent"
OFFLINE = "agent_offline"
# Scope of CreateAgent's in-flight claim (see services.kit.idempotency_store).
CLAIM_SCOPE = "agent"


def _not_found(agent_id: str) -> NotFound:
    return NotFound("agent_not_found", f"agent {agent_id!r} does not exist", agent_id=agent_id)


async def create(
    conn: Connection, agent_id: str, profile: AgentProfile, now: datetime, *, request_id: str = ""
) -> tuple[Agent, bool]:
    """Create the agent, offline; a retry returns the agent as it is now and False.

    A retry is the same ``request_id`` with the same body, or the same id and profile under another (or no)
    request_id. The same request_id with another body is ``idempotency_key_reused``, and while the first call
    is being served ``idempotency_key_in_flight``; another profile for an existing id is ``agent_exists``.
    """
    check_agent_id(agent_id)
    check_profile(profile)
    fingerprint = idempotency.fingerprint({"agent_id": agent_id, "profile": profile})
    if request_id:
        if not await idempotency_store.claim(conn, CLAIM_SCOPE, request_id):
            raise idempotency.key_in_flight()
        earlier = await agent_store.agent_by_request_id(conn, request_id)
        if earlier is not None:
            idempotency.check_replay(earlier[1], fingerprint, "an agent")
            return await get(conn, earlier[0]), False
    created = await agent_store.insert_agent(
        conn, agent_id, profile, now, request_id=request_id or None, fingerprint=fingerprint
    )
    if not created:
        stored = await agent_store.request_fingerprint(conn, agent_id)
        if stored is None:  # the id was taken by a concurrent create that rolled back; safe to retry
            raise asyncpg.SerializationError("concurrent create of the same agent")
        if not idempotency.same_request(stored, fingerprint):
            raise AlreadyExists("agent_exists", f"agent {agent_id!r} already exists with another profile")
    agent = await agent_store.get_agent(conn, agent_id)
    assert agent is not None
    return agent, created


async def get(conn: Connection, agent_id: str) -> Agent:
    agent = await agent_store.get_agent(conn, agent_id)
    if agent is None:
        raise _not_found(agent_id)
    return agent


async def update(conn: Connection, agent_id: str, profile: AgentProfile, expected_version: int, now: datetime) -> Agent:
    check_profile(profile)
    agent = await agent_store.lock_agent(conn, agent_id)
    if agent is None:
        raise _not_found(agent_id)
    if expected_version and agent.version != expected_version:
        raise FailedPrecondition(
            "version_conflict",
            f"the agent is at version {agent.version}, not {expected_version}; reload and retry",
            current_version=str(agent.version),
        )
    if profile.capacity < agent.active:
        raise FailedPrecondition(
            "agent_over_capacity",
            f"the agent holds {agent.active} tickets and offers; a capacity of {profile.capacity} is too small",
        )
    await agent_store.update_profile(conn, agent_id, profile)
    updated = await get(conn, agent_id)
    # New skills, languages or room may match tickets that are waiting now.
    await dispatch.fill_agent(conn, updated, now)
    return await get(conn, agent_id)


async def set_presence(conn: Connection, agent_id: str, presence: Presence, now: datetime) -> Agent:
    if presence is Presence.OFFLINE:
        # Lock what will be taken back before the agent itself (entries, then offers, then agents).
        await store.lock_entries_of_agent(conn, agent_id)
        await offer_store.lock_pending_offers_of_agent(conn, agent_id)
    agent = await agent_store.lock_agent(conn, agent_id)
    if agent is None:
        raise _not_found(agent_id)
    await change_presence(conn, agent, presence, AGENT, now)
    return await get(conn, agent_id)


async def change_presence(conn: Connection, agent: Agent, presence: Presence, reason: str, now: datetime) -> None:
    """Move the locked agent to ``presence``: going offline returns its offers (and, where the queue says so,
    its open tickets); becoming available brings it work."""
    if agent.presence is presence:
        return
    await agent_store.set_presence(conn, agent.id, presence, now)
    await publish(
        conn,
        event(
            convert.AGENT_PRESENCE_CHANGED,
            agent.id,
            convert.presence_changed(agent.id, agent.presence, presence, reason),
        ),
    )
    if presence is Presence.OFFLINE:
        await _take_back(conn, agent.id, now)
    elif presence is Presence.AVAILABLE:
        refreshed = await agent_store.get_agent(conn, agent.id)
        assert refreshed is not None
        await dispatch.fill_agent(conn, refreshed, now)


async def _take_back(conn: Connection, agent_id: str, now: datetime) -> None:
    for offer in await offer_store.lock_pending_offers_of_agent(conn, agent_id):
        entry = await store.lock_entry(conn, offer.ticket_id)
        assert entry is not None
        await entries.close_offer(conn, offer, OfferState.WITHDRAWN, now, OFFLINE)
        entry = await entries.requeue(conn, entry, now, last_agent=agent_id, restart=False, announce=False)
        await dispatch.offer_ticket(conn, entry, now)
    queues: dict[str, bool] = {}
    for entry in await store.lock_entries_of_agent(conn, agent_id):
        if entry.state is not EntryState.ASSIGNED:
            continue
        if entry.queue not in queues:
            queue = await config_store.get_queue(conn, entry.queue)
            queues[entry.queue] = bool(queue and queue.requeue_on_offline)
        if not queues[entry.queue]:
            continue
        await entries.release_holder(conn, entry, now, OFFLINE)
        entry = await entries.requeue(conn, entry, now, last_agent=agent_id, restart=True, announce=True)
        await dispatch.offer_ticket(conn, entry, now)
