"""Notifications, readers and preferences. Pure rules, no I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

# Notifications for everyone holding a role are stored once, addressed to the role.
SUPERVISORS = "role:supervisor"
ROLE_PREFIX = "role:"
DEFAULT_LOCALE = "en"
SUPPORTED_LOCALES = ("en", "zh-CN")


class Channel(StrEnum):
    IN_APP = "in_app"
    WEBHOOK = "webhook"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    user_id: str
    channel: Channel
    kind: str
    title: str
    body: str
    ticket_id: str
    source_event_id: str
    created_at: datetime
    data: Mapping[str, str] = field(default_factory=dict)
    security: bool = False
    read_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Preferences:
    user_id: str
    locale: str = DEFAULT_LOCALE
    email: str = ""
    channels: tuple[Channel, ...] = (Channel.IN_APP, Channel.EMAIL)
    quiet_start: time | None = None
    quiet_end: time | None = None
    time_zone: str = "UTC"
    updated_at: datetime | None = None

    def wants(self, channel: Channel, *, security: bool) -> bool:
        """Security alerts go out on every channel the person has; anything else only on the chosen ones."""
        return security or channel in self.channels


def default_preferences(user_id: str, locale: str = "") -> Preferences:
    return Preferences(user_id=user_id, locale=normalise_locale(locale))


def normalise_locale(tag: str) -> str:
    """``zh``, ``zh-CN``, ``zh_Hans`` → ``zh-CN``; anything else → ``en``."""
    return "zh-CN" if tag.replace("_", "-").split("-")[0].lower() == "zh" else DEFAULT_LOCALE


def is_audience(recipient: str) -> bool:
    return recipient.startswith(ROLE_PREFIX)


def readers_of(user_id: str, audiences: Sequence[str]) -> list[str]:
    """The recipients whose notifications a reader sees: themself and their role audiences."""
    return [user_id, *(a for a in audiences if is_audience(a))]


def quiet_until(prefs: Preferences, now: datetime) -> datetime | None:
    """When the person's quiet hours end, if ``now`` falls inside them; None outside (or without any).

    Quiet hours may span midnight (22:00-07:00). They are local to the person's time zone, DST included.
    """
    if prefs.quiet_start is None or prefs.quiet_end is None or prefs.quiet_start == prefs.quiet_end:
        return None
    zone = ZoneInfo(prefs.time_zone)
    local = now.astimezone(zone)
    start, end, clock = prefs.quiet_start, prefs.quiet_end, local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=zone)


@dataclass(frozen=True, slots=True)
class Intent:
    """Someone is to be told something: a kind, the facts its template needs, and the ticket it is about."""

    recipient: str
    kind: str
    facts: Mapping[str, str]
    ticket_id: str = ""
    security: bool = False
    # The locale to use when the recipient has no stored preference (e.g. the ticket's language).
    fallback_locale: str = ""
    # An address to email when the recipient stored none (the wallet sends one with its alerts).
    fallback_email: str = ""
