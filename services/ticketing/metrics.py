"""Ticketing's metrics: the redactions performed on inbound text, by kind of secret (never the text)."""

from __future__ import annotations

from prometheus_client import Counter

from services.ticketing.redaction import Redaction
from services.ticketing.redaction import redact as _redact

REDACTIONS = Counter(
    "supportdesk_redactions_total",
    "Secrets removed from inbound text before it was stored, logged or published, by kind.",
    ["kind"],
)


def redact(text: str) -> Redaction:
    """``redaction.redact``, counted."""
    result = _redact(text)
    for kind in result.findings:
        REDACTIONS.labels(kind.value).inc()
    return result
