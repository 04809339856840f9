"""Protobuf of notify's preferences, webhooks and deliveries to and from the public JSON shapes."""

from __future__ import annotations

from typing import Any

from support.notify.v1 import notification_pb2, webhook_pb2

from services.gateway import schemas_notify as s
from services.gateway.mapping import EnumMap, timestamp_out

PERSONAL_CHANNEL = EnumMap(notification_pb2.NotificationChannel, "NOTIFICATION_CHANNEL_", s.PersonalChannel)
DELIVERY_STATUS = EnumMap(webhook_pb2.DeliveryStatus, "DELIVERY_STATUS_", s.DeliveryStatus)
DELIVERY_CHANNEL = EnumMap(webhook_pb2.DeliveryChannel, "DELIVERY_CHANNEL_", s.DeliveryChannel)


def _none_if_empty(value: str) -> str | None:
    return value or None


def preferences_in(user_id: str, body: s.PreferencesIn) -> notification_pb2.Preferences:
    return notification_pb2.Preferences(
        user_id=user_id,
        locale=body.locale.value,
        email=body.email or "",
        channels=[PERSONAL_CHANNEL.to_proto[c] for c in body.channels],
        quiet_start=body.quiet_start or "",
        quiet_end=body.quiet_end or "",
        time_zone=body.time_zone,
    )


def preferences_out(p: notification_pb2.Preferences) -> s.PreferencesOut:
    return s.PreferencesOut(
        locale=p.locale,
        email=_none_if_empty(p.email),
        channels=[c for c in (PERSONAL_CHANNEL.out_or_none(n) for n in p.channels) if c is not None],
        quiet_start=_none_if_empty(p.quiet_start),
        quiet_end=_none_if_empty(p.quiet_end),
        time_zone=p.time_zone,
        updated_at=timestamp_out(p, "update_time"),
    )


def webhook_in(body: s.WebhookIn | s.WebhookUpdateIn, endpoint_id: str = "") -> webhook_pb2.WebhookEndpoint:
    return webhook_pb2.WebhookEndpoint(
        id=endpoint_id,
        subscriber=getattr(body, "subscriber", ""),
        url=body.url,
        event_types=body.event_types,
        enabled=body.enabled,
        description=body.description,
    )


def webhook_out(e: webhook_pb2.WebhookEndpoint) -> s.WebhookOut:
    return s.WebhookOut(
        id=e.id,
        subscriber=e.subscriber,
        url=e.url,
        event_types=list(e.event_types),
        enabled=e.enabled,
        description=e.description,
        secret=_none_if_empty(e.secret),
        version=e.version,
        created_at=timestamp_out(e, "create_time"),
        updated_at=timestamp_out(e, "update_time"),
    )


def _ms(message: Any, field: str) -> float | None:
    if not message.HasField(field):
        return None
    return float(getattr(message, field).ToTimedelta().total_seconds() * 1000)


def delivery_out(d: webhook_pb2.Delivery) -> s.DeliveryOut:
    return s.DeliveryOut(
        id=d.id,
        channel=DELIVERY_CHANNEL.out_or_none(d.channel),
        target=d.target,
        event_id=d.event_id,
        event_type=d.event_type,
        status=DELIVERY_STATUS.out_or_none(d.status),
        attempt_count=d.attempt_count,
        created_at=timestamp_out(d, "create_time"),
        next_attempt_at=timestamp_out(d, "next_attempt_time"),
        delivered_at=timestamp_out(d, "deliver_time"),
        latency_ms=_ms(d, "latency"),
        last_error=_none_if_empty(d.last_error),
        attempts=[
            s.AttemptOut(
                number=a.number,
                started_at=timestamp_out(a, "start_time"),
                duration_ms=_ms(a, "duration") or 0.0,
                status_code=a.status_code or None,
                error=_none_if_empty(a.error),
            )
            for a in d.attempts
        ],
    )
