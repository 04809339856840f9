"""Idempotent creation, the rules every service shares (Stripe's semantics, ADR 0018).

A creating request carries a ``request_id`` (the gateway's ``<caller>:<Idempotency-Key>``). The object it
creates stores that id and a **fingerprint** of the request, written in the creating transaction. A retry
with the same id and fingerprint is answered with the object; another fingerprint is
``idempotency_key_reused``; a retry while the first is still being served (its claim, see
``services.kit.idempotency_store``, is held) is ``idempotency_key_in_flight``. An empty stored fingerprint
predates fingerprints and matches any request.

The fingerprint is a SHA-256 over the canonical JSON of what the request asks for, as the service receives
it after parsing and validation: defaults the gateway fills in count as given, values the service derives
(ids, secrets, versions, a position "at the end") are left out, so they never make a retry look different.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Collection, Mapping
from datetime import date, datetime, time, timedelta
from enum import Enum

from services.kit.errors import FailedPrecondition

IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"


def fingerprint(request: object, *, exclude: Collection[str] = ()) -> str:
    """A digest of ``request`` (a dataclass, mapping or plain value) without the top-level fields in ``exclude``:
    equal exactly for requests that ask for the same thing."""
    plain = canonical(request)
    if isinstance(plain, dict):
        plain = {k: v for k, v in plain.items() if k not in exclude}
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(value: object) -> object:
    """``value`` as JSON-ready data: dataclasses as objects, enums as their values, tuples as lists, sets sorted,
    times in ISO 8601, durations in seconds, UUIDs as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return canonical(value.value)
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(canonical(k)): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} has no canonical form")


def same_request(stored: str, requested: str) -> bool:
    """Whether a stored fingerprint admits a retry with ``requested`` (an empty one predates fingerprints)."""
    return stored in ("", requested)


def check_replay(stored: str, requested: str, what: str) -> None:
    """Refuse a retry that asks for something other than what ``request_id`` created (``what``: "a rule")."""
    if not same_request(stored, requested):
        raise key_reused(what)


def key_reused(what: str) -> FailedPrecondition:
    return FailedPrecondition(IDEMPOTENCY_KEY_REUSED, f"this request_id created {what} with other content")


def key_in_flight() -> FailedPrecondition:
    return FailedPrecondition(IDEMPOTENCY_KEY_IN_FLIGHT, "a request with this request_id is still being served; retry")
