"""Translation between ticketing's domain and its protobuf contract (gRPC messages and event payloads)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.ticketing.v1 import events_pb2, ticket_pb2, ticketing_service_pb2

from services.kit.bus.consumer import PoisonEvent
from services.kit.errors import InvalidArgument
from services.kit.proto_enums import from_proto, from_timestamp, timestamp, to_proto
from services.ticketing.conversation import Attachment, Message, NewMessage, Visibility
from services.ticketing.domain import (
    Action,
    Actor,
    ActorType,
    Category,
    Change,
    Channel,
    NewTicket,
    Priority,
    Status,
    Ticket,
    WalletContext,
)
from services.ticketing.store import TimelineEntry

EVENT_SOURCE = "supportdesk/ticketing"
_SUBJECT_PREFIX = "support.ticketing.v1.ticket."
TICKET_CREATED = _SUBJECT_PREFIX + "created"
ROUTING_TICKET_ASSIGNED = "support.routing.v1.ticket.assigned"
ROUTING_SLA_BREACHED = "support.routing.v1.sla.breached"


# --- domain → protobuf ---------------------------------------------------------------------------------


def ticket_message(ticket: Ticket) -> ticket_pb2.Ticket:
    wallet = ticket.wallet_context
    message = ticket_pb2.Ticket(
        id=str(ticket.id),
        customer_id=ticket.customer_id,
        channel=to_proto(ticket_pb2.Channel, ticket.channel),
        category=to_proto(ticket_pb2.Category, ticket.category),
        subject=ticket.subject,
        description=ticket.description,
        priority=to_proto(common_pb2.Priority, ticket.priority),
        status=to_proto(ticket_pb2.TicketStatus, ticket.status),
        language=ticket.language,
        customer_tier=ticket.customer_tier,
        wallet_context=ticket_pb2.WalletContext(
            transaction_ref=wallet.transaction_ref,
            amount=wallet.amount,
            currency=wallet.currency,
            error_code=wallet.error_code,
            app_version=wallet.app_version,
            device=wallet.device,
        ),
        version=ticket.version,
        create_time=timestamp(ticket.created_at),
        update_time=timestamp(ticket.updated_at),
        assignee_id=ticket.assignee_id,
        flags=list(ticket.flags),
        resolution_note=ticket.resolution_note,
    )
    if wallet.occurred_at:
        message.wallet_context.occurred_time.CopyFrom(timestamp(wallet.occurred_at))
    if ticket.resolved_at:
        message.resolve_time.CopyFrom(timestamp(ticket.resolved_at))
    if ticket.csat:
        message.csat.CopyFrom(
            ticket_pb2.Csat(
                score=ticket.csat.score, comment=ticket.csat.comment, create_time=timestamp(ticket.csat.created_at)
            )
        )
    return message


def actor_message(actor: Actor) -> ticket_pb2.Actor:
    return ticket_pb2.Actor(type=to_proto(ticket_pb2.ActorType, actor.type), id=actor.id)


def message_message(message: Message) -> ticket_pb2.Message:
    return ticket_pb2.Message(
        id=str(message.id),
        ticket_id=str(message.ticket_id),
        author=actor_message(message.author),
        visibility=to_proto(ticket_pb2.MessageVisibility, message.visibility),
        body=message.body,
        attachments=[
            ticket_pb2.Attachment(name=a.name, content_type=a.content_type, size_bytes=a.size_bytes, url=a.url)
            for a in message.attachments
        ],
        redactions=list(message.redactions),
        create_time=timestamp(message.created_at),
    )


def timeline_message(entry: TimelineEntry) -> ticket_pb2.TimelineEntry:
    return ticket_pb2.TimelineEntry(
        id=entry.id,
        ticket_id=str(entry.ticket_id),
        version=entry.version,
        actor=actor_message(entry.actor),
        action=entry.action,
        details=dict(entry.details),
        trace_id=entry.trace_id,
        create_time=timestamp(entry.created_at),
    )


def priority_rule_message(category: Category, priority: Priority) -> ticket_pb2.PriorityRule:
    return ticket_pb2.PriorityRule(
        category=to_proto(ticket_pb2.Category, category), priority=to_proto(common_pb2.Priority, priority)
    )


# --- events: one payload per change ---------------------------------------------------------------------


def event_for(ticket: Ticket, change: Change, messages: Mapping[str, Message]) -> tuple[str, bytes]:
    """The subject and payload announcing ``change`` (internal notes travel without their text)."""
    tid, version = str(ticket.id), change.version
    payload: Any
    match change.action:
        case Action.CREATED:
            payload = events_pb2.TicketCreated(ticket=ticket_message(ticket))
            # Version 1 even when the same call went on to flag the ticket: those changes have their own events.
            payload.ticket.version = version
        case Action.MESSAGE_ADDED:
            payload = events_pb2.MessageAdded(
                message=message_message(messages[change.details["message_id"]]),
                ticket_version=version,
                customer_id=ticket.customer_id,
                assignee_id=ticket.assignee_id,
                language=ticket.language,
            )
        case Action.NOTE_ADDED:
            payload = events_pb2.NoteAdded(
                ticket_id=tid,
                message_id=change.details["message_id"],
                author=actor_message(change.actor),
                ticket_version=version,
            )
        case Action.STATUS_CHANGED:
            payload = events_pb2.TicketStatusChanged(
                ticket_id=tid,
                from_status=to_proto(ticket_pb2.TicketStatus, change.details["from"]),
                to_status=to_proto(ticket_pb2.TicketStatus, change.details["to"]),
                actor=actor_message(change.actor),
                ticket_version=version,
                customer_id=ticket.customer_id,
                category=to_proto(ticket_pb2.Category, ticket.category),
            )
        case Action.PRIORITY_CHANGED:
            payload = events_pb2.TicketPriorityChanged(
                ticket_id=tid,
                from_priority=to_proto(common_pb2.Priority, change.details["from"]),
                to_priority=to_proto(common_pb2.Priority, change.details["to"]),
                actor=actor_message(change.actor),
                ticket_version=version,
            )
        case Action.ASSIGNED:
            payload = events_pb2.TicketAssigned(ticket_id=tid, assignee_id=change.details["to"], ticket_version=version)
        case Action.CSAT_RECORDED:
            assert ticket.csat is not None
            payload = events_pb2.CsatRecorded(
                ticket_id=tid,
                csat=ticket_message(ticket).csat,
                ticket_version=version,
                assignee_id=ticket.assignee_id,
            )
        case Action.FLAGGED:
            payload = events_pb2.TicketFlagged(
                ticket_id=tid,
                flag=change.details["flag"],
                reasons=[r for r in change.details["reasons"].split(",") if r],
                ticket_version=version,
                customer_id=ticket.customer_id,
                language=ticket.language,
            )
    return _SUBJECT_PREFIX + change.action.value, payload.SerializeToString()


def escalation(data: bytes) -> tuple[str, bool]:
    """(ticket id, whether to raise the priority) from routing's SLA breach."""
    event = routing_events.SlaBreached.FromString(data)
    if not event.clock.ticket_id:
        raise PoisonEvent("sla.breached without a ticket")
    return event.clock.ticket_id, event.escalation.raise_priority


