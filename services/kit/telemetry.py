"""Tracing set-up. Spans are always recorded (so logs and events carry real trace ids); where they go is
chosen by the standard ``OTEL_TRACES_EXPORTER`` variable: ``none`` (default in local mode) or ``console``."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def setup_tracing(service: str, instance: str) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"supportdesk-{service}", SERVICE_INSTANCE_ID: instance})
    )
    exporters = {e.strip() for e in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")}
    if "console" in exporters:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def current_trace_id() -> str:
    """The W3C trace id of the active span, or empty outside any trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""
