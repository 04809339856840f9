"""SQL for tickets, their messages, their timeline, and the priority rules."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.kit import idempotency_store
from services.kit.bus.envelope import Envelope
from services.kit.bus.store import OUTBOX_COLUMNS, outbox_values, outbox_written
from services.kit.db import Connection
from services.ticketing.conversation import Attachment, Message, Visibility
from services.ticketing.domain import (
    Actor,
    ActorType,
    Category,
    Change,
    Channel,
    Csat,
    Priority,
    Status,
    Ticket,
    WalletContext,
)

_COLUMNS = (
    "id, customer_id, channel, category, subject, description, priority, status, language, customer_tier, "
    "wallet_context, version, created_at, updated_at, assignee_id, flags, resolution_note, resolved_at, "
    "csat_score, csat_comment, csat_at"
)
_MESSAGE_COLUMNS = "seq, id, ticket_id, author_type, author_id, visibility, body, attachments, redactions, created_at"


async def insert_ticket(conn: Connection, ticket: Ticket, request_id: str, fingerprint: str) -> Ticket | None:
    """Insert, or return None when a ticket with ``request_id`` already exists."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO tickets (request_id, request_fingerprint, {_COLUMNS})
        VALUES ($1, $23, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16, $17, $18, $19,
                $20, $21, $22)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        request_id,
        *_ticket_values(ticket),
        fingerprint,
    )
    return _ticket(row) if row else None


async def claim_request(conn: Connection, request_id: str) -> bool:
    """Whether no other transaction is creating a ticket with ``request_id`` right now (see
    ``services.kit.idempotency_store``); call inside the creating transaction."""
    return await idempotency_store.claim(conn, TICKET_CLAIM_SCOPE, request_id)


# Tickets claim the bare request_id, inside the statement that writes them (``insert_announced_tickets``).
TICKET_CLAIM_SCOPE = ""


@dataclass(frozen=True, slots=True)
class AnnouncedTicket:
    """A ticket just opened, to be written with its first timeline line and its event."""

    ticket: Ticket
    request_id: str
    fingerprint: str
    created: Change
    trace_id: str
    event: Envelope


# What writing an ``AnnouncedTicket`` came to: whether its request_id was claimed, and whether the ticket is
# new (False: a ticket with that request_id was already there).
Written = tuple[bool, bool]

_OPENING_COLUMNS = (
    "id, customer_id, channel, category, subject, description, priority, status, language, customer_tier, "
    "wallet_context, version, created_at, updated_at"
)


async def insert_announced_tickets(conn: Connection, opened: Sequence[AnnouncedTicket]) -> list[Written]:
    """Claim each request_id (see ``claim_request``) and insert each ticket with its first timeline line and its
    event, in one statement for them all: one round trip, atomic without a transaction block. Nothing is
    written for a ticket whose claim fails or whose request_id already has a ticket. The request_ids must
    differ; a new ticket's lifecycle columns (assignee, flags, resolution, CSAT) take their defaults."""
    for row in opened:
        if row.ticket.version != 1 or row.ticket.flags or row.ticket.assignee_id or row.ticket.csat:
            raise ValueError(f"ticket {row.ticket.id} is not newly opened")
    columns = list(zip(*(_announced_values(row) for row in opened), strict=True))
    rows = await conn.fetch(
        f"""
        WITH input AS (
            SELECT * FROM unnest(
                $1::text[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                $9::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[], $14::bigint[],
                $15::timestamptz[], $16::timestamptz[],
                $17::text[], $18::text[], $19::text[], $20::jsonb[], $21::text[],
                $22::uuid[], $23::text[], $24::text[], $25::text[], $26::timestamptz[], $27::bytea[], $28::jsonb[]
            ) AS i(request_id, fingerprint, {_OPENING_COLUMNS},
                   actor_type, actor_id, action, details, trace_id, {_OUTBOX_INPUT})
        ), claim AS (
            SELECT request_id, {idempotency_store.claim_expression("request_id")} AS claimed FROM input
        ), created AS (
            INSERT INTO tickets (request_id, request_fingerprint, {_OPENING_COLUMNS})
            SELECT request_id, fingerprint, {_OPENING_COLUMNS}
            FROM input JOIN claim USING (request_id) WHERE claimed
            ON CONFLICT (request_id) DO NOTHING
            RETURNING request_id
        ), audit AS (
            INSERT INTO timeline (ticket_id, version, actor_type, actor_id, action, details, trace_id, created_at)
            SELECT id, version, actor_type, actor_id, action, details, trace_id, created_at
            FROM input JOIN created USING (request_id)
        ), announced AS (
            INSERT INTO outbox ({OUTBOX_COLUMNS})
            SELECT {_OUTBOX_INPUT} FROM input JOIN created USING (request_id)
        )
        SELECT claim.request_id, claim.claimed, created.request_id IS NOT NULL AS created
        FROM claim LEFT JOIN created USING (request_id)
        """,
        *(list(c) for c in columns),
    )
    written = {row["request_id"]: (bool(row["claimed"]), bool(row["created"])) for row in rows}
    if any(created for _, created in written.values()):
        outbox_written(conn)
    return [written[row.request_id] for row in opened]


