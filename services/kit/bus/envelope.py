"""CloudEvents 1.0 in NATS binary mode: attributes travel as ``ce-*`` headers, the payload as the body."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry import propagate

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
# JetStream drops a second message with the same id inside the stream's duplicate window.
MSG_ID_HEADER = "Nats-Msg-Id"
_TRACE_HEADERS = ("traceparent", "tracestate")


class EnvelopeError(ValueError):
    """A message that is not a valid event; it can never be processed, only dead-lettered."""


def current_trace_headers() -> dict[str, str]:
    """The active span's W3C trace context (``traceparent``, ``tracestate``) as message headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in _TRACE_HEADERS}


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event. ``type`` is also the NATS subject, e.g. ``support.ticketing.v1.ticket.created``."""

    type: str
    source: str
    subject: str
    data: bytes
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    trace: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, *, type: str, source: str, subject: str, data: bytes) -> Envelope:
        """An event stamped with the caller's trace context, so consumers continue the same trace."""
        return cls(type=type, source=source, subject=subject, data=data, trace=current_trace_headers())

    def headers(self) -> dict[str, str]:
        return {
            "ce-specversion": SPEC_VERSION,
            "ce-id": self.id,
            "ce-type": self.type,
            "ce-source": self.source,
            "ce-subject": self.subject,
            "ce-time": self.time.isoformat(),
            "content-type": CONTENT_TYPE,
            MSG_ID_HEADER: self.id,
            **self.trace,
        }

    @classmethod
    def from_message(cls, headers: Mapping[str, str] | None, data: bytes) -> Envelope:
        if not headers:
            raise EnvelopeError("message has no headers")
        if headers.get("ce-specversion") != SPEC_VERSION:
            raise EnvelopeError(f"unsupported ce-specversion {headers.get('ce-specversion')!r}")
        missing = [h for h in ("ce-id", "ce-type", "ce-source", "ce-subject", "ce-time") if not headers.get(h)]
        if missing:
            raise EnvelopeError(f"missing headers: {', '.join(missing)}")
        try:
            time = datetime.fromisoformat(headers["ce-time"])
        except ValueError as exc:
            raise EnvelopeError(f"bad ce-time {headers['ce-time']!r}") from exc
        if time.tzinfo is None:
            raise EnvelopeError("ce-time has no timezone")
        return cls(
            type=headers["ce-type"],
            source=headers["ce-source"],
            subject=headers["ce-subject"],
            data=data,
            id=headers["ce-id"],
            time=time,
            trace={k: headers[k] for k in _TRACE_HEADERS if k in headers},
        )
