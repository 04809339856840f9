"""Notify use cases: turning consumed events into notifications and deliveries, and what the API asks."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from services.kit.bus.consumer import Delivered, Together
from services.kit.bus.envelope import Envelope
from services.kit.bus.store import add_to_outbox
from services.kit.db import Connection
from services.notify import convert, events_in, recipients, store
from services.notify.deliveries import store as delivery_store
from services.notify.deliveries.model import DeliveryChannel, Endpoint, NewDelivery
from services.notify.delivery_rules import wanted
from services.notify.domain import (
    SUPERVISORS,
    Channel,
    Intent,
    Notification,
    Preferences,
    default_preferences,
    is_audience,
    normalise_locale,
    quiet_until,
)
from services.notify.templates import render


class EventHandler:
    """One handler for every consumed stream; runs inside the consumer's inbox transaction."""

    def __init__(self, *, email_enabled: bool, supervisors_email: str = "") -> None:
        self._email_enabled = email_enabled
        self._supervisors_email = supervisors_email

    async def __call__(self, conn: Connection, envelope: Envelope) -> None:
        await self._apply(conn, envelope, await delivery_store.enabled_endpoints(conn))

    async def apply_together(self, conn: Connection, batch: Sequence[Delivered]) -> set[str]:
        """Several events in one transaction, in turn, the webhook subscriptions read once; those about a ticket
        whose creation has not arrived yet are left (nothing is written for them before that is known)."""
        endpoints = await delivery_store.enabled_endpoints(conn)
        left: set[str] = set()
        for delivered in batch:
            with delivered.current():
                try:
                    await self._apply(conn, delivered.envelope, endpoints)
                except recipients.UnknownTicket:
                    left.add(delivered.envelope.id)
        return left

    def together(self) -> Together:
        return Together(frozenset(events_in.PAYLOADS), self.apply_together)

    async def _apply(self, conn: Connection, envelope: Envelope, endpoints: Sequence[Endpoint]) -> None:
        event = events_in.decode(envelope)
        if event is not None:
            await self._tell_people(conn, envelope, event)
        await self._forward_to_webhooks(conn, envelope, endpoints)

    async def _tell_people(self, conn: Connection, envelope: Envelope, event: recipients.Event) -> None:
        ticket_id = recipients.ticket_of(event)
        view = await store.ticket_view(conn, ticket_id) if ticket_id else None
        # Raises UnknownTicket when the ticket's creation is still on its way (before writing anything): the
        # event is retried later.
        found = recipients.intents(event, view)
        changed = recipients.updated_view(event, view)
        if changed is not None:
            await store.save_ticket_view(conn, changed)
        if not found:
            return
        people = [i.recipient for i in found if not is_audience(i.recipient)]
        stored_prefs = await store.preferences_of(conn, people)
        now = datetime.now(UTC)
        created: list[Envelope] = []
        emails: list[NewDelivery] = []
        for intent in found:
            prefs = stored_prefs.get(intent.recipient) or default_preferences(intent.recipient, intent.fallback_locale)
            notification = _notification(intent, prefs, envelope.id, now)
            if prefs.wants(Channel.IN_APP, security=intent.security):
                push = convert.created_event(notification)
                stored = await store.add_notification(conn, notification, _in_app(notification, push, envelope))
                if stored is not None:
                    created.append(push)
            address = prefs.email or intent.fallback_email or self._audience_email(intent.recipient)
            if self._email_enabled and address and prefs.wants(Channel.EMAIL, security=intent.security):
                emails.append(_email(notification, address, envelope, prefs, now))
        if created:
            await add_to_outbox(conn, created)
        await delivery_store.add_deliveries(conn, emails)

    def _audience_email(self, recipient: str) -> str:
        return self._supervisors_email if recipient == SUPERVISORS else ""

    async def _forward_to_webhooks(self, conn: Connection, envelope: Envelope, enabled: Sequence[Endpoint]) -> None:
        endpoints = [e for e in enabled if wanted(e.event_types, envelope.type)]
        if not endpoints:
            return
        body = events_in.cloudevent_json(envelope)
        now = datetime.now(UTC)
        await delivery_store.add_deliveries(
            conn,
            [
                NewDelivery(DeliveryChannel.WEBHOOK, str(e.id), envelope.id, envelope.type, body, now, endpoint_id=e.id)
                for e in endpoints
            ],
        )


def _notification(intent: Intent, prefs: Preferences, event_id: str, now: datetime) -> Notification:
    locale = prefs.locale if prefs.updated_at is not None else normalise_locale(intent.fallback_locale)
    title, body = render(intent.kind, locale, intent.facts)
    return Notification(
        id=uuid.uuid4(),
        user_id=intent.recipient,
        channel=Channel.IN_APP,
        kind=intent.kind,
        title=title,
        body=body,
        ticket_id=intent.ticket_id,
        source_event_id=event_id,
        created_at=now,
        data={**{k: v for k, v in intent.facts.items() if v}, "locale": locale},
        security=intent.security,
    )


def _in_app(n: Notification, push: Envelope, source: Envelope) -> NewDelivery:
    """The record of a notification's push: the push event's id, timed from the event that caused it."""
    return NewDelivery(
        DeliveryChannel.IN_APP,
        n.user_id,
        f"{source.id}/{n.kind}",
        source.type,
        b"",
        n.created_at,
        notification_id=n.id,
        id=uuid.UUID(push.id),
        created_at=source.time,
    )


def _email(n: Notification, address: str, envelope: Envelope, prefs: Preferences, now: datetime) -> NewDelivery:
    """An email delivery; outside security alerts, it waits for the end of the person's quiet hours."""
    due = now if n.security else (quiet_until(prefs, now) or now)
    payload = json.dumps({"to": address, "subject": n.title, "body": n.body}, ensure_ascii=False).encode()
    return NewDelivery(
        DeliveryChannel.EMAIL,
        address,
        # One email per event and kind: an event can tell one person two things (resolved, rate us).
        f"{envelope.id}/{n.kind}",
        envelope.type,
        payload,
        due,
        notification_id=n.id,
    )
