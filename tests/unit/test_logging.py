"""JSON log lines: trace and span ids on every line, and errors logged without the values they quote."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.kit.logging import configure_logging, describe_error

pytestmark = pytest.mark.unit


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("test-service", "INFO", stream)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def test_every_line_carries_trace_and_span_ids(log_stream: io.StringIO) -> None:
    log = logging.getLogger("supportdesk.test")
    log.info("outside any trace")
    with TracerProvider().get_tracer(__name__).start_as_current_span("handling") as span:
        log.warning("inside a trace", extra={"event_type": "support.ticketing.v1.ticket.created"})
    outside, inside = (json.loads(line) for line in log_stream.getvalue().splitlines())
    assert (outside["trace_id"], outside["span_id"]) == ("", "")
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (inside["level"], inside["service"], inside["event_type"]) == (
        "WARNING",
        "test-service",
        "support.ticketing.v1.ticket.created",
    )


def test_database_errors_are_logged_without_the_values_they_quote() -> None:
    refused = asyncpg.InvalidTextRepresentationError('invalid input syntax for type uuid: "my phone is 13800138000"')
    driver = asyncpg.DataError("invalid input for query argument $1: 'my phone is 13800138000' (expected int)")
    for error in (refused, driver):
        described = describe_error(error)
        assert "13800138000" not in described
        assert type(error).__name__ in described
    assert "22P02" in describe_error(refused)
    assert describe_error(TimeoutError("deadline")) == "TimeoutError('deadline')"
