"""Who is told what, from the facts an event carries and what earlier events taught. Pure, no I/O.

- customer: ticket received, agent assigned, agent replied, ticket resolved, CSAT request, security alerts;
- agent: offer received, ticket assigned, customer replied, SLA warning on a ticket they hold;
- supervisors (one audience): SLA breach, escalation, secret exposed, complaint opened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.notify.domain import SUPERVISORS, Intent

_EXCERPT_CHARS = 140
ALERT_KINDS = frozenset({"suspicious_login", "large_transfer", "password_changed", "card_linked"})


@dataclass(frozen=True, slots=True)
class TicketView:
    """What notify knows about a ticket, learned from ticketing's events."""

    ticket_id: str
    customer_id: str
    assignee_id: str = ""
    language: str = ""
    subject: str = ""
    category: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class TicketOpened:
    ticket: TicketView


@dataclass(frozen=True, slots=True)
class TicketAssigned:
    ticket_id: str
    assignee_id: str
    version: int


@dataclass(frozen=True, slots=True)
class MessagePosted:
    ticket_id: str
    author_type: str  # "customer", "agent", "supervisor", "admin", "system"
    customer_id: str
    assignee_id: str
    language: str
    body: str
    version: int


@dataclass(frozen=True, slots=True)
class StatusChanged:
    ticket_id: str
    to_status: str
    customer_id: str
    version: int


@dataclass(frozen=True, slots=True)
class Flagged:
    ticket_id: str
    flag: str
    reasons: tuple[str, ...]
    customer_id: str
    version: int


@dataclass(frozen=True, slots=True)
class OfferMade:
    offer_id: str
    ticket_id: str
    agent_id: str
    queue: str
    expire_time: str


@dataclass(frozen=True, slots=True)
class SlaWarned:
    ticket_id: str
    metric: str
    percent: int
    deadline: str
    queue: str


@dataclass(frozen=True, slots=True)
class SlaBreached:
    ticket_id: str
    metric: str
    queue: str


@dataclass(frozen=True, slots=True)
class Escalated:
    ticket_id: str
    queue: str
    step: int


@dataclass(frozen=True, slots=True)
class AccountAlert:
    alert_id: str
    customer_id: str
    kind: str  # "suspicious_login", "large_transfer", "password_changed", "card_linked"
    facts: dict[str, str]
    email: str
    locale: str


Event = (
    TicketOpened
    | TicketAssigned
    | MessagePosted
    | StatusChanged
    | Flagged
    | OfferMade
    | SlaWarned
    | SlaBreached
    | Escalated
    | AccountAlert
)


def ticket_of(event: Event) -> str:
    """The ticket whose view the event needs or updates; empty for events about no ticket."""
    if isinstance(event, TicketOpened):
        return event.ticket.ticket_id
    if isinstance(event, AccountAlert):
        return ""
    return event.ticket_id


def updated_view(event: Event, view: TicketView | None) -> TicketView | None:
    """The ticket's view after ``event``, or None when it does not change. Stale versions change nothing."""
    if isinstance(event, TicketOpened):
        return event.ticket if view is None or view.version < event.ticket.version else None
    if view is None:
        if isinstance(event, MessagePosted):
            return TicketView(
                event.ticket_id, event.customer_id, event.assignee_id, event.language, version=event.version
            )
        return None
    if isinstance(event, TicketAssigned) and event.version > view.version:
        return replace(view, assignee_id=event.assignee_id, version=event.version)
    if isinstance(event, MessagePosted) and event.version > view.version:
        return replace(view, assignee_id=event.assignee_id or view.assignee_id, version=event.version)
    if isinstance(event, StatusChanged | Flagged) and event.version > view.version:
        return replace(view, version=event.version)
    return None


class UnknownTicket(Exception):
    """The event needs a ticket notify has not heard of yet (its created event is still on the way)."""


def intents(event: Event, view: TicketView | None) -> list[Intent]:
    """The notifications ``event`` causes. ``view`` is the ticket as known before the event."""
    subject = view.subject if view else ""
    language = view.language if view else ""
    facts = {"subject": subject, "ticket_id": ticket_of(event)}
    match event:
        case TicketOpened(ticket=t):
            out = [
                Intent(t.customer_id, "ticket.received", facts | {"subject": t.subject}, t.ticket_id, False, t.language)
            ]
            if t.category == "complaint":
                out.append(Intent(SUPERVISORS, "complaint.opened", facts | {"subject": t.subject}, t.ticket_id))
            return out
        case TicketAssigned(ticket_id=tid, assignee_id=agent):
            if view is None:
                raise UnknownTicket(tid)
            out = [Intent(view.customer_id, "agent.assigned", facts, tid, False, language)]
            if agent:
                out.append(Intent(agent, "ticket.assigned", facts, tid))
            return out
        case MessagePosted(ticket_id=tid, author_type=author, body=body):
            excerpt = facts | {"excerpt": _excerpt(body)}
            if author == "customer":
                holder = event.assignee_id or (view.assignee_id if view else "")
                return [Intent(holder, "customer.replied", excerpt, tid)] if holder else []
            if author in ("agent", "supervisor", "admin") and event.customer_id:
                return [Intent(event.customer_id, "agent.replied", excerpt, tid, False, event.language or language)]
            return []
        case StatusChanged(ticket_id=tid, to_status="resolved", customer_id=customer) if customer:
            return [
                Intent(customer, "ticket.resolved", facts, tid, False, language),
                Intent(customer, "csat.requested", facts, tid, False, language),
            ]
        case Flagged(ticket_id=tid, flag="secret_exposed", reasons=reasons):
            return [Intent(SUPERVISORS, "secret.exposed", facts | {"reasons": ", ".join(reasons)}, tid)]
        case OfferMade(agent_id=agent) if agent:
            offer = facts | {"offer_id": event.offer_id, "queue": event.queue, "expire_time": event.expire_time}
            return [Intent(agent, "offer.received", offer, event.ticket_id)]
        case SlaWarned(ticket_id=tid):
            if view is None:
                raise UnknownTicket(tid)
            warn = facts | {"metric": event.metric, "percent": str(event.percent), "deadline": event.deadline}
            return [Intent(view.assignee_id, "sla.warning", warn, tid)] if view.assignee_id else []
        case SlaBreached(ticket_id=tid):
            return [Intent(SUPERVISORS, "sla.breached", facts | {"metric": event.metric, "queue": event.queue}, tid)]
        case Escalated(ticket_id=tid):
            return [
                Intent(SUPERVISORS, "ticket.escalated", facts | {"queue": event.queue, "step": str(event.step)}, tid)
            ]
        case AccountAlert(customer_id=customer) if customer:
            alert = {**event.facts, "alert_id": event.alert_id, "alert_kind": event.kind}
            kind = f"security.{event.kind}" if event.kind in ALERT_KINDS else "security.alert"
            return [Intent(customer, kind, alert, "", True, event.locale, event.email)]
    return []


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[: _EXCERPT_CHARS - 1] + "…"
