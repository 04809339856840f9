"""JSON shapes of notification preferences, webhook endpoints and deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from services.gateway.schemas import MAX_VERSION


class Locale(StrEnum):
    EN = "en"
    ZH_CN = "zh-CN"


class PersonalChannel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"


class DeliveryChannel(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    IN_APP = "in_app"


ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
TimeZone = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://[^\s/?#]+[^\s]*$")]
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_*>-]+(\.[A-Za-z0-9_*>-]+)*$")
]
Subscriber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=1000)]
NOTIFICATION_ID_PATTERN = r"^[A-Za-z0-9-]+$"


class PreferencesIn(BaseModel):
    """Replaces the caller's preferences. Quiet hours hold email back until they end, except security alerts."""

    model_config = ConfigDict(extra="forbid")

    locale: Locale = Locale.EN
    email: Email | None = None
    channels: list[PersonalChannel] = Field(default_factory=lambda: [PersonalChannel.IN_APP, PersonalChannel.EMAIL])
    quiet_start: ClockTime | None = None
    quiet_end: ClockTime | None = None
    time_zone: TimeZone = "UTC"


class PreferencesOut(BaseModel):
    locale: str
    email: str | None
    channels: list[PersonalChannel]
    quiet_start: str | None
    quiet_end: str | None
    time_zone: str
    updated_at: datetime | None


class MarkReadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Empty with "all": true marks the whole inbox.
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NOTIFICATION_ID_PATTERN)]] = Field(
        default_factory=list, max_length=100
    )
    all: StrictBool = False


class MarkReadOut(BaseModel):
    marked: int


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriber: Subscriber
    url: Url
    # NATS-style subjects: "support.ticketing.v1.ticket.*", "wallet.>", ">".
    event_types: list[EventType] = Field(min_length=1, max_length=50)
    enabled: StrictBool = True
    description: Description = ""


class WebhookUpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    event_types: list[EventType] = Field(min_length=1, max_length=50)
    enabled: StrictBool = True
    description: Description = ""
    expected_version: Annotated[StrictInt, Field(ge=1, le=MAX_VERSION)] | None = None


class WebhookOut(BaseModel):
    id: str
    subscriber: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str
    # The signing key: shown only in the answer that created the endpoint.
    secret: str | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None


class WebhookPage(BaseModel):
    webhooks: list[WebhookOut]
    next_page_token: str | None


class AttemptOut(BaseModel):
    number: int
    started_at: datetime | None
    duration_ms: float
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    channel: DeliveryChannel | None
    target: str
    event_id: str
    event_type: str
    status: DeliveryStatus | None
    attempt_count: int
    created_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    latency_ms: float | None
    last_error: str | None
    attempts: list[AttemptOut]


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryOut]
    next_page_token: str | None
