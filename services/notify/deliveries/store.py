"""SQL for webhook endpoints, deliveries and their attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.kit import wake
from services.kit.db import Connection
from services.notify.deliveries.model import (
    Attempt,
    Delivery,
    DeliveryChannel,
    DeliveryStatus,
    Endpoint,
    NewDelivery,
    Outcome,
)

# Deliveries written or replayed by this process wake its workers when the transaction commits.
DELIVERIES_DUE = wake.WakeSignal("deliveries")

_ENDPOINT = "id, subscriber, url, secret, event_types, enabled, description, version, created_at, updated_at"
_DELIVERY = (
    "id, channel, target, endpoint_id, event_id, event_type, notification_id, payload, status, attempts, "
    "attempts_before_replay, next_attempt_at, last_error, created_at, delivered_at"
)


async def create_endpoint(
    conn: Connection, request_id: str, e: Endpoint, fingerprint: str
) -> tuple[Endpoint, bool, str]:
    """The endpoint, whether it is new, and the fingerprint of the request that created it: the same request id
    answers the endpoint it created first."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO webhook_endpoints (request_id, id, subscriber, url, secret, event_types, enabled, description,
                                       request_fingerprint)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING {_ENDPOINT}
        """,
        request_id,
        e.id,
        e.subscriber,
        e.url,
        e.secret,
        list(e.event_types),
        e.enabled,
        e.description,
        fingerprint,
    )
    if row is not None:
        return _endpoint(row), True, fingerprint
    existing = await conn.fetchrow(
        f"SELECT request_fingerprint, {_ENDPOINT} FROM webhook_endpoints WHERE request_id = $1", request_id
    )
    if existing is None:  # the conflicting insert rolled back after all; rare, and safe to retry
        raise asyncpg.SerializationError("concurrent create with the same request_id")
    return _endpoint(existing), False, existing["request_fingerprint"]


async def endpoint(conn: Connection, endpoint_id: uuid.UUID) -> Endpoint | None:
    row = await conn.fetchrow(f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE id = $1", endpoint_id)
    return _endpoint(row) if row else None


async def endpoints(conn: Connection, *, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Endpoint]:
    rows = await conn.fetch(
        f"""
        SELECT {_ENDPOINT} FROM webhook_endpoints
        WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1, $2::uuid)
        ORDER BY created_at, id LIMIT $3
        """,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_endpoint(r) for r in rows]


async def enabled_endpoints(conn: Connection) -> list[Endpoint]:
    rows = await conn.fetch(f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE enabled")
    return [_endpoint(r) for r in rows]


async def update_endpoint(conn: Connection, e: Endpoint, expected_version: int) -> Endpoint | None:
    """Replace the editable fields; None if missing or (with ``expected_version``) changed meanwhile."""
    row = await conn.fetchrow(
        f"""
        UPDATE webhook_endpoints SET url = $2, event_types = $3, enabled = $4, description = $5,
            version = version + 1, updated_at = now()
        WHERE id = $1 AND ($6 = 0 OR version = $6)
        RETURNING {_ENDPOINT}
        """,
        e.id,
        e.url,
        list(e.event_types),
        e.enabled,
        e.description,
        expected_version,
    )
    return _endpoint(row) if row else None


async def delete_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval("DELETE FROM webhook_endpoints WHERE id = $1 RETURNING true", endpoint_id))


async def add_deliveries(conn: Connection, items: Sequence[NewDelivery]) -> None:
    """Record deliveries in the caller's transaction; a second one for the same event and target is dropped."""
    if not items:
        return
    await conn.executemany(
        """
        INSERT INTO deliveries
            (id, channel, target, endpoint_id, event_id, event_type, notification_id, payload, next_attempt_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (channel, target, event_id) DO NOTHING
        """,
        [
            (
                d.id,
                d.channel.value,
                d.target,
                d.endpoint_id,
                d.event_id,
                d.event_type,
                d.notification_id,
                d.payload,
                d.next_attempt_at,
            )
            for d in items
        ],
    )
    wake.after_commit(conn, DELIVERIES_DUE)


