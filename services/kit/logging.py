"""JSON log lines carrying the current trace and span ids."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import asyncpg
from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter


class _TraceContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        # uvicorn adds an ANSI-coloured copy of its message; JSON readers want the plain one only.
        record.__dict__.pop("color_message", None)
        # On every line, empty outside a trace, so a reader can always select on them.
        context = trace.get_current_span().get_span_context()
        record.trace_id = format(context.trace_id, "032x") if context.is_valid else ""
        record.span_id = format(context.span_id, "016x") if context.is_valid else ""
        return True


def describe_error(exc: BaseException) -> str:
    """An error as the log may show it. Database and driver messages can quote the values they refused
    (``invalid input syntax for type uuid: "..."``, ``invalid input for query argument $1: '...'``), and those
    values may be a customer's text: such errors are named by class and SQLSTATE only."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, asyncpg.PostgresError) or sqlstate:
        return f"{type(exc).__name__} (SQLSTATE {sqlstate})"
    if isinstance(exc, asyncpg.InterfaceError):
        return type(exc).__name__
    return repr(exc)[:500]


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route every logger to one JSON line per record on ``stream`` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_TraceContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "{levelname}{name}{message}{trace_id}{span_id}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="ts",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Per-request access lines are metrics' job; keep the log for what needs reading.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