# The outbox columns as the input of ``insert_announced_tickets`` names them (its tickets have a subject too).
_OUTBOX_INPUT = OUTBOX_COLUMNS.replace("subject", "event_subject")


def _announced_values(row: AnnouncedTicket) -> tuple[Any, ...]:
    t, change = row.ticket, row.created
    return (
        row.request_id,
        row.fingerprint,
        t.id,
        t.customer_id,
        t.channel.value,
        t.category.value,
        t.subject,
        t.description,
        t.priority.value,
        t.status.value,
        t.language,
        t.customer_tier,
        _wallet_json(t.wallet_context),
        t.version,
        t.created_at,
        t.updated_at,
        *_timeline_values(change)[1:],
        row.trace_id,
        *outbox_values(row.event),
    )


async def update_ticket(conn: Connection, ticket: Ticket) -> None:
    """Write every mutable field; the caller holds the row lock from ``lock_ticket``."""
    await conn.execute(
        """
        UPDATE tickets SET priority = $2, status = $3, version = $4, updated_at = $5, assignee_id = $6,
            flags = $7, resolution_note = $8, resolved_at = $9, csat_score = $10, csat_comment = $11, csat_at = $12
        WHERE id = $1
        """,
        ticket.id,
        ticket.priority.value,
        ticket.status.value,
        ticket.version,
        ticket.updated_at,
        ticket.assignee_id,
        list(ticket.flags),
        ticket.resolution_note,
        ticket.resolved_at,
        ticket.csat.score if ticket.csat else None,
        ticket.csat.comment if ticket.csat else None,
        ticket.csat.created_at if ticket.csat else None,
    )


async def ticket_by_request_id(conn: Connection, request_id: str) -> tuple[Ticket, str] | None:
    """The ticket ``request_id`` created and the fingerprint of that request."""
    row = await conn.fetchrow(f"SELECT request_fingerprint, {_COLUMNS} FROM tickets WHERE request_id = $1", request_id)
    return (_ticket(row), row["request_fingerprint"]) if row else None


async def get_ticket(conn: Connection, ticket_id: uuid.UUID) -> Ticket | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tickets WHERE id = $1", ticket_id)
    return _ticket(row) if row else None


