"""Tracing set-up. Trace context always flows (so logs, the timeline and events carry real trace ids); where
spans go is chosen by the standard ``OTEL_TRACES_EXPORTER`` variable, a comma-separated list of:

- ``none`` (the default in local mode): nothing is exported, so no span is recorded either: every span is
  sampled out, which still gives it (and what it propagates) a valid trace and span id, at a fraction of
  a recorded span's cost (ADR 0017);
- ``console``: one JSON document per span on stderr, or one line per span appended to
  ``SUPPORTDESK_TRACES_FILE`` when set;
- ``otlp``: to an OpenTelemetry collector, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables
  (``OTEL_EXPORTER_OTLP_PROTOCOL`` ``grpc``, the default, or ``http/protobuf``).

Sampling follows ``OTEL_TRACES_SAMPLER`` (parent-based, always on, by default). Postgres queries are traced
(asyncpg instrumentation, statements without their parameters) only inside a trace: the background loops'
polling queries would otherwise each start a trace of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_DB_SYSTEM = "db.system"


class TracingSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    exporters: str = Field(default="none", validation_alias="OTEL_TRACES_EXPORTER")
    traces_file: Path | None = Field(default=None, validation_alias="SUPPORTDESK_TRACES_FILE")
    # The standard opt-out list of instrumentations; "asyncpg" turns database spans off.
    disabled_instrumentations: str = Field(default="", validation_alias="OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    otlp_protocol: str = Field(
        default="grpc",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
    )

    @property
    def exporter_names(self) -> set[str]:
        return {name.strip().lower() for name in self.exporters.split(",") if name.strip()}


class UnknownExporter(ValueError):
    """``OTEL_TRACES_EXPORTER`` names an exporter this build does not have."""


class DatabaseSpansNeedAParent(Sampler):
    """Drops a database span that would start a trace; every other decision is the configured sampler's."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if attributes and _DB_SYSTEM in attributes and not trace.get_current_span(parent_context).is_recording():
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"DatabaseSpansNeedAParent{{{self._delegate.get_description()}}}"


def span_exporters(settings: TracingSettings, opened: list[TextIO]) -> list[SpanExporter]:
    names = settings.exporter_names - {"none"}
    unknown = names - {"console", "otlp"}
    if unknown:
        raise UnknownExporter(f"OTEL_TRACES_EXPORTER: unknown exporter(s) {sorted(unknown)}; use none, console, otlp")
    exporters: list[SpanExporter] = []
    if "console" in names:
        if settings.traces_file is None:
            exporters.append(ConsoleSpanExporter())
        else:
            settings.traces_file.parent.mkdir(parents=True, exist_ok=True)
            out = settings.traces_file.open("a", encoding="utf-8")
            opened.append(out)
            # One span per line, so the file reads as JSON Lines.
            exporters.append(ConsoleSpanExporter(out=out, formatter=_one_line))
    if "otlp" in names:
        exporters.append(_otlp_exporter(settings.otlp_protocol))
    return exporters


def _one_line(span: ReadableSpan) -> str:
    line: str = span.to_json(indent=None)
    return line + "\n"


def _otlp_exporter(protocol: str) -> SpanExporter:
    """Endpoint, headers, TLS and timeouts come from the standard variables, read by the exporter itself."""
    if protocol == "grpc":
        return GrpcSpanExporter()
    if protocol == "http/protobuf":
        return HttpSpanExporter()
    raise UnknownExporter(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not grpc or http/protobuf")


class Tracing:
    """The process's tracer provider and what it opened; ``shutdown`` flushes and closes both."""

    def __init__(self, provider: TracerProvider, files: list[TextIO]) -> None:
        self.provider = provider
        self._files = files

    def shutdown(self) -> None:
        self.provider.shutdown()
        instrumentor = AsyncPGInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:  # it is not without an exporter; saying so is a warning
            instrumentor.uninstrument()
        for out in self._files:
            out.close()


def setup_tracing(service: str, instance: str, settings: TracingSettings | None = None) -> Tracing:
    settings = settings or TracingSettings()
    opened: list[TextIO] = []
    exporters = span_exporters(settings, opened)
    provider = tracer_provider(service, instance, exporters)
    trace.set_tracer_provider(provider)
    disabled = {name.strip() for name in settings.disabled_instrumentations.split(",")}
    # A span per query is the costliest part of tracing (dozens per routed ticket); with nowhere to export
    # them, only the spans that carry trace context across hops are worth making.
    if exporters and "asyncpg" not in disabled:
        instrument_database(provider)
    return Tracing(provider, opened)


def tracer_provider(service: str, instance: str, exporters: Sequence[SpanExporter]) -> TracerProvider:
    """A provider sending spans to ``exporters``; with none, one that records no span at all."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"supportdesk-{service}", SERVICE_INSTANCE_ID: instance}),
        # _get_from_env_or_default is the SDK's own reading of OTEL_TRACES_SAMPLER(_ARG). With nowhere to
        # export, recording a span would only cost CPU: sampled out, it still carries and propagates its ids.
        sampler=DatabaseSpansNeedAParent(_get_from_env_or_default()) if exporters else ALWAYS_OFF,
    )
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def instrument_database(provider: trace.TracerProvider | None = None) -> None:
    """Trace asyncpg queries (idempotent). Parameters are never captured: they hold customers' text."""
    instrumentor = AsyncPGInstrumentor(capture_parameters=False)
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def current_trace_id() -> str:
    """The W3C trace id of the active span, or empty outside any trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
