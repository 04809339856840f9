"""Tickets: pure rules, no I/O.

Every change to a ticket increments its version by one and is described by a ``Change``; a use case that makes
several changes at once (a customer reply that reopens a ticket) yields one ``Change`` per step, each with its
own version, so that every event and timeline line names exactly one version.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.kit.idempotency import fingerprint


class Channel(StrEnum):
    APP = "app"
    WEB = "web"
    EMAIL = "email"
    SOCIAL = "social"


class Category(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_FROZEN = "account_frozen"
    SUSPICIOUS_ACTIVITY = "suspicious_activity"
    PASSWORD_RESET = "password_reset"
    BANK_CARD = "bank_card"
    TRANSACTION_QUERY = "transaction_query"
    BETA_ACCESS = "beta_access"
    COMPLAINT = "complaint"
    OTHER = "other"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class ActorType(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    SYSTEM = "system"

    @property
    def is_staff(self) -> bool:
        return self in (ActorType.AGENT, ActorType.SUPERVISOR, ActorType.ADMIN)


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str


SYSTEM = Actor(ActorType.SYSTEM, "supportdesk")


class Action(StrEnum):
    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    PRIORITY_CHANGED = "priority_changed"
    MESSAGE_ADDED = "message_added"
    NOTE_ADDED = "note_added"
    ASSIGNED = "assigned"
    CSAT_RECORDED = "csat_recorded"
    FLAGGED = "flagged"


class Flag(StrEnum):
    SECRET_EXPOSED = "secret_exposed"


# Money stuck or an account at risk cannot wait: the wallet promises a human within 2 minutes for these.
DEFAULT_PRIORITY_RULES: Mapping[Category, Priority] = {
    Category.PAYMENT_FAILED: Priority.URGENT,
    Category.ACCOUNT_FROZEN: Priority.URGENT,
    Category.SUSPICIOUS_ACTIVITY: Priority.URGENT,
    Category.ACCOUNT_LOCKED: Priority.HIGH,
    Category.BANK_CARD: Priority.HIGH,
    Category.PASSWORD_RESET: Priority.NORMAL,
    Category.TRANSACTION_QUERY: Priority.NORMAL,
    Category.COMPLAINT: Priority.NORMAL,
    Category.BETA_ACCESS: Priority.LOW,
    Category.OTHER: Priority.NORMAL,
}
MONEY_OR_SECURITY = frozenset(
    {
        Category.PAYMENT_FAILED,
        Category.ACCOUNT_LOCKED,
        Category.ACCOUNT_FROZEN,
        Category.SUSPICIOUS_ACTIVITY,
        Category.PASSWORD_RESET,
        Category.BANK_CARD,
        Category.TRANSACTION_QUERY,
    }
)

MAX_SUBJECT = 200
MAX_DESCRIPTION = 10_000
MAX_REQUEST_ID = 300
MAX_RESOLUTION_NOTE = 5_000
MAX_CSAT_COMMENT = 2_000


def effective_priority(category: Category, requested: Priority | None, rules: Mapping[Category, Priority]) -> Priority:
    """The client's priority if given, else the category's rule; money and security problems are never LOW."""
    priority = requested or rules.get(category) or DEFAULT_PRIORITY_RULES[category]
    if priority is Priority.LOW and category in MONEY_OR_SECURITY:
        return Priority.NORMAL
    return priority


def check_priority_rule(category: Category, priority: Priority) -> None:
    if priority is Priority.LOW and category in MONEY_OR_SECURITY:
        raise InvalidArgument(
            "priority_rule_refused",
            f"{category} is a money or security problem and can never be low priority",
            field="priority",
        )


# new → open ⇄ pending, on_hold → resolved → closed. Reopening resolved → open is checked against a window.
_TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.RESOLVED}),
    Status.OPEN: frozenset({Status.PENDING, Status.ON_HOLD, Status.RESOLVED}),
    Status.PENDING: frozenset({Status.OPEN, Status.ON_HOLD, Status.RESOLVED}),
    Status.ON_HOLD: frozenset({Status.OPEN, Status.PENDING, Status.RESOLVED}),
    Status.RESOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}


def allowed_transitions(status: Status) -> frozenset[Status]:
    return _TRANSITIONS[status]


@dataclass(frozen=True, slots=True)
class WalletContext:
    transaction_ref: str = ""
    amount: str = ""
    currency: str = ""
    occurred_at: datetime | None = None
    error_code: str = ""
    app_version: str = ""
    device: str = ""


@dataclass(frozen=True, slots=True)
class NewTicket:
    """A validated request to open a ticket."""

    request_id: str
    customer_id: str
    channel: Channel
    category: Category
    subject: str
    description: str
    priority: Priority | None
    language: str
    customer_tier: str
    wallet_context: WalletContext = field(default_factory=WalletContext)

    def __post_init__(self) -> None:
        _require(
            bool(self.request_id) and len(self.request_id) <= MAX_REQUEST_ID,
            "request_id",
            f"required, at most {MAX_REQUEST_ID} characters",
        )
        _require(bool(self.customer_id), "customer_id", "required")
        _require(
            bool(self.subject.strip()) and len(self.subject) <= MAX_SUBJECT,
            "subject",
            f"required, at most {MAX_SUBJECT} characters",
        )
        _require(len(self.description) <= MAX_DESCRIPTION, "description", f"at most {MAX_DESCRIPTION} characters")
        _require(bool(self.language), "language", "required")


def request_fingerprint(new: NewTicket) -> str:
    """A digest of everything the request asks for but its request_id: equal exactly for identical requests."""
    return fingerprint(new, exclude=("request_id",))


def _require(ok: bool, field_name: str, rule: str) -> None:
    if not ok:
        raise InvalidArgument("invalid_argument", f"{field_name}: {rule}", field=field_name)


@dataclass(frozen=True, slots=True)
class Csat:
    score: int
    comment: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Ticket:
    id: uuid.UUID
    customer_id: str
    channel: Channel
    category: Category
    subject: str
    description: str
    priority: Priority
    status: Status
    language: str
    customer_tier: str
    wallet_context: WalletContext
    version: int
    created_at: datetime
    updated_at: datetime
    assignee_id: str = ""
    flags: tuple[str, ...] = ()
    resolution_note: str = ""
    resolved_at: datetime | None = None
    csat: Csat | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One step of a ticket's history: what the timeline records and what one event announces."""

    version: int
    action: Action
    actor: Actor
    details: Mapping[str, str] = field(default_factory=dict)


