"""What readers ask of notify: their inbox, what a reconnecting stream missed, read marks, preferences,
and disowning a security alert."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.pagination import decode_token, encode_token, page_size
from services.notify import store
from services.notify.domain import (
    SUPPORTED_LOCALES,
    Channel,
    Notification,
    Preferences,
    default_preferences,
    readers_of,
)

_MAX_REPLAY = 500
_DEFAULT_REPLAY = 100
_MAX_EMAIL = 254


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[Notification]
    next_token: str
    unread: int


@dataclass(frozen=True, slots=True)
class DisownedAlert:
    notification: Notification
    alert_id: str
    locale: str


def _require_user(user_id: str) -> None:
    if not user_id:
        raise InvalidArgument("invalid_argument", "user_id: required", field="user_id")


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class Inbox:
    def __init__(self, pool: asyncpg.Pool, *, replay_overlap_s: float) -> None:
        self._pool = pool
        self._overlap_s = replay_overlap_s

    async def page(
        self, user_id: str, audiences: Sequence[str], requested_size: int, token: str, *, unread_only: bool
    ) -> InboxPage:
        _require_user(user_id)
        size = page_size(requested_size)
        cursor = decode_token(token)
        try:
            before = (datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["id"])) if cursor else None
        except (KeyError, TypeError, ValueError):
            raise InvalidArgument("invalid_page_token", "page_token: not a token from a previous page") from None
        who = readers_of(user_id, audiences)
        async with self._pool.acquire() as conn:
            items = await store.inbox(conn, user_id, who, before=before, unread_only=unread_only, limit=size)
            unread = await store.unread_count(conn, user_id, who)
        last = items[-1] if len(items) == size else None
        next_token = encode_token({"t": last.created_at.isoformat(), "id": str(last.id)}) if last else ""
        return InboxPage(items, next_token, unread)

    async def replay(self, user_id: str, audiences: Sequence[str], after_id: str, limit: int) -> list[Notification]:
        _require_user(user_id)
        after = _uuid(after_id)
        if after is None:
            return []
        bounded = min(limit or _DEFAULT_REPLAY, _MAX_REPLAY)
        async with self._pool.acquire() as conn:
            return await store.replay_after(
                conn, user_id, readers_of(user_id, audiences), after, overlap_s=self._overlap_s, limit=bounded
            )

    async def mark_read(self, user_id: str, audiences: Sequence[str], ids: Sequence[str], everything: bool) -> int:
        _require_user(user_id)
        if not everything and not ids:
            raise InvalidArgument("invalid_argument", "notification_ids: required unless all", field="notification_ids")
        wanted = None if everything else [u for u in (_uuid(i) for i in ids) if u is not None]
        async with self._pool.acquire() as conn:
            return await store.mark_read(conn, user_id, readers_of(user_id, audiences), wanted, datetime.now(UTC))

    async def preferences(self, user_id: str) -> Preferences:
        _require_user(user_id)
        async with self._pool.acquire() as conn:
            found = await store.preferences_of(conn, [user_id])
        return found.get(user_id) or default_preferences(user_id)

    async def save_preferences(self, prefs: Preferences) -> Preferences:
        _require_user(prefs.user_id)
        _check_preferences(prefs)
        async with self._pool.acquire() as conn:
            return await store.save_preferences(conn, replace(prefs, channels=tuple(prefs.channels)))

    async def disown_alert(self, user_id: str, notification_id: str) -> DisownedAlert:
        """The customer's own security alert, marked "this wasn't me"; repeated calls answer the same."""
        _require_user(user_id)
        nid = _uuid(notification_id)
        async with self._pool.acquire() as conn, conn.transaction():
            found = await store.notification_of(conn, user_id, nid) if nid else None
            if found is None:
                raise NotFound("notification_not_found", "no such notification for this user")
            alert_id = found.data.get("alert_id", "")
            if not found.security or not alert_id:
                raise FailedPrecondition("not_a_security_alert", "only a security alert can be disowned")
            await store.mark_disowned(conn, found.id, datetime.now(UTC))
        return DisownedAlert(found, alert_id, found.data.get("locale", "en"))


def _check_preferences(p: Preferences) -> None:
    if p.locale not in SUPPORTED_LOCALES:
        raise InvalidArgument("invalid_argument", f"locale: one of {', '.join(SUPPORTED_LOCALES)}", field="locale")
    if p.email and (len(p.email) > _MAX_EMAIL or "@" not in p.email.strip("@") or any(c.isspace() for c in p.email)):
        raise InvalidArgument("invalid_argument", "email: not an address", field="email")
    if Channel.WEBHOOK in p.channels:
        raise InvalidArgument(
            "invalid_argument", "channels: webhooks are per subscriber, not per person", field="channels"
        )
    if (p.quiet_start is None) != (p.quiet_end is None):
        raise InvalidArgument("invalid_argument", "quiet_start and quiet_end: both or neither", field="quiet_start")
    try:
        ZoneInfo(p.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument("invalid_argument", "time_zone: not an IANA zone", field="time_zone") from None
