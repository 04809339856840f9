"""Translation between notify's domain and protobuf."""

from __future__ import annotations

from support.notify.v1 import events_pb2, notification_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events

from services.kit.proto_enums import timestamp, to_proto
from services.notify.domain import Notification

EVENT_SOURCE = "supportdesk/notify"
NOTIFICATION_CREATED = "support.notify.v1.notification.created"


def created_ticket(data: bytes) -> ticketing_events.TicketCreated:
    return ticketing_events.TicketCreated.FromString(data)


def notification_message(n: Notification) -> notification_pb2.Notification:
    return notification_pb2.Notification(
        id=str(n.id),
        user_id=n.user_id,
        channel=to_proto(notification_pb2.NotificationChannel, n.channel),
        kind=n.kind,
        title=n.title,
        body=n.body,
        ticket_id=n.ticket_id,
        source_event_id=n.source_event_id,
        create_time=timestamp(n.created_at),
    )


def notification_created(n: Notification) -> bytes:
    return events_pb2.NotificationCreated(notification=notification_message(n)).SerializeToString()
