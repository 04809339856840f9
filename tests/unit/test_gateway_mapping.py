"""Protobuf ↔ JSON mapping of the gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import TypeAdapter, ValidationError
from support.common.v1 import common_pb2
from support.notify.v1 import notification_pb2, notify_service_pb2
from support.routing.v1 import agent_pb2, offer_pb2, queue_pb2, routing_service_pb2
from support.ticketing.v1 import ticket_pb2

from services.gateway import mapping, schemas
from services.gateway.idempotency import request_id_for
from services.gateway.principal import Principal, Role
from services.gateway.schemas import Instant

pytestmark = pytest.mark.unit

PROTO_ENUMS: dict[str, Any] = {
    "channel": ticket_pb2.Channel,
    "category": ticket_pb2.Category,
    "priority": common_pb2.Priority,
    "ticket_status": ticket_pb2.TicketStatus,
    "queue_entry_state": queue_pb2.QueueEntryState,
    "notification_channel": notification_pb2.NotificationChannel,
    "presence": agent_pb2.Presence,
    "offer_state": offer_pb2.OfferState,
    "actor_type": ticket_pb2.ActorType,
    "message_visibility": ticket_pb2.MessageVisibility,
}


@pytest.mark.parametrize("name", sorted(mapping.ENUM_MAPS))
def test_every_enum_value_has_a_public_name_and_back(name: str) -> None:
    enum_map = mapping.ENUM_MAPS[name]
    proto_values = {number for number in PROTO_ENUMS[name].values() if number != 0}
    assert set(enum_map.to_public) == proto_values
    assert set(enum_map.to_proto) == set(enum_map.public)


def test_public_names_drop_the_prefix() -> None:
    assert mapping.CATEGORY.out(ticket_pb2.CATEGORY_SUSPICIOUS_ACTIVITY) == "suspicious_activity"
    assert mapping.TICKET_STATUS.out(ticket_pb2.TICKET_STATUS_ON_HOLD) == "on_hold"
    assert mapping.PRIORITY.to_proto[schemas.Priority.URGENT] == common_pb2.PRIORITY_URGENT


def test_unknown_enum_value_is_an_error() -> None:
    with pytest.raises(mapping.MappingError):
        mapping.CHANNEL.out(99)


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


def test_create_request_carries_every_field() -> None:
    body = schemas.CreateTicketIn.model_validate(
        {
            "channel": "web",
            "category": "bank_card",
            "subject": "  Card not linking  ",
            "description": "It fails with E42",
            "priority": "high",
            "language": "zh-CN",
            "customer_tier": "gold",
            "wallet_context": {
                "transaction_ref": "tx-1",
                "amount": "129.90",
                "currency": "CNY",
                "occurred_at": "2025-03-01T10:00:00+08:00",
            },
        }
    )
    request = mapping.create_ticket_request(body, customer_id="c-1", request_id="c-1:k")
    assert request.request_id == "c-1:k"
    assert request.customer_id == "c-1"
    assert request.channel == ticket_pb2.CHANNEL_WEB
    assert request.category == ticket_pb2.CATEGORY_BANK_CARD
    assert request.subject == "Card not linking"
    assert request.priority == common_pb2.PRIORITY_HIGH
    assert request.language == "zh-CN"
    assert request.customer_tier == "gold"
    assert request.wallet_context.amount == "129.90"
    assert request.wallet_context.occurred_time.ToDatetime(tzinfo=UTC) == datetime(2025, 3, 1, 2, tzinfo=UTC)
    assert not request.wallet_context.error_code


def test_create_request_leaves_priority_to_ticketing() -> None:
    body = schemas.CreateTicketIn(
        channel=schemas.Channel.APP, category=schemas.Category.OTHER, subject="s", description="d"
    )
    request = mapping.create_ticket_request(body, customer_id="c-1", request_id="r")
    assert request.priority == common_pb2.PRIORITY_UNSPECIFIED
    assert request.language == "en"
    assert not request.HasField("wallet_context")


def test_ticket_out_json() -> None:
    created = datetime(2025, 3, 1, 2, 0, 0, 250000, tzinfo=UTC)
    ticket = ticket_pb2.Ticket(
        id="t-1",
        customer_id="c-1",
        channel=ticket_pb2.CHANNEL_APP,
        category=ticket_pb2.CATEGORY_PAYMENT_FAILED,
        subject="s",
        description="d",
        priority=common_pb2.PRIORITY_URGENT,
        status=ticket_pb2.TICKET_STATUS_NEW,
        language="en",
        version=1,
        create_time=stamp(created),
        update_time=stamp(created),
        wallet_context=ticket_pb2.WalletContext(amount="10.00", currency="USD"),
    )
    assert mapping.ticket_out(ticket).model_dump(mode="json") == {
        "id": "t-1",
        "customer_id": "c-1",
        "channel": "app",
        "category": "payment_failed",
        "subject": "s",
        "description": "d",
        "priority": "urgent",
        "status": "new",
        "language": "en",
        "customer_tier": None,
        "wallet_context": {
            "transaction_ref": None,
            "amount": "10.00",
            "currency": "USD",
            "occurred_at": None,
            "error_code": None,
            "app_version": None,
            "device": None,
        },
        "version": 1,
        "created_at": "2025-03-01T02:00:00.250000Z",
        "updated_at": "2025-03-01T02:00:00.250000Z",
        "assignee_id": None,
        "flags": [],
        "resolution_note": None,
        "resolved_at": None,
        "csat": None,
    }


def test_resolved_rated_ticket_json() -> None:
    when = datetime(2025, 3, 2, tzinfo=UTC)
    ticket = ticket_pb2.Ticket(
        id="t-2",
        customer_id="c-1",
        channel=ticket_pb2.CHANNEL_WEB,
        category=ticket_pb2.CATEGORY_COMPLAINT,
        status=ticket_pb2.TICKET_STATUS_RESOLVED,
        assignee_id="a-1",
        flags=["secret_exposed"],
        resolution_note="refunded",
        resolve_time=stamp(when),
        csat=ticket_pb2.Csat(score=5, create_time=stamp(when)),
    )
    out = mapping.ticket_out(ticket).model_dump(mode="json")
    assert {k: out[k] for k in ("assignee_id", "flags", "resolution_note", "resolved_at", "csat")} == {
        "assignee_id": "a-1",
        "flags": ["secret_exposed"],
        "resolution_note": "refunded",
        "resolved_at": "2025-03-02T00:00:00Z",
        "csat": {"score": 5, "comment": None, "created_at": "2025-03-02T00:00:00Z"},
    }


def test_queue_entry_and_stats() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    entry = queue_pb2.QueueEntry(
        ticket_id="t-1",
        queue="payments",
        priority=common_pb2.PRIORITY_HIGH,
        state=queue_pb2.QUEUE_ENTRY_STATE_WAITING,
        ticket_version=3,
        ticket_create_time=stamp(now),
        enqueue_time=stamp(now + timedelta(seconds=1)),
    )
    out = mapping.queue_entry_out(entry).model_dump(mode="json")
    assert out["state"] == "waiting"
    assert out["enqueued_at"] == "2025-01-01T00:00:01Z"
    page = mapping.queue_stats_page(
        routing_service_pb2.ListQueueStatsResponse(
            queues=[
                queue_pb2.QueueStats(
                    queue="payments",
                    waiting=2,
                    longest_wait=Duration(seconds=90, nanos=5 * 10**8),
                    agents_available=3,
                    agents_busy=4,
                    offers_outstanding=1,
                    estimated_wait=Duration(seconds=45),
                )
            ],
        )
    )
    assert page.model_dump() == {
        "queues": [
            {
                "queue": "payments",
                "waiting": 2,
                "longest_wait_seconds": 90.5,
                "agents_available": 3,
                "agents_busy": 4,
                "offers_outstanding": 1,
                "estimated_wait_seconds": 45.0,
            }
        ],
        "next_page_token": None,
    }


def test_agent_and_offer() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    agent = agent_pb2.Agent(
        id="a-1",
        display_name="Li Lei",
        skills=[agent_pb2.Skill(name="payments", proficiency=4)],
        languages=["zh", "en"],
        capacity=3,
        presence=agent_pb2.PRESENCE_AVAILABLE,
        active_tickets=1,
        presence_change_time=stamp(now),
        version=2,
    )
    assert mapping.agent_out(agent).model_dump(mode="json") == {
        "id": "a-1",
        "display_name": "Li Lei",
        "skills": [{"name": "payments", "proficiency": 4}],
        "languages": ["zh", "en"],
        "capacity": 3,
        "presence": "available",
        "active_tickets": 1,
        "last_assignment_at": None,
        "presence_changed_at": "2025-01-01T00:00:00Z",
        "version": 2,
    }
    offer = offer_pb2.Offer(
        id="o-1",
        ticket_id="t-1",
        agent_id="a-1",
        queue="payments",
        state=offer_pb2.OFFER_STATE_PENDING,
        create_time=stamp(now),
        expire_time=stamp(now + timedelta(seconds=30)),
    )
    out = mapping.offer_out(offer).model_dump(mode="json")
    assert (out["state"], out["expires_at"], out["responded_at"]) == ("pending", "2025-01-01T00:00:30Z", None)


def test_notification_page() -> None:
    page = mapping.notification_page(
        notify_service_pb2.ListNotificationsResponse(
            notifications=[
                notification_pb2.Notification(
                    id="n-1",
                    user_id="c-1",
                    channel=notification_pb2.NOTIFICATION_CHANNEL_IN_APP,
                    kind="ticket.received",
                    title="We got it",
                    body="An agent will answer soon",
                    ticket_id="t-1",
                )
            ],
            next_page_token="p2",
        )
    )
    dumped = page.model_dump(mode="json")
    assert dumped["next_page_token"] == "p2"
    assert dumped["notifications"][0]["channel"] == "in_app"
    assert dumped["notifications"][0]["created_at"] is None


def test_timestamps_are_utc() -> None:
    local = datetime(2025, 6, 1, 12, tzinfo=timezone(timedelta(hours=8)))
    assert mapping.timestamp_in(local).ToDatetime(tzinfo=UTC) == datetime(2025, 6, 1, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    "bad",
    [
        {"subject": "   "},
        {"description": "x" * 10_001},
        {"language": "not a tag"},
        {"wallet_context": {"amount": "12.3.4"}},
        {"wallet_context": {"amount": 12.5}},
        {"wallet_context": {"currency": "usd"}},
        {"wallet_context": {"occurred_at": "2025-01-01T00:00:00"}},
        {"wallet_context": {"pin": "1234"}},
        {"channel": "CHANNEL_APP"},
        {"priority": "PRIORITY_URGENT"},
    ],
)
def test_requests_are_bounded(bad: dict[str, Any]) -> None:
    body: dict[str, Any] = {"channel": "app", "category": "other", "subject": "s", "description": "d"}
    body.update(bad)
    with pytest.raises(ValueError, match="validation error"):
        schemas.CreateTicketIn.model_validate(body)


def test_request_ids_are_scoped_per_caller() -> None:
    agent = Principal(subject="a:b", role=Role.AGENT)
    other = Principal(subject="a", role=Role.AGENT)
    # "a:b" + "c" and "a" + "b:c" must not meet in one request_id.
    assert request_id_for(agent, "c") != request_id_for(other, "b:c")
    assert request_id_for(Principal(subject="c-1", role=Role.CUSTOMER), "k-1") == "c-1:k-1"
    assert request_id_for(agent, None) != request_id_for(agent, None)


@pytest.mark.parametrize("value", ["1700000000", "0.5", 1700000000, "2026-11-25"])
def test_instants_are_rfc3339_date_times_only(value: object) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Instant).validate_python(value)
    assert TypeAdapter(Instant).validate_python("2026-11-25T08:00:00Z").year == 2026


@pytest.mark.parametrize("score", [True, "5", 5.0])
def test_numbers_in_bodies_are_json_integers_only(score: object) -> None:
    with pytest.raises(ValidationError):
        schemas.CsatIn.model_validate({"score": score})
    assert schemas.CsatIn.model_validate({"score": 5}).score == 5