async def claim_due(
    conn: Connection, *, busy_targets: Sequence[str], per_target: int, scan: int, lease_s: float
) -> list[Delivery]:
    """Take due deliveries (and those whose worker's lease ran out) for this worker.

    Other workers skip locked rows; at most ``per_target`` per target per claim, and none for targets this
    worker already has at its limit, so a slow endpoint's backlog never crowds out the others.
    """
    rows = await conn.fetch(
        f"""
        WITH due AS (
            SELECT id, target, next_attempt_at FROM deliveries
            WHERE ((status = 'pending' AND next_attempt_at <= now())
                   OR (status = 'delivering' AND lease_until < now()))
              AND NOT (target = ANY($1::text[]))
            ORDER BY next_attempt_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        ), ranked AS (
            SELECT id, row_number() OVER (PARTITION BY target ORDER BY next_attempt_at) AS rank FROM due
        )
        UPDATE deliveries d SET status = 'delivering', attempts = d.attempts + 1,
            lease_until = now() + make_interval(secs => $4)
        FROM ranked WHERE d.id = ranked.id AND ranked.rank <= $2
        RETURNING {", ".join("d." + c.strip() for c in _DELIVERY.split(","))}
        """,
        list(busy_targets),
        per_target,
        scan,
        lease_s,
    )
    return [_delivery(r) for r in rows]


async def record_outcome(
    conn: Connection, d: Delivery, outcome: Outcome, *, retry_at: datetime | None, finished_at: datetime
) -> None:
    """Log the attempt and move the delivery on: delivered, retried at ``retry_at``, or dead-lettered."""
    await conn.execute(
        """
        INSERT INTO delivery_attempts (delivery_id, number, started_at, duration_ms, status_code, error)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        d.id,
        d.attempts,
        outcome.started_at,
        outcome.duration_ms,
        outcome.status_code,
        outcome.error[:2000],
    )
    if outcome.ok:
        status, next_at = DeliveryStatus.DELIVERED, d.next_attempt_at
    elif retry_at is not None:
        status, next_at = DeliveryStatus.PENDING, retry_at
    else:
        status, next_at = DeliveryStatus.DEAD_LETTERED, d.next_attempt_at
    await conn.execute(
        """
        UPDATE deliveries SET status = $2, next_attempt_at = $3, lease_until = NULL, last_error = $4,
            delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END
        WHERE id = $1 AND status = 'delivering' AND attempts = $6
        """,
        d.id,
        status.value,
        next_at,
        outcome.error[:2000],
        finished_at,
        d.attempts,
    )


async def deliveries(
    conn: Connection,
    *,
    status: DeliveryStatus | None,
    channel: DeliveryChannel | None,
    endpoint_id: uuid.UUID | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Delivery]:
    rows = await conn.fetch(
        f"""
        SELECT {_DELIVERY} FROM deliveries
        WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR channel = $2)
          AND ($3::uuid IS NULL OR endpoint_id = $3)
          AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
        ORDER BY created_at DESC, id DESC LIMIT $6
        """,
        status.value if status else None,
        channel.value if channel else None,
        endpoint_id,
        before[0] if before else None,
        before[1] if before else None,
        limit,
    )
    return [_delivery(r) for r in rows]


async def delivery(conn: Connection, delivery_id: uuid.UUID) -> Delivery | None:
    row = await conn.fetchrow(f"SELECT {_DELIVERY} FROM deliveries WHERE id = $1", delivery_id)
    if row is None:
        return None
    attempts = await conn.fetch(
        """
        SELECT number, started_at, duration_ms, status_code, error FROM delivery_attempts
        WHERE delivery_id = $1 ORDER BY id
        """,
        delivery_id,
    )
    return _delivery(row, tuple(Attempt(**dict(a)) for a in attempts))


async def replay(conn: Connection, delivery_id: uuid.UUID, at: datetime) -> bool:
    """Due again now with a fresh attempt budget; False if missing, in-app or an attempt is under way."""
    replayed = bool(
        await conn.fetchval(
            """
            UPDATE deliveries SET status = 'pending', next_attempt_at = $2, attempts_before_replay = attempts,
                last_error = ''
            WHERE id = $1 AND status <> 'delivering' AND channel <> 'in_app'
            RETURNING true
            """,
            delivery_id,
            at,
        )
    )
    if replayed:
        wake.after_commit(conn, DELIVERIES_DUE)
    return replayed


def _endpoint(row: asyncpg.Record) -> Endpoint:
    values = {k: v for k, v in dict(row).items() if k != "request_fingerprint"}
    return Endpoint(**{**values, "event_types": tuple(row["event_types"])})


def _delivery(row: asyncpg.Record, attempt_log: tuple[Attempt, ...] = ()) -> Delivery:
    values = dict(row)
    return Delivery(
        **{
            **values,
            "channel": DeliveryChannel(values["channel"]),
            "status": DeliveryStatus(values["status"]),
            "payload": bytes(values["payload"]),
        },
        attempt_log=attempt_log,
    )
