"""Routing: the things routing knows about and their validation. Pure: no I/O, no clock."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.errors import InvalidArgument

# Where each category waits when no routing rule takes it (the seeded rules say the same).
_QUEUE_BY_CATEGORY = {
    "payment_failed": "payments",
    "transaction_query": "payments",
    "account_locked": "account_security",
    "account_frozen": "account_security",
    "suspicious_activity": "account_security",
    "password_reset": "account_security",
    "bank_card": "cards",
    "complaint": "complaints",
    "beta_access": "general",
    "other": "general",
}
CATEGORIES = frozenset(_QUEUE_BY_CATEGORY)
DEFAULT_QUEUE = "general"
PRIORITIES = ("low", "normal", "high", "urgent")
# Higher first in the waiting order.
PRIORITY_RANK = {p: i + 1 for i, p in enumerate(PRIORITIES)}
MIN_PROFICIENCY, MAX_PROFICIENCY = 1, 5
MAX_CAPACITY = 100
DEFAULT_OFFER_TIMEOUT = timedelta(seconds=30)
MAX_OFFER_TIMEOUT = timedelta(hours=1)

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def queue_for(category: str) -> str:
    return _QUEUE_BY_CATEGORY.get(category, DEFAULT_QUEUE)


class Presence(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class EntryState(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    PARKED = "parked"


class OfferState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    proficiency: int


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What an admin sets: everything but presence and load."""

    display_name: str
    skills: tuple[Skill, ...]
    languages: tuple[str, ...]
    capacity: int


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    display_name: str
    skills: tuple[Skill, ...]
    languages: tuple[str, ...]
    capacity: int
    presence: Presence
    # Pending offers plus tickets held.
    active: int
    last_assigned_at: datetime | None
    presence_changed_at: datetime
    version: int

    def proficiency(self, skill: str) -> int:
        return next((s.proficiency for s in self.skills if s.name == skill), 0)

    @property
    def takes_work(self) -> bool:
        return self.presence is Presence.AVAILABLE and self.active < self.capacity


@dataclass(frozen=True, slots=True)
class AgentCounts:
    """Every agent once, by what they can do now; ``busy`` ones are available but at capacity."""

    available: int
    busy: int
    away: int
    offline: int


@dataclass(frozen=True, slots=True)
class Requirement:
    skill: str
    min_proficiency: int


@dataclass(frozen=True, slots=True)
class Step:
    """One stage of a rule; it applies once the ticket has been routed for ``after``."""

    after: timedelta
    requirements: tuple[Requirement, ...] = ()
    # Drop the language requirement too.
    any_agent: bool = False
    notify_supervisor: bool = False


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Empty tuples match anything."""

    categories: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    customer_tiers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RoutingRule:
    id: uuid.UUID
    name: str
    position: int
    match: RuleMatch
    queue: str
    steps: tuple[Step, ...]
    version: int = 1


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    direct_assignment: bool = False
    offer_timeout: timedelta = DEFAULT_OFFER_TIMEOUT
    requeue_on_offline: bool = False
    version: int = 1


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What routing learns about a ticket from ticketing's events."""

    ticket_id: uuid.UUID
    category: str
    language: str
    priority: str
    customer_tier: str
    status: str
    version: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QueueEntry:
    ticket_id: uuid.UUID
    queue: str
    priority: str
    state: EntryState
    ticket_version: int
    ticket_created_at: datetime
    enqueued_at: datetime
    steps: tuple[Step, ...]
    step: int
    routed_since: datetime
    waiting_since: datetime
    category: str = ""
    language: str = ""
    customer_tier: str = ""
    ticket_status: str = "new"
    rule_id: uuid.UUID | None = None
    agent_id: str | None = None
    last_agent_id: str | None = None
    sla_due_at: datetime | None = None

    @property
    def current_step(self) -> Step:
        return self.steps[min(self.step, len(self.steps) - 1)]


@dataclass(frozen=True, slots=True)
class Offer:
    id: uuid.UUID
    ticket_id: uuid.UUID
    agent_id: str
    queue: str
    state: OfferState
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    waiting: int
    longest_wait: timedelta
    agents_available: int = 0
    agents_busy: int = 0
    offers_outstanding: int = 0
    estimated_wait: timedelta = field(default=timedelta(0))


# --- validation ------------------------------------------------------------------------------------------


def invalid(field_name: str, problem: str) -> InvalidArgument:
    return InvalidArgument("invalid_argument", f"{field_name}: {problem}", field=field_name)


def check_name(value: str, field_name: str) -> str:
    if not _NAME.match(value):
        raise invalid(field_name, "lowercase letters, digits, '_', '.' or '-', starting with a letter (max 63)")
    return value


def check_languages(languages: Sequence[str], field_name: str = "languages") -> tuple[str, ...]:
    for language in languages:
        if not _LANGUAGE.match(language):
            raise invalid(field_name, f"{language!r} is not a language tag such as 'zh' or 'en'")
    if len(set(languages)) != len(languages):
        raise invalid(field_name, "listed twice")
    return tuple(languages)


def check_proficiency(value: int, field_name: str) -> int:
    if not MIN_PROFICIENCY <= value <= MAX_PROFICIENCY:
        raise invalid(field_name, f"from {MIN_PROFICIENCY} to {MAX_PROFICIENCY}")
    return value


def check_agent_id(agent_id: str) -> str:
    if not agent_id or len(agent_id) > 200:
        raise invalid("agent_id", "required, at most 200 characters")
    return agent_id


def check_profile(profile: AgentProfile) -> AgentProfile:
    if not profile.display_name.strip() or len(profile.display_name) > 200:
        raise invalid("display_name", "required, at most 200 characters")
    names = [s.name for s in profile.skills]
    if len(set(names)) != len(names):
        raise invalid("skills", "a skill is listed twice")
    for skill in profile.skills:
        check_name(skill.name, "skills.name")
        check_proficiency(skill.proficiency, "skills.proficiency")
    check_languages(profile.languages)
    if not 1 <= profile.capacity <= MAX_CAPACITY:
        raise invalid("capacity", f"from 1 to {MAX_CAPACITY}")
    return profile


def check_queue(queue: Queue) -> Queue:
    check_name(queue.name, "queue.name")
    if not timedelta(0) < queue.offer_timeout <= MAX_OFFER_TIMEOUT:
        raise invalid("queue.offer_timeout", "more than zero, at most an hour")
    return queue