class History:
    """Applies changes to a ticket one at a time, numbering each with the next version."""

    def __init__(self, ticket: Ticket, now: datetime) -> None:
        self.ticket = ticket
        self.changes: list[Change] = []
        self._now = now

    def record(self, action: Action, actor: Actor, details: Mapping[str, str], **fields: object) -> None:
        version = self.ticket.version + 1
        self.ticket = dataclasses.replace(self.ticket, version=version, updated_at=self._now, **fields)  # type: ignore[arg-type]
        self.changes.append(Change(version, action, actor, dict(details)))


def open_ticket(
    new: NewTicket, ticket_id: uuid.UUID, now: datetime, rules: Mapping[Category, Priority]
) -> tuple[Ticket, Change]:
    ticket = Ticket(
        id=ticket_id,
        customer_id=new.customer_id,
        channel=new.channel,
        category=new.category,
        subject=new.subject.strip(),
        description=new.description,
        priority=effective_priority(new.category, new.priority, rules),
        status=Status.NEW,
        language=new.language,
        customer_tier=new.customer_tier,
        wallet_context=new.wallet_context,
        version=1,
        created_at=now,
        updated_at=now,
    )
    return ticket, Change(1, Action.CREATED, Actor(ActorType.CUSTOMER, new.customer_id))


def change_status(
    history: History, to: Status, actor: Actor, *, resolution_note: str, reopen_window: timedelta, now: datetime
) -> None:
    ticket = history.ticket
    if actor.type is ActorType.CUSTOMER:
        _check_customer_owns(ticket, actor)
        # A customer may close their own resolved ticket or reopen it, nothing else.
        if to not in (Status.OPEN, Status.CLOSED) or ticket.status is not Status.RESOLVED:
            raise PermissionDenied("status_change_forbidden", "customers may only reopen or close a resolved ticket")
    if to is ticket.status:
        return
    if to not in _TRANSITIONS[ticket.status]:
        raise FailedPrecondition(
            "illegal_transition",
            f"a {ticket.status} ticket cannot become {to}; allowed: {', '.join(sorted(_TRANSITIONS[ticket.status]))}",
            **{"from": ticket.status.value, "to": to.value},
        )
    if ticket.status is Status.RESOLVED and to is Status.OPEN:
        _check_reopen_window(ticket, reopen_window, now)
    if len(resolution_note) > MAX_RESOLUTION_NOTE:
        raise InvalidArgument(
            "invalid_argument", f"resolution_note: at most {MAX_RESOLUTION_NOTE} characters", field="resolution_note"
        )
    note = resolution_note.strip() or ticket.resolution_note
    if ticket.category is Category.COMPLAINT and to is Status.CLOSED and not note:
        # The service promises complainants that their case is verified and answered before it is closed.
        raise FailedPrecondition(
            "resolution_note_required", "a complaint cannot be closed without a recorded resolution note"
        )
    fields: dict[str, object] = {"status": to, "resolution_note": note}
    if to is Status.RESOLVED:
        fields["resolved_at"] = now
    elif to is Status.OPEN:
        fields["resolved_at"] = None
    history.record(Action.STATUS_CHANGED, actor, {"from": ticket.status.value, "to": to.value}, **fields)


