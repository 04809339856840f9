"""Webhook signing, event filters and the retry schedule. Pure, no I/O.

A receiver verifies a delivery by recomputing ``HMAC-SHA256(secret, f"{timestamp}.{body}")`` over the raw
body and the ``Supportdesk-Timestamp`` header, comparing it in constant time with ``Supportdesk-Signature``
(``v1=<hex>``), and refusing timestamps older than its tolerance (five minutes is usual) to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from dataclasses import dataclass

TIMESTAMP_HEADER = "Supportdesk-Timestamp"
SIGNATURE_HEADER = "Supportdesk-Signature"
EVENT_ID_HEADER = "Supportdesk-Event-Id"
DELIVERY_ID_HEADER = "Supportdesk-Delivery-Id"
SIGNATURE_VERSION = "v1"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float, tolerance_s: float = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


def signed_headers(secret: str, timestamp: int, body: bytes, *, event_id: str, delivery_id: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_ID_HEADER: event_id,
        DELIVERY_ID_HEADER: delivery_id,
    }


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcards: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return i == len(want) - 1 and len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)


def valid_pattern(pattern: str) -> bool:
    tokens = pattern.split(".")
    return all(tokens) and ">" not in tokens[:-1] and all(t in ("*", ">") or not set(t) & {"*", ">"} for t in tokens)


def wanted(event_types: list[str] | tuple[str, ...], subject: str) -> bool:
    return any(subject_matches(p, subject) for p in event_types)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential back-off with jitter: attempt n waits base·2^(n-1), capped, scaled by [1 - jitter, 1]."""

    max_attempts: int = 8
    base_s: float = 5.0
    cap_s: float = 3600.0
    jitter: float = 0.2

    def delay_after(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        low, high = self.bounds_after(attempt)
        draw: float = (rng or random).random()
        return high - (high - low) * draw

    def bounds_after(self, attempt: int) -> tuple[float, float]:
        nominal = float(min(self.base_s * 2.0 ** (attempt - 1), self.cap_s))
        return nominal * (1 - self.jitter), nominal

    def exhausted(self, attempts_in_budget: int) -> bool:
        return attempts_in_budget >= self.max_attempts
