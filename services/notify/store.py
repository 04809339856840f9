"""SQL for notifications."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from services.kit.db import Connection
from services.notify.domain import Channel, Notification

_COLUMNS = "id, user_id, channel, kind, title, body, ticket_id, source_event_id, created_at"


async def add_notification(conn: Connection, n: Notification) -> Notification | None:
    """Insert; None if this event already produced this notification for this person."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO notifications ({_COLUMNS})
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (source_event_id, kind, user_id) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        n.id,
        n.user_id,
        n.channel.value,
        n.kind,
        n.title,
        n.body,
        n.ticket_id,
        n.source_event_id,
        n.created_at,
    )
    return _notification(row) if row else None


async def inbox(
    conn: Connection, user_id: str, *, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Notification]:
    """A user's notifications, newest first, strictly older than the ``before`` cursor."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM notifications
        WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $4
        """,
        user_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [_notification(r) for r in rows]


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(
        id=row["id"],
        user_id=row["user_id"],
        channel=Channel(row["channel"]),
        kind=row["kind"],
        title=row["title"],
        body=row["body"],
        ticket_id=row["ticket_id"],
        source_event_id=row["source_event_id"],
        created_at=row["created_at"],
    )
