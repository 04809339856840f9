"""Matching tickets and agents, on every change that can make a match, inside the changing transaction.

Two entry points: a ticket became waiting (find it the best agent), or an agent can take work (give it the
best waiting tickets until it is full). Rows are picked with ``FOR UPDATE SKIP LOCKED``, so replicas never
wait on each other, and capacity is reserved with a guarded ``UPDATE``.

Two concurrent transactions can each miss the other's uncommitted change (a ticket queued while an agent
frees up), and a pick can find its candidates locked. So whenever a dispatch leaves a waiting ticket or a
free agent unmatched, it arms a *re-check* timer, due at once: the scheduler runs it after this transaction
commits, with a fresh snapshot. Of two racing transactions the later one's re-check sees both changes. A
re-check that finds nothing stops there; one that met locked candidates arms another, under a new key
(``<id>/again/<n>``): a timer cannot re-arm itself, nor any timer claimed in the same batch, from a handler.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from services.kit import wake
from services.kit.bus.envelope import Envelope
from services.kit.db import Connection
from services.routing import agent_store, config_store, entries, matching, store, timers
from services.routing.domain import Agent, EntryState, Queue, QueueEntry
from services.routing.events import publish
from services.routing.timers import Timer

RECHECK_TICKET = "dispatch.ticket"
RECHECK_AGENT = "dispatch.agent"
_AGAIN = "/again/"
# Before looking again at rows another transaction held: long enough for it to commit, short for a customer.
_CONTENDED_DELAY = timedelta(milliseconds=50)


async def _arm_recheck(
    conn: Connection, kind: str, key: str, now: datetime, also: Sequence[timers.Arming] = ()
) -> None:
    # Due at once: it cannot fire before this transaction commits, which is the point. The caller's timers
    # (a later step) are not due for a while: the claiming loops find them on their next look.
    wakes = wake.BATCHED_TIMERS if kind == RECHECK_TICKET else wake.TIMERS  # ticket re-checks are batched
    await timers.arm_all(conn, [*also, timers.Arming(kind, key, now)], wakes=wakes)


def recheck(ticket_id: uuid.UUID, now: datetime) -> timers.Arming:
    """The re-check of a ticket left waiting unmatched, due at once (it cannot fire before the commit)."""
    return timers.Arming(RECHECK_TICKET, str(ticket_id), now)


def _subject(key: str) -> str:
    return key.split(_AGAIN, 1)[0]


def _next_key(key: str) -> str:
    subject, _, attempt = key.partition(_AGAIN)
    return f"{subject}{_AGAIN}{int(attempt or 0) + 1}"


async def offer_ticket(
    conn: Connection,
    entry: QueueEntry,
    now: datetime,
    *,
    queue: Queue | None = None,
    announce: Sequence[Envelope] = (),
    arm: Sequence[timers.Arming] = (),
) -> QueueEntry:
    """Hand the waiting, locked entry to the best eligible agent, if any; the entry as it is now.

    ``announce`` are the caller's events, published with this dispatch's in one outbox write; ``arm`` the
    caller's timers, armed with the re-check when no agent is free.
    """
    assert entry.state is EntryState.WAITING
    if queue is None:
        queue = await queue_of(conn, entry)
    pick = await reserve_for(conn, entry, queue, now)
    if pick.agent_id is None:
        await publish(conn, *announce)
        await _arm_recheck(conn, RECHECK_TICKET, str(entry.ticket_id), now, also=arm)
        return entry
    await timers.arm_all(conn, arm)
    return await entries.hand_over(conn, entry, queue, pick.agent_id, now, announce)


async def queue_of(conn: Connection, entry: QueueEntry) -> Queue:
    queue = await config_store.get_queue(conn, entry.queue)
    assert queue is not None  # entries reference queues
    return queue


async def reserve_for(conn: Connection, entry: QueueEntry, queue: Queue, now: datetime) -> store.AgentPick:
    """Reserve the best agent for the waiting entry (not the one who last let it go), if any is free."""
    exclude = [entry.last_agent_id] if entry.last_agent_id else []
    return await store.reserve_agent_for(conn, matching.need_of(entry), exclude, now)


async def fill_agent(conn: Connection, agent: Agent, now: datetime) -> Agent:
    """Give the locked agent the best waiting tickets it may take, until it is full or none is left."""
    probes = matching.probe_keys(agent)
    while agent.takes_work:
        pick = await store.pick_ticket_for(conn, agent, probes)
        if pick.entry is None or pick.queue is None:
            await _arm_recheck(conn, RECHECK_AGENT, agent.id, now)
            break
        if not await agent_store.reserve(conn, agent.id, available_only=True, given_at=now):
            break
        await entries.hand_over(conn, pick.entry, pick.queue, agent.id, now)
        agent = dataclasses.replace(agent, active=agent.active + 1, last_assigned_at=now)
    return agent


async def dispatch_agent(conn: Connection, agent_id: str, now: datetime) -> None:
    """For a change that freed the agent's capacity: lock it (waiting if need be) and fill it."""
    agent = await agent_store.lock_agent(conn, agent_id)
    if agent is not None:
        await fill_agent(conn, agent, now)


