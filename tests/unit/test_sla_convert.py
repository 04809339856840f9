"""Ticketing's events as SLA reads them, and SLA clocks as published."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import sla_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.envelope import Envelope
from services.kit.proto_enums import timestamp
from services.routing.sla import convert
from services.routing.sla.domain import (
    Author,
    Clock,
    ClockState,
    Escalation,
    MessagePosted,
    Metric,
    OtherChange,
    StatusChanged,
    TicketOpened,
)

pytestmark = pytest.mark.unit

TICKET = uuid.UUID("00000000-0000-4000-8000-00000000000b")
AT = datetime(2026, 6, 3, 8, 0, tzinfo=UTC)


def envelope(kind: str, payload: object) -> Envelope:
    data = payload.SerializeToString()  # type: ignore[attr-defined]
    return Envelope(type=f"support.ticketing.v1.ticket.{kind}", source="t", subject=str(TICKET), data=data, time=AT)


def posted(author: int, visibility: int = ticket_pb2.MESSAGE_VISIBILITY_PUBLIC) -> Author:
    message = ticket_pb2.Message(
        ticket_id=str(TICKET),
        author=ticket_pb2.Actor(type=author),  # type: ignore[arg-type]
        visibility=visibility,  # type: ignore[arg-type]
        create_time=timestamp(AT + timedelta(seconds=5)),
    )
    fact = convert.fact(envelope("message_added", ticketing_events.MessageAdded(message=message, ticket_version=3)))
    assert isinstance(fact, MessagePosted)
    assert (fact.version, fact.at) == (3, AT + timedelta(seconds=5))
    return fact.author


def test_message_authors() -> None:
    assert posted(ticket_pb2.ACTOR_TYPE_CUSTOMER) is Author.CUSTOMER
    for staff in (ticket_pb2.ACTOR_TYPE_AGENT, ticket_pb2.ACTOR_TYPE_SUPERVISOR, ticket_pb2.ACTOR_TYPE_ADMIN):
        assert posted(staff) is Author.STAFF
    assert posted(ticket_pb2.ACTOR_TYPE_SYSTEM) is Author.SYSTEM
    assert posted(ticket_pb2.ACTOR_TYPE_AGENT, ticket_pb2.MESSAGE_VISIBILITY_INTERNAL) is Author.SYSTEM


def test_created_status_and_other_events() -> None:
    ticket = ticket_pb2.Ticket(
        id=str(TICKET),
        category=ticket_pb2.CATEGORY_ACCOUNT_FROZEN,
        priority=common_pb2.PRIORITY_URGENT,
        status=ticket_pb2.TICKET_STATUS_NEW,
        version=1,
        create_time=timestamp(AT),
    )
    assert convert.fact(envelope("created", ticketing_events.TicketCreated(ticket=ticket))) == TicketOpened(
        TICKET, 1, AT, "account_frozen", "urgent", "standard", "new"
    )
    changed = ticketing_events.TicketStatusChanged(
        ticket_id=str(TICKET),
        from_status=ticket_pb2.TICKET_STATUS_OPEN,
        to_status=ticket_pb2.TICKET_STATUS_PENDING,
        ticket_version=4,
    )
    assert convert.fact(envelope("status_changed", changed)) == StatusChanged(TICKET, 4, AT, "open", "pending")
    flagged = ticketing_events.TicketFlagged(ticket_id=str(TICKET), flag="secret_exposed", ticket_version=5)
    assert convert.fact(envelope("flagged", flagged)) == OtherChange(TICKET, 5, AT)
    assert convert.fact(envelope("renamed", flagged)) is None


def test_unreadable_events() -> None:
    for bad in (
        envelope("created", ticketing_events.TicketCreated(ticket=ticket_pb2.Ticket(id="not-a-uuid", version=1))),
        envelope("note_added", ticketing_events.NoteAdded(ticket_id=str(TICKET))),  # no version
        Envelope(type="support.ticketing.v1.ticket.assigned", source="t", subject="x", data=b"\xff\xff", time=AT),
    ):
        with pytest.raises(convert.UnreadableEvent):
            convert.fact(bad)


def test_a_clock_met_late_is_published_as_breached_with_its_stop_time() -> None:
    clock = Clock(
        ticket_id=TICKET,
        metric=Metric.FIRST_RESPONSE,
        cycle=1,
        policy_id=uuid.UUID(int=7),
        target=timedelta(minutes=5),
        calendar_id=None,
        warning_percents=(50, 80),
        escalation=Escalation(raise_priority=True),
        state=ClockState.FULFILLED,
        started_at=AT,
        deadline=AT + timedelta(minutes=5),
        at_risk_at=AT + timedelta(minutes=4),
        queue="payments",
        priority="high",
        stopped_at=AT + timedelta(minutes=7),
        breached_at=AT + timedelta(minutes=5),
    )
    published = routing_events.SlaFulfilled.FromString(convert.fulfilled_event(clock).data).clock
    assert published.state == sla_pb2.SLA_CLOCK_STATE_BREACHED
    assert published.breached
    assert published.stop_time.ToDatetime(tzinfo=UTC) == AT + timedelta(minutes=7)
    assert (published.queue, published.priority) == ("payments", common_pb2.PRIORITY_HIGH)
    event = convert.breached_event(clock)
    assert (event.type, event.source, event.subject) == (
        "support.routing.v1.sla.breached",
        "supportdesk/routing",
        str(TICKET),
    )
    assert routing_events.SlaBreached.FromString(event.data).escalation.raise_priority