def assignment(data: bytes) -> tuple[str, str]:
    """(ticket id, agent id) from routing's assignment event."""
    event = routing_events.TicketAssigned.FromString(data)
    if not event.ticket_id or not event.agent_id:
        raise PoisonEvent("ticket.assigned without ticket or agent")
    return event.ticket_id, event.agent_id


# --- protobuf → domain ----------------------------------------------------------------------------------


def new_ticket(request: ticketing_service_pb2.CreateTicketRequest) -> NewTicket:
    priority = _enum(common_pb2.Priority, request.priority, "priority")
    wallet = request.wallet_context
    return NewTicket(
        request_id=request.request_id,
        customer_id=request.customer_id,
        channel=Channel(_required_enum(ticket_pb2.Channel, request.channel, "channel")),
        category=Category(_required_enum(ticket_pb2.Category, request.category, "category")),
        subject=request.subject,
        description=request.description,
        priority=Priority(priority) if priority else None,
        language=request.language,
        customer_tier=request.customer_tier or "standard",
        wallet_context=WalletContext(
            transaction_ref=wallet.transaction_ref,
            amount=wallet.amount,
            currency=wallet.currency,
            occurred_at=from_timestamp(wallet.occurred_time) if wallet.HasField("occurred_time") else None,
            error_code=wallet.error_code,
            app_version=wallet.app_version,
            device=wallet.device,
        ),
    )


def actor(message: ticket_pb2.Actor) -> Actor:
    return Actor(ActorType(_required_enum(ticket_pb2.ActorType, message.type, "actor.type")), message.id)


def status(number: int) -> Status:
    return Status(_required_enum(ticket_pb2.TicketStatus, number, "status"))


def priority(number: int) -> Priority:
    return Priority(_required_enum(common_pb2.Priority, number, "priority"))


def optional_status(number: int) -> Status | None:
    value = _enum(ticket_pb2.TicketStatus, number, "status")
    return Status(value) if value else None


def optional_priority(number: int) -> Priority | None:
    value = _enum(common_pb2.Priority, number, "priority")
    return Priority(value) if value else None


def category(number: int) -> Category:
    return Category(_required_enum(ticket_pb2.Category, number, "category"))


def statuses(numbers: Any) -> tuple[Status, ...]:
    return tuple(status(n) for n in numbers)


def new_message(request: ticketing_service_pb2.AddMessageRequest) -> NewMessage:
    return NewMessage(
        request_id=request.request_id,
        author=actor(request.author),
        visibility=Visibility(_required_enum(ticket_pb2.MessageVisibility, request.visibility, "visibility")),
        body=request.body,
        attachments=tuple(
            Attachment(name=a.name, content_type=a.content_type, size_bytes=a.size_bytes, url=a.url)
            for a in request.attachments
        ),
    )


def _enum(wrapper: Any, number: int, field: str) -> str | None:
    try:
        return from_proto(wrapper, number)
    except ValueError:
        raise InvalidArgument("invalid_argument", f"{field}: unknown value {number}", field=field) from None


def _required_enum(wrapper: Any, number: int, field: str) -> str:
    value = _enum(wrapper, number, field)
    if value is None:
        raise InvalidArgument("invalid_argument", f"{field}: required", field=field)
    return value
