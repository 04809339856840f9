"""Notify use cases: turning consumed events into notifications and deliveries, and what the API asks."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
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

# Where an event's work runs: its own consumer span (``Delivered.current``), or the current one.
Within = AbstractContextManager[object]


class EventHandler:
    """One handler for every consumed stream; runs inside the consumer's inbox transaction.

    One event or a batch of them cost the same few statements: the ticket views read (and locked) at once, the
    preferences of everyone told read at once, then the views, notifications, push events and deliveries
    written at once. Each event's notifications and push events are made inside its own span (``Delivered``),
    so what it causes stays in its trace.
    """

    def __init__(self, *, email_enabled: bool, supervisors_email: str = "") -> None:
        self._email_enabled = email_enabled
        self._supervisors_email = supervisors_email

    async def __call__(self, conn: Connection, envelope: Envelope) -> None:
        if await self._apply(conn, [(envelope, contextlib.nullcontext())]):
            raise recipients.UnknownTicket(envelope.subject)  # retried once the ticket's creation has arrived

    async def apply_together(self, conn: Connection, batch: Sequence[Delivered]) -> set[str]:
        """Several events in one transaction. Left (nothing written for them): those about a ticket whose
        creation has not arrived yet, and those about a ticket another event of the batch is about."""
        return await self._apply(conn, [(d.envelope, d.current()) for d in batch])

    async def writes_nothing(self, conn: Connection, envelope: Envelope) -> bool:
        """True for an event that tells nobody and that no enabled webhook endpoint wants: one read, outside
        the inbox transaction. An endpoint enabled after that read gets the events handled after it, as when
        the read is inside the transaction."""
        if not events_in.forwarded_only(envelope.type):
            return False
        endpoints = await delivery_store.enabled_endpoints(conn)
        return not any(wanted(e.event_types, envelope.type) for e in endpoints)

    def together(self) -> Together:
        return Together(frozenset(events_in.PAYLOADS), self.apply_together)

    async def _apply(self, conn: Connection, batch: Sequence[tuple[Envelope, Within]]) -> set[str]:
        told, left = await self._whom_to_tell(conn, batch)
        await self._tell(conn, told)
        return left

    async def _whom_to_tell(
        self, conn: Connection, batch: Sequence[tuple[Envelope, Within]]
    ) -> tuple[list[tuple[Envelope, Within, list[Intent]]], set[str]]:
        """Each event's intents, with the ticket views they update saved; and the ids of the events left."""
        decoded = [(envelope, within, events_in.decode(envelope)) for envelope, within in batch]
        about = [recipients.ticket_of(event) if event is not None else "" for _, _, event in decoded]
        views = await store.ticket_views(conn, sorted(set(about) - {""}))
        told: list[tuple[Envelope, Within, list[Intent]]] = []
        left: set[str] = set()
        seen: set[str] = set()
        changed: list[recipients.TicketView] = []
        for (envelope, within, event), ticket_id in zip(decoded, about, strict=True):
            if ticket_id in seen:  # it must see the view the earlier event leaves: it goes alone, after
                left.add(envelope.id)
                continue
            found: list[Intent] = []
            if event is not None:
                view = views.get(ticket_id)
                try:
                    found = recipients.intents(event, view)
                except recipients.UnknownTicket:
                    left.add(envelope.id)
                    continue
                if (after := recipients.updated_view(event, view)) is not None:
                    changed.append(after)
            if ticket_id:
                seen.add(ticket_id)
            told.append((envelope, within, found))
        await store.save_ticket_views(conn, changed)
        return told, left

    async def _tell(self, conn: Connection, told: Sequence[tuple[Envelope, Within, list[Intent]]]) -> None:
        """Notifications, their push events and their deliveries (email, webhooks), written at once."""
        people = {i.recipient for _, _, found in told for i in found if not is_audience(i.recipient)}
        preferences = await store.preferences_of(conn, sorted(people))
        endpoints = await delivery_store.enabled_endpoints(conn)
        in_app: list[tuple[Notification, NewDelivery, Envelope]] = []
        deliveries: list[NewDelivery] = []
        for envelope, within, found in told:
            # Each event's own time: an inbox lists newest first by it, and replays follow the same order.
            now = datetime.now(UTC)
            with within:  # the push events carry this event's trace
                for intent in found:
                    prefs = preferences.get(intent.recipient)
                    prefs = prefs or default_preferences(intent.recipient, intent.fallback_locale)
                    notification = _notification(intent, prefs, envelope.id, now)
                    if prefs.wants(Channel.IN_APP, security=intent.security):
                        push = convert.created_event(notification)
                        in_app.append((notification, _in_app(notification, push, envelope), push))
                    address = prefs.email or intent.fallback_email or self._audience_email(intent.recipient)
                    if self._email_enabled and address and prefs.wants(Channel.EMAIL, security=intent.security):
                        deliveries.append(_email(notification, address, envelope, prefs, now))
            deliveries += _webhook_deliveries(envelope, endpoints, now)
        stored = await store.add_notifications(conn, [(n, delivery) for n, delivery, _ in in_app])
        await add_to_outbox(conn, [push for n, _, push in in_app if n.id in stored])
        await delivery_store.add_deliveries(conn, deliveries)

    def _audience_email(self, recipient: str) -> str:
        return self._supervisors_email if recipient == SUPERVISORS else ""


def _webhook_deliveries(envelope: Envelope, enabled: Sequence[Endpoint], now: datetime) -> list[NewDelivery]:
    endpoints = [e for e in enabled if wanted(e.event_types, envelope.type)]
    if not endpoints:
        return []
    body = events_in.cloudevent_json(envelope)
    return [
        NewDelivery(DeliveryChannel.WEBHOOK, str(e.id), envelope.id, envelope.type, body, now, endpoint_id=e.id)
        for e in endpoints
    ]


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
