"""Tracing configuration: exporters chosen by OTEL_TRACES_EXPORTER, database spans only inside a trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import pytest
from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision

from services.kit.telemetry import (
    DatabaseSpansNeedAParent,
    TracingSettings,
    UnknownExporter,
    span_exporters,
    tracer_provider,
)

pytestmark = pytest.mark.unit


def test_nothing_is_exported_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert span_exporters(TracingSettings(), []) == []


def test_otlp_follows_the_standard_protocol_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    [grpc_exporter] = span_exporters(TracingSettings(), [])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    [http_exporter] = span_exporters(TracingSettings(), [])
    assert isinstance(grpc_exporter, GrpcSpanExporter)
    assert isinstance(http_exporter, HttpSpanExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
    with pytest.raises(UnknownExporter, match="thrift"):
        span_exporters(TracingSettings(), [])


def test_an_unknown_exporter_is_refused_by_name() -> None:
    with pytest.raises(UnknownExporter, match="zipkin"):
        span_exporters(TracingSettings(OTEL_TRACES_EXPORTER="console,zipkin"), [])


def test_console_spans_go_to_the_traces_file(tmp_path: Path) -> None:
    opened: list[TextIO] = []
    settings = TracingSettings(OTEL_TRACES_EXPORTER="console", SUPPORTDESK_TRACES_FILE=tmp_path / "t" / "spans.json")
    [exporter] = span_exporters(settings, opened)
    assert isinstance(exporter, ConsoleSpanExporter)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer(__name__).start_as_current_span("written down"):
        pass
    for out in opened:
        out.close()
    [line] = (tmp_path / "t" / "spans.json").read_text().splitlines()
    assert json.loads(line)["name"] == "written down"


def test_database_spans_are_dropped_outside_a_trace_and_kept_inside_one() -> None:
    sampler = DatabaseSpansNeedAParent(ALWAYS_ON)
    db = {"db.system": "postgresql"}
    assert sampler.should_sample(None, 1, "SELECT", attributes=db).decision is Decision.DROP
    assert sampler.should_sample(None, 1, "publish").decision is Decision.RECORD_AND_SAMPLE
    provider = TracerProvider()
    with provider.get_tracer(__name__).start_as_current_span("request") as parent:
        inside = trace.set_span_in_context(parent)
        assert sampler.should_sample(inside, 1, "SELECT", attributes=db).decision is Decision.RECORD_AND_SAMPLE


def test_without_an_exporter_spans_are_not_recorded_but_their_trace_flows() -> None:
    tracer = tracer_provider("test", "i-1", []).get_tracer(__name__)
    with tracer.start_as_current_span("request") as request:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        with tracer.start_as_current_span("call") as call:
            pass
    context = request.get_span_context()
    assert not request.is_recording()
    assert context.is_valid
    assert call.get_span_context().trace_id == context.trace_id
    assert carrier["traceparent"].split("-")[1] == format(context.trace_id, "032x")


def test_with_an_exporter_spans_are_recorded(tmp_path: Path) -> None:
    opened: list[TextIO] = []
    settings = TracingSettings(OTEL_TRACES_EXPORTER="console", SUPPORTDESK_TRACES_FILE=tmp_path / "spans.jsonl")
    provider = tracer_provider("test", "i-1", span_exporters(settings, opened))
    try:
        with provider.get_tracer(__name__).start_as_current_span("request") as request:
            assert request.is_recording()
    finally:
        provider.shutdown()
        for out in opened:
            out.close()
    assert [json.loads(line)["name"] for line in (tmp_path / "spans.jsonl").read_text().splitlines()] == ["request"]
