"""Notify use cases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from services.kit.bus.consumer import PoisonEvent
from services.kit.bus.envelope import Envelope
from services.kit.bus.store import add_to_outbox
from services.kit.db import Connection
from services.kit.pagination import decode_token, encode_token, page_size
from services.notify import convert, store
from services.notify.domain import Notification, ticket_received


async def on_ticket_created(conn: Connection, event: Envelope) -> None:
    """Tell the customer their ticket arrived; runs inside the consumer's inbox transaction."""
    ticket = convert.created_ticket(event.data).ticket
    if not ticket.id or not ticket.customer_id:
        raise PoisonEvent("ticket.created without id or customer")
    notification = await store.add_notification(
        conn,
        ticket_received(
            ticket_id=ticket.id,
            customer_id=ticket.customer_id,
            subject=ticket.subject,
            language=ticket.language,
            event_id=event.id,
            now=datetime.now(UTC),
        ),
    )
    if notification is None:
        return
    await add_to_outbox(
        conn,
        [
            Envelope.new(
                type=convert.NOTIFICATION_CREATED,
                source=convert.EVENT_SOURCE,
                subject=notification.ticket_id,
                data=convert.notification_created(notification),
            )
        ],
    )


class NotifyQueries:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def inbox(self, user_id: str, requested_size: int, token: str) -> tuple[list[Notification], str]:
        size = page_size(requested_size)
        cursor = decode_token(token)
        before = (datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["id"])) if cursor else None
        async with self._pool.acquire() as conn:
            items = await store.inbox(conn, user_id, before=before, limit=size)
        last = items[-1] if len(items) == size else None
        next_token = encode_token({"t": last.created_at.isoformat(), "id": str(last.id)}) if last else ""
        return items, next_token
