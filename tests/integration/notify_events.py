"""Events as ticketing, routing and the wallet publish them, for notify's tests and benchmark."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp
from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import offer_pb2, sla_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2
from support.wallet.v1 import events_pb2 as wallet_events

from services.kit.bus.envelope import Envelope

T = "support.ticketing.v1.ticket."


Category: TypeAlias = ticket_pb2.Category.ValueType
ActorType: TypeAlias = ticket_pb2.ActorType.ValueType
AlertKind: TypeAlias = wallet_events.AlertKind.ValueType


def _env(type_: str, subject: str, data: bytes) -> Envelope:
    return Envelope(type=type_, source="test", subject=subject, data=data)


def now_stamp() -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.now(UTC))
    return stamp


def ticket_created(
    ticket_id: str,
    customer: str,
    *,
    language: str = "en",
    category: Category = ticket_pb2.CATEGORY_PAYMENT_FAILED,
) -> Envelope:
    ticket = ticket_pb2.Ticket(
        id=ticket_id, customer_id=customer, subject="Payment failed", language=language, category=category, version=1
    )
    return _env(T + "created", ticket_id, ticketing_events.TicketCreated(ticket=ticket).SerializeToString())


def ticket_assigned(ticket_id: str, agent: str, version: int = 2) -> Envelope:
    data = ticketing_events.TicketAssigned(ticket_id=ticket_id, assignee_id=agent, ticket_version=version)
    return _env(T + "assigned", ticket_id, data.SerializeToString())


def message_added(ticket_id: str, *, author: ActorType, customer: str, agent: str, version: int, body: str) -> Envelope:
    message = ticket_pb2.Message(
        id=str(uuid.uuid4()),
        ticket_id=ticket_id,
        author=ticket_pb2.Actor(type=author, id=agent if author == ticket_pb2.ACTOR_TYPE_AGENT else customer),
        visibility=ticket_pb2.MESSAGE_VISIBILITY_PUBLIC,
        body=body,
    )
    data = ticketing_events.MessageAdded(
        message=message, ticket_version=version, customer_id=customer, assignee_id=agent, language="en"
    )
    return _env(T + "message_added", ticket_id, data.SerializeToString())


def resolved(ticket_id: str, customer: str, version: int) -> Envelope:
    data = ticketing_events.TicketStatusChanged(
        ticket_id=ticket_id,
        from_status=ticket_pb2.TICKET_STATUS_OPEN,
        to_status=ticket_pb2.TICKET_STATUS_RESOLVED,
        ticket_version=version,
        customer_id=customer,
    )
    return _env(T + "status_changed", ticket_id, data.SerializeToString())


def flagged(ticket_id: str, customer: str, version: int) -> Envelope:
    data = ticketing_events.TicketFlagged(
        ticket_id=ticket_id,
        flag="secret_exposed",
        reasons=["recovery_phrase"],
        ticket_version=version,
        customer_id=customer,
    )
    return _env(T + "flagged", ticket_id, data.SerializeToString())


def offer_created(ticket_id: str, agent: str, change: str = "created") -> Envelope:
    """``offer.created``, or with ``change`` another of the offer's events (``accepted``, ``declined``, ...)."""
    offer = offer_pb2.Offer(
        id=str(uuid.uuid4()),
        ticket_id=ticket_id,
        agent_id=agent,
        queue="payments",
        state=offer_pb2.OFFER_STATE_PENDING,
        expire_time=now_stamp(),
    )
    data = routing_events.OfferChanged(offer=offer).SerializeToString()
    return _env(f"support.routing.v1.offer.{change}", ticket_id, data)


def _clock(ticket_id: str) -> sla_pb2.SlaClock:
    return sla_pb2.SlaClock(
        ticket_id=ticket_id,
        metric=sla_pb2.SLA_METRIC_FIRST_RESPONSE,
        queue="payments",
        deadline=now_stamp(),
        priority=common_pb2.PRIORITY_URGENT,
    )


def sla_warning(ticket_id: str, percent: int = 80) -> Envelope:
    data = routing_events.SlaWarning(clock=_clock(ticket_id), percent=percent).SerializeToString()
    return _env("support.routing.v1.sla.warning", ticket_id, data)


def sla_breached(ticket_id: str) -> Envelope:
    data = routing_events.SlaBreached(clock=_clock(ticket_id)).SerializeToString()
    return _env("support.routing.v1.sla.breached", ticket_id, data)


def escalated(ticket_id: str) -> Envelope:
    data = routing_events.TicketEscalated(ticket_id=ticket_id, queue="payments", step=2).SerializeToString()
    return _env("support.routing.v1.ticket.escalated", ticket_id, data)


def account_alert(
    customer: str,
    *,
    kind: AlertKind = wallet_events.ALERT_KIND_SUSPICIOUS_LOGIN,
    email: str = "",
) -> Envelope:
    alert_id = str(uuid.uuid4())
    data = wallet_events.AccountAlert(
        alert_id=alert_id,
        customer_id=customer,
        kind=kind,
        occur_time=now_stamp(),
        device="iPhone 15",
        location="Shenzhen",
        email=email,
        locale="zh-CN",
    )
    envelope = _env("wallet.v1.account.alert", customer, data.SerializeToString())
    return Envelope(
        type=envelope.type, source="wallet", subject=customer, data=envelope.data, id=alert_id, time=envelope.time
    )
