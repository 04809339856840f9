"""What admins ask of deliveries: webhook endpoints, the delivery log, dead letters and replay."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import asyncpg

from services.kit import idempotency, idempotency_store
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.pagination import decode_token, encode_token, page_size
from services.notify.deliveries import store
from services.notify.deliveries.model import Delivery, DeliveryChannel, DeliveryStatus, Endpoint
from services.notify.delivery_rules import valid_pattern

_MAX_URL = 2048
_MAX_TYPES = 50
_MAX_TEXT = 200
_MAX_DESCRIPTION = 1000
# Scope of CreateWebhookEndpoint's in-flight claim (see services.kit.idempotency_store).
CLAIM_SCOPE = "webhook_endpoint"


def _id(value: str, code: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(code, f"no such {what}") from None


def _cursor(token: str) -> tuple[datetime, uuid.UUID] | None:
    cursor = decode_token(token)
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["id"])
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument("invalid_page_token", "page_token: not a token from a previous page") from None


def host_allowed(url: str, allowed_hosts: Sequence[str]) -> bool:
    """Whether ``url`` names a host webhooks may reach (any, when no list is configured)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return bool(host) and (not allowed_hosts or host in allowed_hosts)


def _check_endpoint(e: Endpoint, allowed_hosts: Sequence[str]) -> None:
    try:
        parts = urlsplit(e.url)
        hostname = parts.hostname
        _ = parts.port
    except ValueError:
        raise InvalidArgument("invalid_argument", "url: not a URL", field="url") from None
    if len(e.url) > _MAX_URL or parts.scheme not in ("http", "https") or not hostname:
        raise InvalidArgument("invalid_argument", "url: an http(s) URL with a host", field="url")
    if not host_allowed(e.url, allowed_hosts):
        raise InvalidArgument("webhook_host_not_allowed", "url: this host is not an allowed webhook host", field="url")
    if not e.event_types or len(e.event_types) > _MAX_TYPES or not all(valid_pattern(t) for t in e.event_types):
        raise InvalidArgument(
            "invalid_argument",
            f"event_types: 1 to {_MAX_TYPES} subjects, '*' and a final '>' as wildcards",
            field="event_types",
        )
    if not 0 < len(e.subscriber) <= _MAX_TEXT:
        raise InvalidArgument("invalid_argument", "subscriber: required, at most 200 characters", field="subscriber")
    if len(e.description) > _MAX_DESCRIPTION:
        raise InvalidArgument("invalid_argument", "description: at most 1000 characters", field="description")


class DeliveryAdmin:
    def __init__(self, pool: asyncpg.Pool, *, allowed_hosts: Sequence[str] = ()) -> None:
        self._pool = pool
        self._allowed_hosts = tuple(allowed_hosts)

    async def create_endpoint(self, request_id: str, e: Endpoint) -> tuple[Endpoint, bool]:
        """Register; a retry with the same request_id returns the original and ``created=False``, another body
        under it is ``idempotency_key_reused``, and while the first is being served ``idempotency_key_in_flight``.
        """
        if not request_id:
            raise InvalidArgument("invalid_argument", "request_id: required", field="request_id")
        _check_endpoint(e, self._allowed_hosts)
        # What the caller asked for; the id, secret, version and times are ours.
        fingerprint = idempotency.fingerprint(e, exclude=("id", "secret", "version", "created_at", "updated_at"))
        fresh = replace(e, id=uuid.uuid4(), secret="whsec_" + secrets.token_urlsafe(32))
        async with self._pool.acquire() as conn, conn.transaction():
            if not await idempotency_store.claim(conn, CLAIM_SCOPE, request_id):
                raise idempotency.key_in_flight()
            endpoint, created, stored = await store.create_endpoint(conn, request_id, fresh, fingerprint)
            idempotency.check_replay(stored, fingerprint, "a webhook endpoint")
            return endpoint, created

    async def endpoint(self, endpoint_id: str) -> Endpoint:
        async with self._pool.acquire() as conn:
            found = await store.endpoint(conn, _id(endpoint_id, "webhook_not_found", "webhook endpoint"))
        if found is None:
            raise NotFound("webhook_not_found", "no such webhook endpoint")
        return found

    async def endpoints(self, requested_size: int, token: str) -> tuple[list[Endpoint], str]:
        size = page_size(requested_size)
        async with self._pool.acquire() as conn:
            items = await store.endpoints(conn, after=_cursor(token), limit=size)
        last = items[-1] if len(items) == size else None
        return items, _token(last.created_at, last.id) if last and last.created_at else ""

    async def update_endpoint(self, e: Endpoint, expected_version: int) -> Endpoint:
        current = await self.endpoint(str(e.id))
        changed = replace(current, url=e.url, event_types=e.event_types, enabled=e.enabled, description=e.description)
        _check_endpoint(changed, self._allowed_hosts)
        async with self._pool.acquire() as conn:
            updated = await store.update_endpoint(conn, changed, expected_version)
        if updated is None:
            raise FailedPrecondition("version_conflict", "the endpoint changed since it was read")
        return updated

    async def delete_endpoint(self, endpoint_id: str) -> None:
        async with self._pool.acquire() as conn:
            if not await store.delete_endpoint(conn, _id(endpoint_id, "webhook_not_found", "webhook endpoint")):
                raise NotFound("webhook_not_found", "no such webhook endpoint")

    async def deliveries(
        self,
        requested_size: int,
        token: str,
        *,
        status: DeliveryStatus | None,
        channel: DeliveryChannel | None,
        endpoint_id: str,
    ) -> tuple[list[Delivery], str]:
        size = page_size(requested_size)
        endpoint = None
        if endpoint_id:
            try:
                endpoint = uuid.UUID(endpoint_id)
            except ValueError:
                raise InvalidArgument("invalid_argument", "endpoint_id: not an id", field="endpoint_id") from None
        async with self._pool.acquire() as conn:
            items = await store.deliveries(
                conn, status=status, channel=channel, endpoint_id=endpoint, before=_cursor(token), limit=size
            )
        last = items[-1] if len(items) == size else None
        return items, _token(last.created_at, last.id) if last else ""

    async def delivery(self, delivery_id: str) -> Delivery:
        async with self._pool.acquire() as conn:
            found = await store.delivery(conn, _id(delivery_id, "delivery_not_found", "delivery"))
        if found is None:
            raise NotFound("delivery_not_found", "no such delivery")
        return found

    async def replay(self, delivery_id: str) -> Delivery:
        did = _id(delivery_id, "delivery_not_found", "delivery")
        async with self._pool.acquire() as conn:
            replayed = await store.replay(conn, did, datetime.now(UTC))
            found = await store.delivery(conn, did)
        if found is None:
            raise NotFound("delivery_not_found", "no such delivery")
        if found.channel is DeliveryChannel.IN_APP:
            # Nothing to resend: the notification stays in the inbox and a reconnecting stream replays it.
            raise FailedPrecondition("delivery_not_replayable", "an in-app push is kept in the inbox, not resent")
        if not replayed:
            raise FailedPrecondition("delivery_in_progress", "an attempt is under way; replay once it ends")
        return found


def _token(at: datetime, item_id: uuid.UUID) -> str:
    return encode_token({"t": at.isoformat(), "id": str(item_id)})
