"""Notifications: who is told what, in their language. Pure rules, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Channel(StrEnum):
    IN_APP = "in_app"
    WEBHOOK = "webhook"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Notification:
    id: uuid.UUID
    user_id: str
    channel: Channel
    kind: str
    title: str
    body: str
    ticket_id: str
    source_event_id: str
    created_at: datetime


_TICKET_RECEIVED = {
    "zh": (
        "我们已收到您的工单",
        "工单“{subject}”已提交，客服人员将尽快为您处理。客服绝不会索要您的助记词、私钥或密码。",
    ),
    "en": (
        "We have your ticket",
        "Your ticket “{subject}” is with us and an agent will pick it up shortly. "
        "Support will never ask for your recovery phrase, private keys or password.",
    ),
}


def ticket_received(
    *, ticket_id: str, customer_id: str, subject: str, language: str, event_id: str, now: datetime
) -> Notification:
    """The customer's confirmation that a ticket was opened, in their language (English as the fallback)."""
    title, body = _TICKET_RECEIVED.get(language.split("-")[0].lower(), _TICKET_RECEIVED["en"])
    return Notification(
        id=uuid.uuid4(),
        user_id=customer_id,
        channel=Channel.IN_APP,
        kind="ticket.received",
        title=title,
        body=body.format(subject=subject),
        ticket_id=ticket_id,
        source_event_id=event_id,
        created_at=now,
    )
