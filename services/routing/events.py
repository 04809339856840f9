"""Routing's events go out through the outbox, in the transaction of the change they announce."""

from __future__ import annotations

from services.kit.bus.envelope import Envelope
from services.kit.bus.store import add_to_outbox
from services.kit.db import Connection
from services.routing.convert import EVENT_SOURCE


def event(event_type: str, subject: object, data: bytes) -> Envelope:
    return Envelope.new(type=event_type, source=EVENT_SOURCE, subject=str(subject), data=data)


async def publish(conn: Connection, *events: Envelope) -> None:
    if events:
        await add_to_outbox(conn, events)
