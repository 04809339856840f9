"""Deliveries, their attempts and webhook endpoints as plain values."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    # Delivered by the outbox relay's publish of the push, not by the delivery workers.
    IN_APP = "in_app"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: uuid.UUID
    subscriber: str
    url: str
    secret: str
    event_types: tuple[str, ...]
    enabled: bool = True
    description: str = ""
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    channel: DeliveryChannel
    target: str
    event_id: str
    event_type: str
    payload: bytes
    next_attempt_at: datetime
    endpoint_id: uuid.UUID | None = None
    notification_id: uuid.UUID | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    # When the record starts, if not when it is inserted: an in-app one starts at its event's time.
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    channel: DeliveryChannel
    target: str
    endpoint_id: uuid.UUID | None
    event_id: str
    event_type: str
    notification_id: uuid.UUID | None
    payload: bytes
    status: DeliveryStatus
    attempts: int
    attempts_before_replay: int
    next_attempt_at: datetime
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: tuple[Attempt, ...] = ()

    @property
    def attempts_in_budget(self) -> int:
        return self.attempts - self.attempts_before_replay


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to."""

    ok: bool
    started_at: datetime
    duration_ms: float
    status_code: int = 0
    error: str = ""
