"""SQL for the outbox, the inbox and dead letters. Every query runs in the caller's schema (search_path)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.kit import wake
from services.kit.bus.envelope import Envelope
from services.kit.db import Connection

# For stores that write a row and its event in one statement: INSERT INTO outbox (OUTBOX_COLUMNS) with the
# values of ``outbox_values`` (seven parameters, the last cast to jsonb), then ``outbox_written(conn)``.
OUTBOX_COLUMNS = "event_id, event_type, source, subject, event_time, payload, trace"


def outbox_values(e: Envelope) -> tuple[uuid.UUID, str, str, str, datetime, bytes, str]:
    return uuid.UUID(e.id), e.type, e.source, e.subject, e.time, e.data, json.dumps(dict(e.trace))


async def add_to_outbox(conn: Connection, events: Sequence[Envelope]) -> None:
    """Record events in the caller's transaction; they are published only if it commits."""
    if not events:
        return
    # One statement for any number of events (executemany would be one per row).
    columns = list(zip(*(outbox_values(e) for e in events), strict=True))
    await conn.execute(
        f"""
        INSERT INTO outbox ({OUTBOX_COLUMNS})
        SELECT * FROM unnest(
            $1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bytea[], $7::jsonb[]
        )
        """,
        *(list(c) for c in columns),
    )
    outbox_written(conn)


def outbox_written(conn: Connection) -> None:
    """The caller's transaction wrote outbox rows: wake this process's relay when it commits."""
    wake.after_commit(conn, wake.OUTBOX)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    row_id: int
    envelope: Envelope


async def lock_unpublished(conn: Connection, limit: int) -> list[OutboxRow]:
    """Oldest unpublished rows, locked for this transaction; other relay replicas skip them."""
    rows = await conn.fetch(
        """
        SELECT id, event_id, event_type, source, subject, event_time, payload, trace
        FROM outbox
        WHERE published_at IS NULL
        ORDER BY id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
        """,
        limit,
    )
    return [
        OutboxRow(
            row_id=r["id"],
            envelope=Envelope(
                id=str(r["event_id"]),
                type=r["event_type"],
                source=r["source"],
                subject=r["subject"],
                time=r["event_time"],
                data=bytes(r["payload"]),
                trace=json.loads(r["trace"]),
            ),
        )
        for r in rows
    ]


async def mark_published(conn: Connection, row_ids: Sequence[int]) -> None:
    await conn.execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", list(row_ids))


async def claim_event(conn: Connection, consumer: str, event_id: str) -> bool:
    """Record the event as handled by ``consumer``; False if it already was (a redelivery or duplicate)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)
        ON CONFLICT DO NOTHING
        RETURNING true
        """,
        consumer,
        event_id,
    )
    return bool(inserted)


async def claim_events(conn: Connection, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """``claim_event`` for several in one statement: the ids not handled before."""
    rows = await conn.fetch(
        """
        INSERT INTO inbox (consumer, event_id) SELECT $1, unnest($2::text[])
        ON CONFLICT DO NOTHING
        RETURNING event_id
        """,
        consumer,
        list(event_ids),
    )
    return {row["event_id"] for row in rows}


async def unclaim_events(conn: Connection, consumer: str, event_ids: Collection[str]) -> None:
    """Undo ``claim_events`` for events the caller's transaction leaves to be handled later."""
    if event_ids:
        await conn.execute(
            "DELETE FROM inbox WHERE consumer = $1 AND event_id = ANY($2::text[])", consumer, list(event_ids)
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    consumer: str
    stream: str
    stream_seq: int
    nats_subject: str
    event_id: str | None
    headers: dict[str, str]
    payload: bytes
    error: str
    deliveries: int


async def record_dead_letter(conn: Connection, letter: DeadLetter) -> None:
    """Keep a message that will never be processed, once, so an operator can inspect and replay it."""
    await conn.execute(
        """
        INSERT INTO dead_letters
            (consumer, stream, stream_seq, nats_subject, event_id, headers, payload, error, deliveries)
        VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
        ON CONFLICT (consumer, stream, stream_seq) DO NOTHING
        """,
        letter.consumer,
        letter.stream,
        letter.stream_seq,
        letter.nats_subject,
        letter.event_id,
        json.dumps(letter.headers),
        letter.payload,
        letter.error,
        letter.deliveries,
    )


async def list_dead_letters(conn: Connection, consumer: str | None = None) -> list[DeadLetter]:
    rows = await conn.fetch(
        """
        SELECT consumer, stream, stream_seq, nats_subject, event_id, headers, payload, error, deliveries
        FROM dead_letters
        WHERE $1::text IS NULL OR consumer = $1
        ORDER BY id
        """,
        consumer,
    )
    return [
        DeadLetter(
            consumer=r["consumer"],
            stream=r["stream"],
            stream_seq=r["stream_seq"],
            nats_subject=r["nats_subject"],
            event_id=r["event_id"],
            headers=json.loads(r["headers"]),
            payload=bytes(r["payload"]),
            error=r["error"],
            deliveries=r["deliveries"],
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    unpublished: int
    oldest_age_s: float


async def outbox_backlog(conn: Connection) -> OutboxBacklog:
    """How many rows wait for the relay and how long the oldest has waited (by the database clock)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS unpublished, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest
        FROM outbox WHERE published_at IS NULL
        """
    )
    assert row is not None
    return OutboxBacklog(unpublished=row["unpublished"], oldest_age_s=float(row["oldest"]))


async def unreplayed_dead_letters(conn: Connection) -> dict[str, int]:
    """Dead letters not yet replayed, per consumer."""
    rows = await conn.fetch("SELECT consumer, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY 1")
    return {r["consumer"]: r["n"] for r in rows}
