"""Translation between notify's domain and protobuf."""

from __future__ import annotations

from datetime import time, timedelta

from google.protobuf.duration_pb2 import Duration
from support.notify.v1 import events_pb2, notification_pb2, webhook_pb2

from services.kit.bus.envelope import Envelope
from services.kit.errors import InvalidArgument
from services.kit.proto_enums import from_proto, timestamp, to_proto
from services.notify.deliveries.model import Delivery, DeliveryChannel, DeliveryStatus, Endpoint
from services.notify.domain import Channel, Notification, Preferences

EVENT_SOURCE = "supportdesk/notify"
NOTIFICATION_CREATED = "support.notify.v1.notification.created"


def notification_message(n: Notification) -> notification_pb2.Notification:
    message = notification_pb2.Notification(
        id=str(n.id),
        user_id=n.user_id,
        channel=to_proto(notification_pb2.NotificationChannel, n.channel),
        kind=n.kind,
        title=n.title,
        body=n.body,
        ticket_id=n.ticket_id,
        source_event_id=n.source_event_id,
        create_time=timestamp(n.created_at),
        data=dict(n.data),
        security=n.security,
    )
    if n.read_at is not None:
        message.read_time.CopyFrom(timestamp(n.read_at))
    return message


def created_event(n: Notification) -> Envelope:
    """The event the gateway turns into a push on the recipient's live sockets."""
    return Envelope.new(
        type=NOTIFICATION_CREATED,
        source=EVENT_SOURCE,
        subject=n.user_id,
        data=events_pb2.NotificationCreated(notification=notification_message(n)).SerializeToString(),
    )


def _clock(value: time | None) -> str:
    return value.strftime("%H:%M") if value is not None else ""


def preferences_message(p: Preferences) -> notification_pb2.Preferences:
    message = notification_pb2.Preferences(
        user_id=p.user_id,
        locale=p.locale,
        email=p.email,
        channels=[to_proto(notification_pb2.NotificationChannel, c) for c in p.channels],
        quiet_start=_clock(p.quiet_start),
        quiet_end=_clock(p.quiet_end),
        time_zone=p.time_zone,
    )
    if p.updated_at is not None:
        message.update_time.CopyFrom(timestamp(p.updated_at))
    return message


def _parse_clock(value: str, field: str) -> time | None:
    if not value:
        return None
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("invalid_argument", f"{field}: expected HH:MM", field=field) from None


def preferences_from(message: notification_pb2.Preferences) -> Preferences:
    channels = []
    for number in message.channels:
        try:
            name = from_proto(notification_pb2.NotificationChannel, number)
        except ValueError:
            name = None
        if name is None:
            raise InvalidArgument("invalid_argument", "channels: unknown channel", field="channels")
        channels.append(Channel(name))
    return Preferences(
        user_id=message.user_id,
        locale=message.locale,
        email=message.email,
        channels=tuple(dict.fromkeys(channels)),
        quiet_start=_parse_clock(message.quiet_start, "quiet_start"),
        quiet_end=_parse_clock(message.quiet_end, "quiet_end"),
        time_zone=message.time_zone or "UTC",
    )


def endpoint_message(e: Endpoint, *, with_secret: bool = False) -> webhook_pb2.WebhookEndpoint:
    message = webhook_pb2.WebhookEndpoint(
        id=str(e.id),
        subscriber=e.subscriber,
        url=e.url,
        event_types=list(e.event_types),
        enabled=e.enabled,
        description=e.description,
        secret=e.secret if with_secret else "",
        version=e.version,
    )
    if e.created_at is not None:
        message.create_time.CopyFrom(timestamp(e.created_at))
    if e.updated_at is not None:
        message.update_time.CopyFrom(timestamp(e.updated_at))
    return message


def _duration(delta: timedelta) -> Duration:
    d = Duration()
    d.FromTimedelta(delta)
    return d


def delivery_message(d: Delivery) -> webhook_pb2.Delivery:
    message = webhook_pb2.Delivery(
        id=str(d.id),
        channel=to_proto(webhook_pb2.DeliveryChannel, d.channel),
        target=d.target,
        event_id=d.event_id,
        event_type=d.event_type,
        status=to_proto(webhook_pb2.DeliveryStatus, d.status),
        attempt_count=d.attempts,
        create_time=timestamp(d.created_at),
        next_attempt_time=timestamp(d.next_attempt_at),
        last_error=d.last_error,
        notification_id=str(d.notification_id) if d.notification_id else "",
        attempts=[
            webhook_pb2.DeliveryAttempt(
                number=a.number,
                start_time=timestamp(a.started_at),
                duration=_duration(timedelta(milliseconds=a.duration_ms)),
                status_code=a.status_code,
                error=a.error,
            )
            for a in d.attempt_log
        ],
    )
    if d.delivered_at is not None:
        message.deliver_time.CopyFrom(timestamp(d.delivered_at))
        message.latency.CopyFrom(_duration(d.delivered_at - d.created_at))
    return message


def delivery_status(number: int) -> DeliveryStatus | None:
    name = _enum_name(webhook_pb2.DeliveryStatus, number, "status")
    return DeliveryStatus(name) if name else None


def delivery_channel(number: int) -> DeliveryChannel | None:
    name = _enum_name(webhook_pb2.DeliveryChannel, number, "channel")
    return DeliveryChannel(name) if name else None


def _enum_name(wrapper: object, number: int, field: str) -> str | None:
    try:
        return from_proto(wrapper, number)
    except ValueError:
        raise InvalidArgument("invalid_argument", f"{field}: unknown value", field=field) from None
