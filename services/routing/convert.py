"""Translation between routing's domain and protobuf (gRPC messages, consumed and published events)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from support.common.v1 import common_pb2
from support.routing.v1 import agent_pb2, offer_pb2, queue_pb2, rule_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.consumer import PoisonEvent
from services.kit.errors import InvalidArgument
from services.kit.proto_enums import from_proto, from_timestamp, timestamp, to_proto
from services.routing.domain import (
    DEFAULT_OFFER_TIMEOUT,
    Agent,
    AgentProfile,
    Offer,
    OfferState,
    Presence,
    Queue,
    QueueEntry,
    QueueStats,
    Requirement,
    RoutingRule,
    RuleMatch,
    Skill,
    Step,
    TicketFacts,
)

EVENT_SOURCE = "supportdesk/routing"
_ROUTING = "support.routing.v1."
TICKET_QUEUED = _ROUTING + "ticket.queued"
TICKET_ASSIGNED = _ROUTING + "ticket.assigned"
TICKET_TRANSFERRED = _ROUTING + "ticket.transferred"
TICKET_ESCALATED = _ROUTING + "ticket.escalated"
AGENT_PRESENCE_CHANGED = _ROUTING + "agent.presence_changed"
OFFER_EVENTS = {
    state: f"{_ROUTING}offer.{name}"
    for state, name in (
        (OfferState.PENDING, "created"),
        (OfferState.ACCEPTED, "accepted"),
        (OfferState.DECLINED, "declined"),
        (OfferState.EXPIRED, "expired"),
        (OfferState.WITHDRAWN, "withdrawn"),
    )
}

_TICKETING = "support.ticketing.v1.ticket."
TICKETING_EVENTS = _TICKETING + ">"
TICKET_CREATED = _TICKETING + "created"
TICKET_STATUS_CHANGED = _TICKETING + "status_changed"
TICKET_PRIORITY_CHANGED = _TICKETING + "priority_changed"


# --- consumed events -------------------------------------------------------------------------------------


def created_ticket(data: bytes) -> TicketFacts:
    ticket = ticketing_events.TicketCreated.FromString(data).ticket
    category = _event_enum(ticket_pb2.Category, ticket.category)
    priority = _event_enum(common_pb2.Priority, ticket.priority)
    status = _event_enum(ticket_pb2.TicketStatus, ticket.status) or "new"
    if not ticket.id or category is None or priority is None:
        raise PoisonEvent("ticket.created without id, category or priority")
    return TicketFacts(
        ticket_id=_event_uuid(ticket.id),
        category=category,
        language=ticket.language,
        priority=priority,
        customer_tier=ticket.customer_tier,
        status=status,
        version=ticket.version,
        created_at=from_timestamp(ticket.create_time),
    )


def status_change(data: bytes) -> tuple[uuid.UUID, str, int]:
    """(ticket id, new status, ticket version)."""
    event = ticketing_events.TicketStatusChanged.FromString(data)
    status = _event_enum(ticket_pb2.TicketStatus, event.to_status)
    if status is None:
        raise PoisonEvent("status_changed without a status")
    return _event_uuid(event.ticket_id), status, event.ticket_version


def priority_change(data: bytes) -> tuple[uuid.UUID, str, int]:
    """(ticket id, new priority, ticket version)."""
    event = ticketing_events.TicketPriorityChanged.FromString(data)
    priority = _event_enum(common_pb2.Priority, event.to_priority)
    if priority is None:
        raise PoisonEvent("priority_changed without a priority")
    return _event_uuid(event.ticket_id), priority, event.ticket_version


def _event_enum(wrapper: Any, number: int) -> str | None:
    try:
        return from_proto(wrapper, number)
    except ValueError:
        raise PoisonEvent(f"unknown {wrapper.DESCRIPTOR.name} value {number}") from None


def _event_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PoisonEvent(f"not a ticket id: {value!r}") from None


# --- published events ------------------------------------------------------------------------------------


def ticket_queued(entry: QueueEntry) -> bytes:
    return routing_events.TicketQueued(entry=entry_message(entry)).SerializeToString()


def ticket_assigned(ticket_id: uuid.UUID, agent_id: str, queue: str, at: datetime) -> bytes:
    return routing_events.TicketAssigned(
        ticket_id=str(ticket_id), agent_id=agent_id, queue=queue, assign_time=timestamp(at)
    ).SerializeToString()


def ticket_transferred(
    ticket_id: uuid.UUID, *, from_agent: str, to_agent: str, from_queue: str, to_queue: str, by: str, reason: str
) -> bytes:
    return routing_events.TicketTransferred(
        ticket_id=str(ticket_id),
        from_agent_id=from_agent,
        to_agent_id=to_agent,
        from_queue=from_queue,
        to_queue=to_queue,
        by=by,
        reason=reason,
    ).SerializeToString()


def ticket_escalated(ticket_id: uuid.UUID, queue: str, step: int, waited: timedelta) -> bytes:
    return routing_events.TicketEscalated(
        ticket_id=str(ticket_id), queue=queue, step=step, waited=duration(waited)
    ).SerializeToString()


def offer_changed(offer: Offer) -> bytes:
    return routing_events.OfferChanged(offer=offer_message(offer)).SerializeToString()


def presence_changed(agent_id: str, before: Presence, after: Presence, reason: str) -> bytes:
    return routing_events.AgentPresenceChanged(
        agent_id=agent_id,
        from_presence=to_proto(agent_pb2.Presence, before),
        to_presence=to_proto(agent_pb2.Presence, after),
        reason=reason,
    ).SerializeToString()


# --- gRPC messages out -----------------------------------------------------------------------------------


def duration(value: timedelta) -> Duration:
    message = Duration()
    message.FromTimedelta(value)
    return message


def entry_message(entry: QueueEntry) -> queue_pb2.QueueEntry:
    return queue_pb2.QueueEntry(
        ticket_id=str(entry.ticket_id),
        queue=entry.queue,
        priority=to_proto(common_pb2.Priority, entry.priority),
        state=to_proto(queue_pb2.QueueEntryState, entry.state),
        ticket_version=entry.ticket_version,
        ticket_create_time=timestamp(entry.ticket_created_at),
        enqueue_time=timestamp(entry.enqueued_at),
        agent_id=entry.agent_id or "",
        step=entry.step,
        rule_id=str(entry.rule_id) if entry.rule_id else "",
        language=entry.language,
        category=entry.category,
        customer_tier=entry.customer_tier,
    )


def stats_message(stats: QueueStats) -> queue_pb2.QueueStats:
    return queue_pb2.QueueStats(
        queue=stats.queue,
        waiting=stats.waiting,
        longest_wait=duration(stats.longest_wait),
        agents_available=stats.agents_available,
        agents_busy=stats.agents_busy,
        offers_outstanding=stats.offers_outstanding,
        estimated_wait=duration(stats.estimated_wait),
    )


def agent_message(agent: Agent) -> agent_pb2.Agent:
    message = agent_pb2.Agent(
        id=agent.id,
        display_name=agent.display_name,
        skills=[agent_pb2.Skill(name=s.name, proficiency=s.proficiency) for s in agent.skills],
        languages=list(agent.languages),
        capacity=agent.capacity,
        presence=to_proto(agent_pb2.Presence, agent.presence),
        active_tickets=agent.active,
        presence_change_time=timestamp(agent.presence_changed_at),
        version=agent.version,
    )
    if agent.last_assigned_at:
        message.last_assignment_time.CopyFrom(timestamp(agent.last_assigned_at))
    return message


def offer_message(offer: Offer) -> offer_pb2.Offer:
    message = offer_pb2.Offer(
        id=str(offer.id),
        ticket_id=str(offer.ticket_id),
        agent_id=offer.agent_id,
        queue=offer.queue,
        state=to_proto(offer_pb2.OfferState, offer.state),
        create_time=timestamp(offer.created_at),
        expire_time=timestamp(offer.expires_at),
    )
    if offer.responded_at:
        message.respond_time.CopyFrom(timestamp(offer.responded_at))
    return message


def rule_message(rule: RoutingRule) -> rule_pb2.RoutingRule:
    return rule_pb2.RoutingRule(
        id=str(rule.id),
        name=rule.name,
        position=rule.position,
        match=rule_pb2.RuleMatch(
            categories=list(rule.match.categories),
            languages=list(rule.match.languages),
            priorities=[to_proto(common_pb2.Priority, p) for p in rule.match.priorities],
            customer_tiers=list(rule.match.customer_tiers),
        ),
        queue=rule.queue,
        steps=[
            rule_pb2.RoutingStep(
                after=duration(s.after),
                requirements=[
                    rule_pb2.SkillRequirement(skill=r.skill, min_proficiency=r.min_proficiency) for r in s.requirements
                ],
                any_agent=s.any_agent,
                notify_supervisor=s.notify_supervisor,
            )
            for s in rule.steps
        ],
        version=rule.version,
    )


def queue_message(queue: Queue) -> rule_pb2.Queue:
    return rule_pb2.Queue(
        name=queue.name,
        direct_assignment=queue.direct_assignment,
        offer_timeout=duration(queue.offer_timeout),
        requeue_on_offline=queue.requeue_on_offline,
        version=queue.version,
    )


# --- gRPC messages in ------------------------------------------------------------------------------------


def profile(
    display_name: str, skills: Iterable[agent_pb2.Skill], languages: Iterable[str], capacity: int
) -> AgentProfile:
    return AgentProfile(
        display_name=display_name,
        skills=tuple(Skill(s.name, s.proficiency) for s in skills),
        languages=tuple(languages),
        capacity=capacity,
    )


def presence(number: int) -> Presence:
    return Presence(_required_enum(agent_pb2.Presence, number, "presence"))


def presences(numbers: Iterable[int]) -> tuple[Presence, ...]:
    return tuple(presence(n) for n in numbers)


def offer_states(numbers: Iterable[int]) -> tuple[OfferState, ...]:
    return tuple(OfferState(_required_enum(offer_pb2.OfferState, n, "states")) for n in numbers)


def rule(message: rule_pb2.RoutingRule, rule_id: uuid.UUID) -> RoutingRule:
    return RoutingRule(
        id=rule_id,
        name=message.name,
        position=message.position,
        match=RuleMatch(
            categories=tuple(message.match.categories),
            languages=tuple(message.match.languages),
            priorities=tuple(
                _required_enum(common_pb2.Priority, p, "rule.match.priorities") for p in message.match.priorities
            ),
            customer_tiers=tuple(message.match.customer_tiers),
        ),
        queue=message.queue,
        steps=tuple(
            Step(
                after=s.after.ToTimedelta(),
                requirements=tuple(Requirement(r.skill, r.min_proficiency) for r in s.requirements),
                any_agent=s.any_agent,
                notify_supervisor=s.notify_supervisor,
            )
            for s in message.steps
        ),
        version=message.version,
    )


def queue(message: rule_pb2.Queue) -> Queue:
    timeout = message.offer_timeout.ToTimedelta() if message.HasField("offer_timeout") else DEFAULT_OFFER_TIMEOUT
    return Queue(
        name=message.name,
        direct_assignment=message.direct_assignment,
        # Zero means "not set": the default, as the contract says.
        offer_timeout=timeout or DEFAULT_OFFER_TIMEOUT,
        requeue_on_offline=message.requeue_on_offline,
        version=message.version,
    )


def _required_enum(wrapper: Any, number: int, field: str) -> str:
    try:
        value = from_proto(wrapper, number)
    except ValueError:
        value = None
    if value is None:
        raise InvalidArgument("invalid_argument", f"{field}: unknown or missing value {number}", field=field)
    return value


def offer_outcome(event_type: str, data: bytes) -> tuple[str, str] | None:
    """(queue, outcome) of an offer event — outcome ``created``, ``accepted``, ``declined``, ``expired`` or
    ``withdrawn``; None for any other event."""
    outcome = _OFFER_OUTCOMES.get(event_type)
    if outcome is None:
        return None
    return routing_events.OfferChanged.FromString(data).offer.queue, outcome


_OFFER_OUTCOMES = {subject: subject.rsplit(".", 1)[-1] for subject in OFFER_EVENTS.values()}
