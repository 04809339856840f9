"""SQL for notifications, read marks, preferences and what notify knows of tickets."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.kit.db import Connection
from services.notify.deliveries.model import NewDelivery
from services.notify.domain import Channel, Notification, Preferences
from services.notify.recipients import TicketView

_COLUMNS = "id, user_id, channel, kind, title, body, ticket_id, source_event_id, created_at, data, security"
_QUALIFIED = ", ".join(f"n.{c.strip()}" for c in _COLUMNS.split(","))
_READ = "(SELECT r.read_at FROM notification_reads r WHERE r.notification_id = n.id AND r.reader_id = $1) AS read_at"


async def add_notifications(conn: Connection, items: Sequence[tuple[Notification, NewDelivery]]) -> set[uuid.UUID]:
    """Insert each notification and, in the same statement, the delivery record of its in-app push.

    Answers the ids inserted: a notification this event already produced for this person (and so its
    delivery) is not inserted again.
    """
    if not items:
        return set()
    rows = await conn.fetch(
        f"""
        WITH input AS (
            SELECT * FROM unnest(
                $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::timestamptz[], $10::jsonb[], $11::boolean[],
                $12::uuid[], $13::text[], $14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::timestamptz[]
            ) AS i({_COLUMNS}, push_id, push_channel, push_target, push_event_id, push_event_type, push_due, pushed_at)
        ), added AS (
            INSERT INTO notifications ({_COLUMNS})
            SELECT {_COLUMNS} FROM input
            ON CONFLICT (source_event_id, kind, user_id) DO NOTHING
            RETURNING id
        ), pushed AS (
            INSERT INTO deliveries (id, channel, target, event_id, event_type, notification_id, payload, status,
                                    next_attempt_at, created_at)
            SELECT push_id, push_channel, push_target, push_event_id, push_event_type, id, ''::bytea, 'delivering',
                   push_due, coalesce(pushed_at, now())
            FROM input JOIN added USING (id)
            ON CONFLICT (channel, target, event_id) DO NOTHING
        )
        SELECT id FROM added
        """,
        *(list(column) for column in zip(*(_notification_values(n, push) for n, push in items), strict=True)),
    )
    return {row["id"] for row in rows}


def _notification_values(n: Notification, push: NewDelivery) -> tuple[object, ...]:
    return (
        n.id,
        n.user_id,
        n.channel.value,
        n.kind,
        n.title,
        n.body,
        n.ticket_id,
        n.source_event_id,
        n.created_at,
        json.dumps(dict(n.data), ensure_ascii=False),
        n.security,
        push.id,
        push.channel.value,
        push.target,
        push.event_id,
        push.event_type,
        push.next_attempt_at,
        push.created_at,
    )


async def inbox(
    conn: Connection,
    reader: str,
    recipients: Sequence[str],
    *,
    before: tuple[datetime, uuid.UUID] | None,
    unread_only: bool,
    limit: int,
) -> list[Notification]:
    """A reader's notifications, newest first, strictly older than the ``before`` cursor."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, {_READ} FROM notifications n
        WHERE user_id = ANY($2::text[])
          AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
          AND (NOT $5 OR NOT EXISTS (
              SELECT 1 FROM notification_reads r WHERE r.notification_id = n.id AND r.reader_id = $1))
        ORDER BY created_at DESC, id DESC
        LIMIT $6
        """,
        reader,
        list(recipients),
        before[0] if before else None,
        before[1] if before else None,
        unread_only,
        limit,
    )
    return [_notification(r) for r in rows]


async def unread_count(conn: Connection, reader: str, recipients: Sequence[str]) -> int:
    count = await conn.fetchval(
        """
        SELECT count(*) FROM notifications n
        WHERE user_id = ANY($2::text[])
          AND NOT EXISTS (SELECT 1 FROM notification_reads r WHERE r.notification_id = n.id AND r.reader_id = $1)
        """,
        reader,
        list(recipients),
    )
    return int(count)


async def replay_after(
    conn: Connection, reader: str, recipients: Sequence[str], after: uuid.UUID, *, overlap_s: float, limit: int
) -> list[Notification]:
    """Notifications committed after ``after``, oldest first.

    Includes those created up to ``overlap_s`` before it (other than itself): a notification numbered earlier
    may commit later, and clients drop the ones they already hold by id.
    """
    rows = await conn.fetch(
        f"""
        WITH last AS (SELECT seq, created_at FROM notifications WHERE id = $3 AND user_id = ANY($2::text[]))
        SELECT {_QUALIFIED}, {_READ} FROM notifications n, last
        WHERE n.user_id = ANY($2::text[]) AND n.id <> $3
          AND (n.seq > last.seq OR n.created_at >= last.created_at - make_interval(secs => $4))
        ORDER BY n.seq
        LIMIT $5
        """,
        reader,
        list(recipients),
        after,
        overlap_s,
        limit,
    )
    return [_notification(r) for r in rows]


async def mark_read(
    conn: Connection, reader: str, recipients: Sequence[str], ids: Sequence[uuid.UUID] | None, at: datetime
) -> int:
    """Mark the given notifications (None: all) of the reader read; returns how many were unread."""
    result = await conn.execute(
        """
        INSERT INTO notification_reads (notification_id, reader_id, read_at)
        SELECT n.id, $1, $4 FROM notifications n
        WHERE n.user_id = ANY($2::text[]) AND ($3::uuid[] IS NULL OR n.id = ANY($3::uuid[]))
        ON CONFLICT DO NOTHING
        """,
        reader,
        list(recipients),
        list(ids) if ids is not None else None,
        at,
    )
    return int(result.split()[-1])


async def notification_of(conn: Connection, reader: str, notification_id: uuid.UUID) -> Notification | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, {_READ} FROM notifications n WHERE id = $2 AND user_id = $1", reader, notification_id
    )
    return _notification(row) if row else None


async def mark_disowned(conn: Connection, notification_id: uuid.UUID, at: datetime) -> None:
    await conn.execute(
        "UPDATE notifications SET disowned_at = coalesce(disowned_at, $2) WHERE id = $1", notification_id, at
    )


_PREF_COLUMNS = "user_id, locale, email, channels, quiet_start, quiet_end, time_zone, updated_at"


async def preferences_of(conn: Connection, user_ids: Sequence[str]) -> dict[str, Preferences]:
    if not user_ids:
        return {}
    rows = await conn.fetch(f"SELECT {_PREF_COLUMNS} FROM preferences WHERE user_id = ANY($1::text[])", list(user_ids))
    return {r["user_id"]: _preferences(r) for r in rows}


async def save_preferences(conn: Connection, p: Preferences) -> Preferences:
    row = await conn.fetchrow(
        f"""
        INSERT INTO preferences ({_PREF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, now())
        ON CONFLICT (user_id) DO UPDATE SET
            locale = EXCLUDED.locale, email = EXCLUDED.email, channels = EXCLUDED.channels,
            quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end,
            time_zone = EXCLUDED.time_zone, updated_at = EXCLUDED.updated_at
        RETURNING {_PREF_COLUMNS}
        """,
        p.user_id,
        p.locale,
        p.email,
        [c.value for c in p.channels],
        p.quiet_start,
        p.quiet_end,
        p.time_zone,
    )
    assert row is not None
    return _preferences(row)


_TICKET_COLUMNS = "ticket_id, customer_id, assignee_id, language, subject, category, version"


async def ticket_views(conn: Connection, ticket_ids: Sequence[str]) -> dict[str, TicketView]:
    """The views of these tickets, locked for the caller's transaction (in id order: no deadlock between two
    transactions locking overlapping sets)."""
    if not ticket_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {_TICKET_COLUMNS} FROM tickets WHERE ticket_id = ANY($1::text[]) ORDER BY ticket_id FOR UPDATE",
        list(ticket_ids),
    )
    return {row["ticket_id"]: TicketView(**dict(row)) for row in rows}


async def save_ticket_views(conn: Connection, views: Sequence[TicketView]) -> None:
    """Insert or update each view (one per ticket), unless the stored one has a later version."""
    if not views:
        return
    await conn.execute(
        f"""
        INSERT INTO tickets ({_TICKET_COLUMNS})
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
        ON CONFLICT (ticket_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, assignee_id = EXCLUDED.assignee_id,
            language = CASE WHEN EXCLUDED.language = '' THEN tickets.language ELSE EXCLUDED.language END,
            subject = CASE WHEN EXCLUDED.subject = '' THEN tickets.subject ELSE EXCLUDED.subject END,
            category = CASE WHEN EXCLUDED.category = '' THEN tickets.category ELSE EXCLUDED.category END,
            version = EXCLUDED.version
        WHERE tickets.version < EXCLUDED.version
        """,
        [v.ticket_id for v in views],
        [v.customer_id for v in views],
        [v.assignee_id for v in views],
        [v.language for v in views],
        [v.subject for v in views],
        [v.category for v in views],
        [v.version for v in views],
    )


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
        data=json.loads(row["data"]),
        security=row["security"],
        read_at=row["read_at"],
    )


def _preferences(row: asyncpg.Record) -> Preferences:
    return Preferences(
        user_id=row["user_id"],
        locale=row["locale"],
        email=row["email"],
        channels=tuple(Channel(c) for c in row["channels"]),
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
        time_zone=row["time_zone"],
        updated_at=row["updated_at"],
    )
