from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.kit.bus.envelope import MSG_ID_HEADER, Envelope, EnvelopeError

pytestmark = pytest.mark.unit


def sample() -> Envelope:
    return Envelope(
        type="support.ticketing.v1.ticket.created",
        source="supportdesk/ticketing",
        subject="7f1c4a4e-0000-4000-8000-000000000001",
        data=b"\x0a\x03abc",
        id="0b8f2f5e-1d1a-4c55-9a43-2f6f3d8e2a10",
        time=datetime(2026, 11, 25, 8, 30, tzinfo=UTC),
    )


def test_headers_follow_the_cloudevents_nats_binary_binding() -> None:
    headers = sample().headers()
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == "0b8f2f5e-1d1a-4c55-9a43-2f6f3d8e2a10"
    assert headers["ce-type"] == "support.ticketing.v1.ticket.created"
    assert headers["ce-source"] == "supportdesk/ticketing"
    assert headers["ce-subject"] == "7f1c4a4e-0000-4000-8000-000000000001"
    assert headers["ce-time"] == "2026-11-25T08:30:00+00:00"
    assert headers["content-type"] == "application/protobuf"
    # JetStream de-duplicates on the event id.
    assert headers[MSG_ID_HEADER] == headers["ce-id"]


def test_round_trip_keeps_every_attribute_and_the_payload() -> None:
    original = sample()
    assert Envelope.from_message(original.headers(), original.data) == original


def test_new_event_carries_the_current_trace_context() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        event = Envelope.new(type="t.v1.x.y", source="s", subject="x", data=b"")
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert event.trace["traceparent"].split("-")[1] == trace_id
    assert Envelope.from_message(event.headers(), b"").trace["traceparent"] == event.trace["traceparent"]
    assert trace.get_current_span().get_span_context().is_valid is False


def test_events_get_distinct_ids() -> None:
    ids = {Envelope.new(type="t", source="s", subject="x", data=b"").id for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"ce-specversion": "0.3"}, "ce-specversion"),
        ({"ce-id": ""}, "ce-id"),
        ({"ce-type": ""}, "ce-type"),
        ({"ce-time": "yesterday"}, "ce-time"),
        ({"ce-time": "2026-11-25T08:30:00"}, "timezone"),
    ],
)
def test_invalid_headers_are_refused_with_the_reason(change: dict[str, str], complaint: str) -> None:
    headers = {**sample().headers(), **change}
    with pytest.raises(EnvelopeError, match=complaint):
        Envelope.from_message(headers, b"")


def test_a_message_without_headers_is_not_an_event() -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_message(None, b"payload")
