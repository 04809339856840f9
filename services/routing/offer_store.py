"""SQL for offers and assignments (who was offered and who holds each ticket)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from services.kit.db import Connection
from services.routing.domain import Offer, OfferState

_INSERT_OFFER = """
    INSERT INTO offers (id, ticket_id, agent_id, queue, state, created_at, expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
"""


def _offer_values(offer: Offer) -> tuple[object, ...]:
    return (
        offer.id,
        offer.ticket_id,
        offer.agent_id,
        offer.queue,
        offer.state.value,
        offer.created_at,
        offer.expires_at,
    )


async def insert_offer(conn: Connection, offer: Offer) -> None:
    await conn.execute(_INSERT_OFFER, *_offer_values(offer))


async def insert_offers(conn: Connection, offers: Sequence[Offer]) -> None:
    """``insert_offer`` for several, pipelined in one round trip."""
    if offers:
        await conn.executemany(_INSERT_OFFER, [_offer_values(o) for o in offers])


async def get_offer(conn: Connection, offer_id: uuid.UUID) -> Offer | None:
    row = await conn.fetchrow(
        """
        SELECT id, ticket_id, agent_id, queue, state, created_at, expires_at, responded_at, reason
        FROM offers WHERE id = $1
        """,
        offer_id,
    )
    return _offer(row) if row else None


async def lock_offer(conn: Connection, offer_id: uuid.UUID) -> Offer | None:
    row = await conn.fetchrow(
        """
        SELECT id, ticket_id, agent_id, queue, state, created_at, expires_at, responded_at, reason
        FROM offers WHERE id = $1 FOR NO KEY UPDATE
        """,
        offer_id,
    )
    return _offer(row) if row else None


async def lock_pending_offer_of_ticket(conn: Connection, ticket_id: uuid.UUID) -> Offer | None:
    row = await conn.fetchrow(
        """
        SELECT id, ticket_id, agent_id, queue, state, created_at, expires_at, responded_at, reason
        FROM offers WHERE ticket_id = $1 AND state = 'pending' FOR NO KEY UPDATE
        """,
        ticket_id,
    )
    return _offer(row) if row else None


async def lock_pending_offers_of_agent(conn: Connection, agent_id: str) -> list[Offer]:
    rows = await conn.fetch(
        """
        SELECT id, ticket_id, agent_id, queue, state, created_at, expires_at, responded_at, reason
        FROM offers WHERE agent_id = $1 AND state = 'pending' ORDER BY id FOR NO KEY UPDATE
        """,
        agent_id,
    )
    return [_offer(r) for r in rows]


async def close_offer(conn: Connection, offer_id: uuid.UUID, state: OfferState, at: datetime, reason: str) -> Offer:
    row = await conn.fetchrow(
        """
        UPDATE offers SET state = $2, responded_at = $3, reason = $4
        WHERE id = $1
        RETURNING id, ticket_id, agent_id, queue, state, created_at, expires_at, responded_at, reason
        """,
        offer_id,
        state.value,
        at,
        reason,
    )
    assert row is not None
    return _offer(row)


async def list_offers(
    conn: Connection,
    *,
    agent_id: str,
    states: Sequence[OfferState],
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Offer]:
    """Newest first; ``before`` is the (created_at, id) of the last offer of the previous page."""
    rows = await conn.fetch(
        """
        SELECT id, ticket_id, agent_id, queue, state, created_at, expires_at, responded_at, reason
        FROM offers
        WHERE ($1 = '' OR agent_id = $1)
          AND (cardinality($2::text[]) = 0 OR state = ANY ($2::text[]))
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $5
        """,
        agent_id,
        [s.value for s in states],
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [_offer(r) for r in rows]


def _offer(row: asyncpg.Record) -> Offer:
    return Offer(
        id=row["id"],
        ticket_id=row["ticket_id"],
        agent_id=row["agent_id"],
        queue=row["queue"],
        state=OfferState(row["state"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        responded_at=row["responded_at"],
        reason=row["reason"],
    )


# --- assignments -----------------------------------------------------------------------------------------


async def insert_assignment(
    conn: Connection,
    *,
    ticket_id: uuid.UUID,
    agent_id: str,
    queue: str,
    via: str,
    waited: timedelta | None,
    at: datetime,
) -> None:
    """Record that ``agent_id`` holds the ticket; the unique index refuses a second open holder."""
    await conn.execute(
        """
        INSERT INTO assignments (ticket_id, agent_id, queue, via, waited, assigned_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        ticket_id,
        agent_id,
        queue,
        via,
        waited,
        at,
    )


async def release_assignment(conn: Connection, ticket_id: uuid.UUID, at: datetime, reason: str) -> str | None:
    """End the ticket's open assignment; the agent who held it, or None if nobody did."""
    agent_id: str | None = await conn.fetchval(
        """
        UPDATE assignments SET released_at = $2, release_reason = $3
        WHERE ticket_id = $1 AND released_at IS NULL
        RETURNING agent_id
        """,
        ticket_id,
        at,
        reason,
    )
    return agent_id