# --- re-check timers -------------------------------------------------------------------------------------
#
# A re-check looks before it locks: it reserves the other side first and only then locks its own ticket or
# agent (SKIP LOCKED), undoing the reservation if that lock cannot be had or the row changed meanwhile. So a
# re-check that finds nothing never holds the row it was about, and never makes a concurrent dispatch skip
# the best ticket or agent.


class _Changed(Exception):
    """The row a re-check is about was taken or changed between its look and its lock."""


async def recheck_tickets(conn: Connection, due: Sequence[Timer]) -> set[int]:
    """Due ticket re-checks in a batch: those whose ticket no longer waits, or which no open agent has the skill
    and language of at their level, are done; the ones left (returned) run ``recheck_ticket``, which decides
    for good. A backlog no agent can take (the common case under load) costs one read, not a transaction each."""
    worth = await store.waiting_with_open_agents(conn, {uuid.UUID(_subject(t.key)) for t in due})
    return {t.id for t in due if uuid.UUID(_subject(t.key)) in worth}


async def recheck_ticket(conn: Connection, timer: Timer, now: datetime) -> None:
    entry = await store.get_entry(conn, uuid.UUID(_subject(timer.key)))
    if entry is None or entry.state is not EntryState.WAITING:
        return
    queue = await config_store.get_queue(conn, entry.queue)
    assert queue is not None
    need = matching.need_of(entry)
    try:
        async with conn.transaction():  # a savepoint: the reservation is undone if the ticket cannot be had
            exclude = [entry.last_agent_id] if entry.last_agent_id else []
            pick = await store.reserve_agent_for(conn, need, exclude, now)
            if pick.agent_id is None:
                if pick.contended:
                    raise _Changed
                return
            locked, _ = await store.try_lock_waiting(conn, entry.ticket_id)
            if (
                locked is None
                or matching.need_of(locked) != need
                or (locked.last_agent_id, locked.queue) != (entry.last_agent_id, entry.queue)
            ):
                raise _Changed
            await entries.hand_over(conn, locked, queue, pick.agent_id, now)
    except _Changed:
        await _arm_recheck(conn, RECHECK_TICKET, _next_key(timer.key), now + _CONTENDED_DELAY)


async def recheck_agent(conn: Connection, timer: Timer, now: datetime) -> None:
    agent = await agent_store.get_agent(conn, _subject(timer.key))
    if agent is None:
        return
    probes = matching.probe_keys(agent)
    try:
        while agent.takes_work:
            async with conn.transaction():  # a savepoint: the ticket's lock is let go if the agent cannot be had
                pick = await store.pick_ticket_for(conn, agent, probes)
                if pick.entry is None or pick.queue is None:
                    if pick.contended:
                        raise _Changed
                    return
                locked, _ = await agent_store.try_lock_agent(conn, agent.id)
                if locked is None:
                    raise _Changed
                if not locked.takes_work:
                    return  # went away or filled up meanwhile: nothing to do
                if (locked.skills, locked.languages) != (agent.skills, agent.languages):
                    raise _Changed  # the pick was made for another profile
                if not await agent_store.reserve(conn, agent.id, available_only=True, given_at=now):
                    raise _Changed
                await entries.hand_over(conn, pick.entry, pick.queue, agent.id, now)
                agent = dataclasses.replace(locked, active=locked.active + 1)
    except _Changed:
        await _arm_recheck(conn, RECHECK_AGENT, _next_key(timer.key), now + _CONTENDED_DELAY)
