"""Events notify consumes: protobuf payloads decoded into the plain facts ``recipients`` works on,
and their CloudEvents JSON form for webhook subscribers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import sla_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2
from support.wallet.v1 import events_pb2 as wallet_events

from services.kit.bus.envelope import Envelope
from services.kit.proto_enums import from_proto
from services.notify import recipients as r

_T = "support.ticketing.v1.ticket."
_R = "support.routing.v1."

# The payload type of every event a webhook subscriber may receive in JSON.
PAYLOADS: dict[str, type[Message]] = {
    _T + "created": ticketing_events.TicketCreated,
    _T + "message_added": ticketing_events.MessageAdded,
    _T + "note_added": ticketing_events.NoteAdded,
    _T + "status_changed": ticketing_events.TicketStatusChanged,
    _T + "priority_changed": ticketing_events.TicketPriorityChanged,
    _T + "assigned": ticketing_events.TicketAssigned,
    _T + "csat_recorded": ticketing_events.CsatRecorded,
    _T + "flagged": ticketing_events.TicketFlagged,
    _R + "ticket.queued": routing_events.TicketQueued,
    _R + "ticket.assigned": routing_events.TicketAssigned,
    _R + "ticket.transferred": routing_events.TicketTransferred,
    _R + "ticket.escalated": routing_events.TicketEscalated,
    _R + "agent.presence_changed": routing_events.AgentPresenceChanged,
    _R + "sla.warning": routing_events.SlaWarning,
    _R + "sla.breached": routing_events.SlaBreached,
    _R + "sla.fulfilled": routing_events.SlaFulfilled,
    "wallet.v1.account.alert": wallet_events.AccountAlert,
    **{
        _R + f"offer.{s}": routing_events.OfferChanged
        for s in ("created", "accepted", "declined", "expired", "withdrawn")
    },
}


def _time(message: Any, field: str) -> str:
    return str(getattr(message, field).ToJsonString()) if message.HasField(field) else ""


def _ticket_created(data: bytes) -> r.Event:
    t = ticketing_events.TicketCreated.FromString(data).ticket
    view = r.TicketView(
        ticket_id=t.id,
        customer_id=t.customer_id,
        assignee_id=t.assignee_id,
        language=t.language,
        subject=t.subject,
        category=from_proto(ticket_pb2.Category, t.category) or "",
        version=t.version,
    )
    return r.TicketOpened(view)


def _assigned(data: bytes) -> r.Event:
    e = ticketing_events.TicketAssigned.FromString(data)
    return r.TicketAssigned(e.ticket_id, e.assignee_id, e.ticket_version)


def _message(data: bytes) -> r.Event:
    e = ticketing_events.MessageAdded.FromString(data)
    author = from_proto(ticket_pb2.ActorType, e.message.author.type) or ""
    return r.MessagePosted(
        e.message.ticket_id, author, e.customer_id, e.assignee_id, e.language, e.message.body, e.ticket_version
    )


def _status(data: bytes) -> r.Event:
    e = ticketing_events.TicketStatusChanged.FromString(data)
    return r.StatusChanged(
        e.ticket_id, from_proto(ticket_pb2.TicketStatus, e.to_status) or "", e.customer_id, e.ticket_version
    )


def _flagged(data: bytes) -> r.Event:
    e = ticketing_events.TicketFlagged.FromString(data)
    return r.Flagged(e.ticket_id, e.flag, tuple(e.reasons), e.customer_id, e.ticket_version)


def _offer(data: bytes) -> r.Event:
    o = routing_events.OfferChanged.FromString(data).offer
    return r.OfferMade(o.id, o.ticket_id, o.agent_id, o.queue, _time(o, "expire_time"))


def _escalated(data: bytes) -> r.Event:
    e = routing_events.TicketEscalated.FromString(data)
    return r.Escalated(e.ticket_id, e.queue, e.step)


def _sla_warning(data: bytes) -> r.Event:
    e = routing_events.SlaWarning.FromString(data)
    metric = from_proto(sla_pb2.SlaMetric, e.clock.metric) or ""
    return r.SlaWarned(e.clock.ticket_id, metric, e.percent, _time(e.clock, "deadline"), e.clock.queue)


def _sla_breached(data: bytes) -> r.Event:
    e = routing_events.SlaBreached.FromString(data)
    return r.SlaBreached(e.clock.ticket_id, from_proto(sla_pb2.SlaMetric, e.clock.metric) or "", e.clock.queue)


def _alert(data: bytes) -> r.Event:
    a = wallet_events.AccountAlert.FromString(data)
    facts = {
        "occur_time": _time(a, "occur_time"),
        "device": a.device,
        "location": a.location,
        "ip_address": a.ip_address,
        "amount": a.amount,
        "currency": a.currency,
        "card_last4": a.card_last4[-4:],
    }
    try:
        kind = from_proto(wallet_events.AlertKind, a.kind) or ""
    except ValueError:  # a kind newer than this build: still an alert, told in general words
        kind = ""
    return r.AccountAlert(a.alert_id, a.customer_id, kind, facts, a.email, a.locale)


_DECODERS: dict[str, Callable[[bytes], r.Event]] = {
    _T + "created": _ticket_created,
    _T + "assigned": _assigned,
    _T + "message_added": _message,
    _T + "status_changed": _status,
    _T + "flagged": _flagged,
    _R + "offer.created": _offer,
    _R + "ticket.escalated": _escalated,
    _R + "sla.warning": _sla_warning,
    _R + "sla.breached": _sla_breached,
    "wallet.v1.account.alert": _alert,
}


def forwarded_only(event_type: str) -> bool:
    """Events of this type tell nobody: notify only forwards them to the webhooks that want them."""
    return event_type not in _DECODERS


def decode(envelope: Envelope) -> r.Event | None:
    """The facts of an event notify tells people about; None for events it only forwards to webhooks.

    Raises DecodeError (a poison message) when the payload is not the declared type.
    """
    decoder = _DECODERS.get(envelope.type)
    return decoder(envelope.data) if decoder else None


def cloudevent_json(envelope: Envelope) -> bytes:
    """The event as a CloudEvents 1.0 JSON document: what webhook subscribers receive and sign-check."""
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": envelope.id,
        "type": envelope.type,
        "source": envelope.source,
        "subject": envelope.subject,
        "time": envelope.time.isoformat(),
    }
    payload = PAYLOADS.get(envelope.type)
    if payload is None:
        document["datacontenttype"] = "application/protobuf"
        document["data_base64"] = base64.b64encode(envelope.data).decode()
    else:
        document["datacontenttype"] = "application/json"
        document["data"] = MessageToDict(payload.FromString(envelope.data), preserving_proto_field_name=True)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