async def lock_ticket(conn: Connection, ticket_id: uuid.UUID) -> Ticket | None:
    """The ticket, locked until the transaction ends: changes to one ticket are applied one at a time."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tickets WHERE id = $1 FOR UPDATE", ticket_id)
    return _ticket(row) if row else None


@dataclass(frozen=True, slots=True)
class TicketFilter:
    customer_id: str = ""
    assignee_id: str = ""
    statuses: tuple[Status, ...] = ()


async def list_tickets(
    conn: Connection, where: TicketFilter, *, before: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[Ticket]:
    """Newest first, strictly older than the ``before`` cursor."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM tickets
        WHERE ($1 = '' OR customer_id = $1)
          AND ($2 = '' OR assignee_id = $2)
          AND (cardinality($3::text[]) = 0 OR status = ANY($3))
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
        ORDER BY created_at DESC, id DESC
        LIMIT $6
        """,
        where.customer_id,
        where.assignee_id,
        [s.value for s in where.statuses],
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [_ticket(r) for r in rows]


async def insert_message(conn: Connection, message: Message, request_id: str) -> bool:
    """Insert; False when the ticket already has a message with ``request_id`` (a retry)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO messages
            (id, ticket_id, request_id, author_type, author_id, visibility, body, attachments, redactions, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
        ON CONFLICT (ticket_id, request_id) DO NOTHING
        RETURNING true
        """,
        message.id,
        message.ticket_id,
        request_id,
        message.author.type.value,
        message.author.id,
        message.visibility.value,
        message.body,
        json.dumps([asdict(a) for a in message.attachments]),
        list(message.redactions),
        message.created_at,
    )
    return bool(inserted)


async def message_by_request_id(conn: Connection, ticket_id: uuid.UUID, request_id: str) -> Message | None:
    row = await conn.fetchrow(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE ticket_id = $1 AND request_id = $2", ticket_id, request_id
    )
    return _message(row)[1] if row else None


async def list_messages(
    conn: Connection, ticket_id: uuid.UUID, *, include_internal: bool, after_seq: int, limit: int
) -> list[tuple[int, Message]]:
    """Oldest first, with each message's sequence number for the next page's cursor."""
    rows = await conn.fetch(
        f"""
        SELECT {_MESSAGE_COLUMNS} FROM messages
        WHERE ticket_id = $1 AND seq > $2 AND ($3 OR visibility = 'public')
        ORDER BY seq
        LIMIT $4
        """,
        ticket_id,
        after_seq,
        include_internal,
        limit,
    )
    return [_message(r) for r in rows]


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    id: int
    ticket_id: uuid.UUID
    version: int
    actor: Actor
    action: str
    details: Mapping[str, str]
    trace_id: str
    created_at: datetime


async def append_timeline(
    conn: Connection, ticket_id: uuid.UUID, changes: Sequence[Change], *, trace_id: str, at: datetime
) -> None:
    await conn.executemany(
        """
        INSERT INTO timeline (ticket_id, version, actor_type, actor_id, action, details, trace_id, created_at)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
        """,
        [(ticket_id, *_timeline_values(c), trace_id, at) for c in changes],
    )


def _timeline_values(c: Change) -> tuple[int, str, str, str, str]:
    """version, actor_type, actor_id, action, details: the columns every timeline line takes from its change."""
    return c.version, c.actor.type.value, c.actor.id, c.action.value, json.dumps(dict(c.details))


async def list_timeline(conn: Connection, ticket_id: uuid.UUID, *, after_id: int, limit: int) -> list[TimelineEntry]:
    rows = await conn.fetch(
        """
        SELECT id, ticket_id, version, actor_type, actor_id, action, details, trace_id, created_at
        FROM timeline WHERE ticket_id = $1 AND id > $2 ORDER BY id LIMIT $3
        """,
        ticket_id,
        after_id,
        limit,
    )
    return [
        TimelineEntry(
            id=r["id"],
            ticket_id=r["ticket_id"],
            version=r["version"],
            actor=Actor(ActorType(r["actor_type"]), r["actor_id"]),
            action=r["action"],
            details=json.loads(r["details"]),
            trace_id=r["trace_id"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


async def priority_rules(conn: Connection) -> dict[Category, Priority]:
    rows = await conn.fetch("SELECT category, priority FROM priority_rules")
    return {Category(r["category"]): Priority(r["priority"]) for r in rows}


async def set_priority_rule(conn: Connection, category: Category, priority: Priority, updated_by: str) -> None:
    await conn.execute(
        """
        INSERT INTO priority_rules (category, priority, updated_by) VALUES ($1, $2, $3)
        ON CONFLICT (category) DO UPDATE SET priority = $2, updated_by = $3, updated_at = now()
        """,
        category.value,
        priority.value,
        updated_by,
    )


def _ticket_values(ticket: Ticket) -> tuple[Any, ...]:
    return (
        ticket.id,
        ticket.customer_id,
        ticket.channel.value,
        ticket.category.value,
        ticket.subject,
        ticket.description,
        ticket.priority.value,
        ticket.status.value,
        ticket.language,
        ticket.customer_tier,
        _wallet_json(ticket.wallet_context),
        ticket.version,
        ticket.created_at,
        ticket.updated_at,
        ticket.assignee_id,
        list(ticket.flags),
        ticket.resolution_note,
        ticket.resolved_at,
        ticket.csat.score if ticket.csat else None,
        ticket.csat.comment if ticket.csat else None,
        ticket.csat.created_at if ticket.csat else None,
    )


def _wallet_json(context: WalletContext) -> str:
    data: dict[str, Any] = asdict(context)
    data["occurred_at"] = context.occurred_at.isoformat() if context.occurred_at else None
    return json.dumps(data)


def _ticket(row: asyncpg.Record) -> Ticket:
    wallet = json.loads(row["wallet_context"])
    occurred = wallet.pop("occurred_at", None)
    return Ticket(
        id=row["id"],
        customer_id=row["customer_id"],
        channel=Channel(row["channel"]),
        category=Category(row["category"]),
        subject=row["subject"],
        description=row["description"],
        priority=Priority(row["priority"]),
        status=Status(row["status"]),
        language=row["language"],
        customer_tier=row["customer_tier"],
        wallet_context=WalletContext(**wallet, occurred_at=datetime.fromisoformat(occurred) if occurred else None),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        assignee_id=row["assignee_id"],
        flags=tuple(row["flags"]),
        resolution_note=row["resolution_note"],
        resolved_at=row["resolved_at"],
        csat=Csat(row["csat_score"], row["csat_comment"] or "", row["csat_at"]) if row["csat_score"] else None,
    )


def _message(row: asyncpg.Record) -> tuple[int, Message]:
    return row["seq"], Message(
        id=row["id"],
        ticket_id=row["ticket_id"],
        author=Actor(ActorType(row["author_type"]), row["author_id"]),
        visibility=Visibility(row["visibility"]),
        body=row["body"],
        attachments=tuple(Attachment(**a) for a in json.loads(row["attachments"])),
        redactions=tuple(row["redactions"]),
        created_at=row["created_at"],
    )