def change_priority(history: History, priority: Priority, actor: Actor) -> None:
    ticket = history.ticket
    if not actor.type.is_staff:
        raise PermissionDenied("priority_change_forbidden", "only staff may change a ticket's priority")
    _check_open_for_work(ticket)
    if priority is Priority.LOW and ticket.category in MONEY_OR_SECURITY:
        raise FailedPrecondition("priority_too_low", f"a {ticket.category} ticket can never be low priority")
    if priority is ticket.priority:
        return
    history.record(
        Action.PRIORITY_CHANGED, actor, {"from": ticket.priority.value, "to": priority.value}, priority=priority
    )


_NEXT_PRIORITY = {Priority.LOW: Priority.NORMAL, Priority.NORMAL: Priority.HIGH, Priority.HIGH: Priority.URGENT}


def escalate(history: History, reason: str) -> None:
    """Raise the priority one step on an SLA breach; urgent and closed tickets stay as they are."""
    ticket = history.ticket
    raised = _NEXT_PRIORITY.get(ticket.priority)
    if raised is None or ticket.status in (Status.RESOLVED, Status.CLOSED):
        return
    history.record(
        Action.PRIORITY_CHANGED,
        Actor(ActorType.SYSTEM, reason),
        {"from": ticket.priority.value, "to": raised.value},
        priority=raised,
    )


def assign(history: History, agent_id: str) -> None:
    """Apply routing's assignment; a new ticket an agent now holds is being worked, so it opens."""
    ticket = history.ticket
    if ticket.status is Status.CLOSED or ticket.assignee_id == agent_id:
        return
    history.record(Action.ASSIGNED, SYSTEM, {"from": ticket.assignee_id, "to": agent_id}, assignee_id=agent_id)
    if history.ticket.status is Status.NEW:
        history.record(Action.STATUS_CHANGED, SYSTEM, {"from": "new", "to": "open"}, status=Status.OPEN)


def flag(history: History, value: Flag, reasons: tuple[str, ...]) -> None:
    ticket = history.ticket
    if value.value in ticket.flags:
        return
    history.record(
        Action.FLAGGED, SYSTEM, {"flag": value.value, "reasons": ",".join(reasons)}, flags=(*ticket.flags, value.value)
    )


def record_csat(history: History, actor: Actor, score: int, comment: str, now: datetime) -> None:
    ticket = history.ticket
    if actor.type is not ActorType.CUSTOMER:
        raise PermissionDenied("csat_forbidden", "only the ticket's customer rates it")
    _check_customer_owns(ticket, actor)
    if not 1 <= score <= 5:
        raise InvalidArgument("invalid_argument", "score: from 1 to 5", field="score")
    if len(comment) > MAX_CSAT_COMMENT:
        raise InvalidArgument("invalid_argument", f"comment: at most {MAX_CSAT_COMMENT} characters", field="comment")
    if ticket.status not in (Status.RESOLVED, Status.CLOSED):
        raise FailedPrecondition("csat_too_early", "a ticket is rated after it is resolved")
    if ticket.csat is not None:
        raise FailedPrecondition("csat_already_recorded", "this ticket has been rated already")
    history.record(
        Action.CSAT_RECORDED,
        actor,
        {"score": str(score)},
        csat=Csat(score=score, comment=comment.strip(), created_at=now),
    )


def _check_customer_owns(ticket: Ticket, actor: Actor) -> None:
    if actor.type is ActorType.CUSTOMER and actor.id != ticket.customer_id:
        raise PermissionDenied("not_ticket_owner", "this ticket belongs to another customer")


def _check_open_for_work(ticket: Ticket) -> None:
    if ticket.status is Status.CLOSED:
        raise FailedPrecondition("ticket_closed", "the ticket is closed; open a new one")


def _check_reopen_window(ticket: Ticket, window: timedelta, now: datetime) -> None:
    if ticket.resolved_at is not None and now - ticket.resolved_at > window:
        raise FailedPrecondition(
            "reopen_window_passed", "the ticket was resolved too long ago to reopen; open a new one"
        )


def check_actor(actor: Actor) -> None:
    if not actor.id:
        raise InvalidArgument("invalid_argument", "actor.id: required", field="actor.id")
