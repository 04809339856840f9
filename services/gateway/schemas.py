"""The public JSON shapes: snake_case fields, lowercase enum names, RFC 3339 UTC timestamps.

Request models forbid unknown fields and bound every string, so a request is fully checked before
any peer sees it. Response models describe what the gateway returns; empty optional values are null.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)


class Channel(StrEnum):
    APP = "app"
    WEB = "web"
    EMAIL = "email"
    SOCIAL = "social"


class Category(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    ACCOUNT_LOCKED = "account_locked"
    ACCOUNT_FROZEN = "account_frozen"
    SUSPICIOUS_ACTIVITY = "suspicious_activity"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - a category, not a secret
    BANK_CARD = "bank_card"
    TRANSACTION_QUERY = "transaction_query"
    BETA_ACCESS = "beta_access"
    COMPLAINT = "complaint"
    OTHER = "other"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"


class QueueEntryState(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    PARKED = "parked"


class Presence(StrEnum):
    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


class OfferState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class NotificationChannel(StrEnum):
    IN_APP = "in_app"
    WEBHOOK = "webhook"
    EMAIL = "email"


# Versions are int64 on the wire: a larger number is a validation error, not an overflow deep inside.
MAX_VERSION = 2**63 - 1


_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _rfc3339_only(value: object) -> object:
    # pydantic would also read "1700000000" as a Unix time; the API promises RFC 3339 date-times only.
    if isinstance(value, str | int | float) and not (isinstance(value, str) and _RFC3339_START.match(value)):
        raise ValueError("expected an RFC 3339 date-time with an offset, such as 2026-11-25T08:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]


def _text(max_length: int) -> StringConstraints:
    # Surrounding whitespace is dropped so that "   " counts as empty.
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


MAX_SUBJECT = 200
MAX_DESCRIPTION = 10_000

Subject = Annotated[str, _text(MAX_SUBJECT)]
# May be empty: on a phone, the category and a subject often say it all.
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION)]
TransactionRef = Annotated[str, _text(128)]
ErrorCode = Annotated[str, _text(64)]
AppVersion = Annotated[str, _text(32)]
Device = Annotated[str, _text(128)]
# Same bound as a token subject, since a customer's id is their subject.
CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@|+-]+$")]
# BCP 47 language tag, e.g. "zh", "en", "zh-CN".
Language = Annotated[str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
Tier = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
# A decimal string, never a float, so no amount is ever rounded.
Amount = Annotated[str, StringConstraints(max_length=40, pattern=r"^\d{1,20}(\.\d{1,18})?$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

TICKET_ID_PATTERN = r"^[A-Za-z0-9._-]+$"
MAX_TICKET_ID = 128
MAX_PAGE_SIZE = 100
MAX_PAGE_TOKEN = 512


class WalletContextIn(BaseModel):
    """Facts that let an agent find the problem without asking again."""

    model_config = ConfigDict(extra="forbid")

    transaction_ref: TransactionRef | None = None
    amount: Amount | None = None
    currency: Currency | None = Field(default=None, description="ISO 4217 code, e.g. CNY.")
    occurred_at: Instant | None = None
    error_code: ErrorCode | None = None
    app_version: AppVersion | None = None
    device: Device | None = None


class CreateTicketIn(BaseModel):
    """Opening a ticket.

    ``customer_id`` is the caller for customers (who may omit it) and required for staff.
    ``priority`` and ``customer_tier`` may only be given by staff: left out, ticketing derives the
    priority from the category. ``language`` defaults to ``en``.
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId | None = None
    channel: Channel
    category: Category
    subject: Subject
    description: Description = ""
    priority: Priority | None = None
    language: Language = "en"
    customer_tier: Tier | None = None
    wallet_context: WalletContextIn | None = None


class WalletContextOut(BaseModel):
    transaction_ref: str | None
    amount: str | None
    currency: str | None
    occurred_at: datetime | None
    error_code: str | None
    app_version: str | None
    device: str | None


class TicketOut(BaseModel):
    id: str
    customer_id: str
    channel: Channel
    category: Category
    subject: str
    description: str
    priority: Priority | None
    status: TicketStatus
    language: str
    customer_tier: str | None
    wallet_context: WalletContextOut | None
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    assignee_id: str | None
    flags: list[str] = Field(description="e.g. `secret_exposed` when the customer pasted a secret (now redacted).")
    resolution_note: str | None
    resolved_at: datetime | None
    csat: CsatOut | None


class TicketPage(BaseModel):
    tickets: list[TicketOut]
    next_page_token: str | None


class UpdateTicketIn(BaseModel):
    """A status and/or priority change, applied together or not at all."""

    model_config = ConfigDict(extra="forbid")

    status: TicketStatus | None = None
    priority: Priority | None = None
    resolution_note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5_000)] | None = Field(
        default=None, description="How the problem was verified and solved; required to close a complaint."
    )
    expected_version: StrictInt | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="Apply only if the ticket is still at this version (else 409)."
    )


class ActorType(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    SYSTEM = "system"


class MessageVisibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


class ActorOut(BaseModel):
    type: ActorType
    id: str


class AttachmentIn(BaseModel):
    """A file already uploaded to object storage; only its metadata travels here."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, _text(255)]
    content_type: Annotated[str, StringConstraints(min_length=3, max_length=127, pattern=r"^[\w.+-]+/[\w.+-]+$")]
    size_bytes: StrictInt = Field(ge=0, le=100 * 1024 * 1024)
    url: Annotated[str, StringConstraints(max_length=2_048, pattern=r"^https?://\S+$")]


class AttachmentOut(BaseModel):
    name: str
    content_type: str
    size_bytes: int
    url: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Annotated[str, StringConstraints(strip_whitespace=True, max_length=10_000)] = ""
    visibility: MessageVisibility = Field(
        default=MessageVisibility.PUBLIC, description="`internal` notes are for staff only and never reach customers."
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=10)


class MessageOut(BaseModel):
    id: str
    ticket_id: str
    author: ActorOut
    visibility: MessageVisibility
    body: str = Field(description="As stored: recovery phrases, keys and card numbers are already redacted.")
    attachments: list[AttachmentOut]
    redactions: list[str] = Field(description="Kinds of secrets removed from the body, e.g. `recovery_phrase`.")
    created_at: datetime | None


class MessagePage(BaseModel):
    messages: list[MessageOut]
    next_page_token: str | None


class TimelineEntryOut(BaseModel):
    id: int
    version: int
    actor: ActorOut
    action: str
    details: dict[str, str]
    trace_id: str | None
    created_at: datetime | None


class TimelinePage(BaseModel):
    entries: list[TimelineEntryOut]
    next_page_token: str | None


class CsatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: StrictInt = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied).")
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2_000)] = ""


class CsatOut(BaseModel):
    score: int
    comment: str | None
    created_at: datetime | None


class PriorityRuleOut(BaseModel):
    category: Category
    priority: Priority


class PriorityRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority


class QueueEntryOut(BaseModel):
    ticket_id: str
    queue: str
    state: QueueEntryState
    priority: Priority | None
    ticket_version: int
    agent_id: str | None
    step: int = Field(description="Index of the routing step in force; later steps ask for less.")
    enqueued_at: datetime | None
    ticket_created_at: datetime | None


class QueueStatsOut(BaseModel):
    queue: str
    waiting: int
    longest_wait_seconds: float
    agents_available: int
    agents_busy: int
    offers_outstanding: int
    estimated_wait_seconds: float = Field(description="What a customer joining the queue now can be told.")


AgentId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@|+-]+$")]
SkillName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
LanguageCode = Annotated[
    str, StringConstraints(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
]


class SkillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: SkillName
    proficiency: StrictInt = Field(ge=1, le=5, description="1 (basic) to 5 (expert).")


class AgentProfileIn(BaseModel):
    """What an admin or supervisor sets about an agent; replacing it is idempotent."""

    model_config = ConfigDict(extra="forbid")

    display_name: Annotated[str, _text(100)]
    skills: list[SkillIn] = Field(default_factory=list, max_length=50)
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    capacity: StrictInt = Field(ge=1, le=100, description="Tickets the agent can hold at once.")


class CreateAgentIn(AgentProfileIn):
    agent_id: AgentId = Field(description="The agent's id in the identity provider: their token's subject.")


class UpdateAgentIn(AgentProfileIn):
    expected_version: StrictInt | None = Field(default=None, ge=1, le=MAX_VERSION)


class PresenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presence: Presence


class SkillOut(BaseModel):
    name: str
    proficiency: int


class AgentOut(BaseModel):
    id: str
    display_name: str
    skills: list[SkillOut]
    languages: list[str]
    capacity: int
    presence: Presence
    active_tickets: int
    last_assignment_at: datetime | None
    presence_changed_at: datetime | None
    version: int


class AgentPage(BaseModel):
    agents: list[AgentOut]
    next_page_token: str | None


class OfferOut(BaseModel):
    id: str
    ticket_id: str
    agent_id: str
    queue: str
    state: OfferState
    created_at: datetime | None
    expires_at: datetime | None
    responded_at: datetime | None


class OfferPage(BaseModel):
    offers: list[OfferOut]
    next_page_token: str | None


class DeclineOfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class TransferIn(BaseModel):
    """Exactly one of ``to_agent_id`` (assigned at once) and ``to_queue`` (routed again)."""

    model_config = ConfigDict(extra="forbid")

    to_agent_id: AgentId | None = None
    to_queue: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] | None = None
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class QueueStatsPage(BaseModel):
    queues: list[QueueStatsOut]
    next_page_token: str | None


class NotificationOut(BaseModel):
    id: str
    channel: NotificationChannel | None
    kind: str
    title: str
    body: str
    ticket_id: str | None
    created_at: datetime | None
    read: bool
    read_at: datetime | None
    # Security alerts: mark one "this wasn't me" with POST /v1/notifications/{id}/not-me.
    security: bool
    # Kind-specific facts, e.g. offer_id and expire_time for "offer.received".
    data: dict[str, str]


class NotificationPage(BaseModel):
    notifications: list[NotificationOut]
    next_page_token: str | None
    unread_count: int


class HealthOut(BaseModel):
    status: str


class ReadinessOut(BaseModel):
    status: str
    dependencies: dict[str, str]


# Help centre ------------------------------------------------------------------------------------------------


class HelpLocale(StrEnum):
    ZH = "zh"
    EN = "en"


MAX_HELP_QUERY = 500
MAX_HELP_SUGGESTIONS = 10
HELP_ARTICLE_ID_PATTERN = r"^[A-Za-z0-9-]+$"
MAX_HELP_ARTICLE_ID = 64
HelpSlug = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
HelpTitle = Annotated[str, _text(200)]
HelpBody = Annotated[str, _text(20_000)]
HelpTag = Annotated[str, _text(40)]
HelpTags = Annotated[list[HelpTag], Field(max_length=20)]


class HelpArticleIn(BaseModel):
    """A new article. Translations share a ``slug``; ``published`` defaults to false, so a new article is a draft."""

    model_config = ConfigDict(extra="forbid")

    locale: HelpLocale
    slug: HelpSlug
    title: HelpTitle
    body: HelpBody = Field(description="Plain text or light Markdown.")
    category: Category
    tags: HelpTags = Field(default_factory=list, description="Extra search words: synonyms, other spellings.")
    published: StrictBool = False


class HelpArticleReplaceIn(BaseModel):
    """Every editable field, replaced as a whole (locale and slug never change).

    With ``expected_version`` the update applies only if nobody changed the article since that version
    (409 ``article_version_mismatch`` otherwise).
    """

    model_config = ConfigDict(extra="forbid")

    title: HelpTitle
    body: HelpBody
    category: Category
    tags: HelpTags
    published: StrictBool
    expected_version: StrictInt | None = Field(default=None, ge=1, le=MAX_VERSION)


class HelpSuggestionsIn(BaseModel):
    """What the customer has typed into a new ticket so far; at least a subject or a description."""

    model_config = ConfigDict(extra="forbid")

    subject: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_SUBJECT)] = ""
    description: Description = ""
    locale: Language | None = Field(default=None, description="zh or en (zh-CN etc. accepted); default: the text's.")
    category: Category | None = None
    max_results: StrictInt | None = Field(default=None, ge=1, le=MAX_HELP_SUGGESTIONS, description="Default 3.")


class HelpArticleOut(BaseModel):
    id: str
    locale: HelpLocale
    slug: str
    title: str
    body: str
    category: Category
    tags: list[str]
    published: bool
    version: int
    created_at: datetime | None
    updated_at: datetime | None


class HelpArticleResultOut(BaseModel):
    article: HelpArticleOut
    score: float | None = Field(description="Relevance; comparable within one response. Null when listing.")
    snippet: str | None = Field(
        description="Body text around the match, matched words wrapped in **. Null when listing."
    )


class HelpArticlePage(BaseModel):
    results: list[HelpArticleResultOut]
    next_page_token: str | None
    fallback_locale: HelpLocale | None = Field(
        default=None, description="Set when the requested locale matched nothing and these results are in this one."
    )


class HelpSuggestionsOut(BaseModel):
    results: list[HelpArticleResultOut]


class SearchGapOut(BaseModel):
    query: str
    locale: HelpLocale
    search_count: int
    first_searched_at: datetime | None
    last_searched_at: datetime | None


class SearchGapPage(BaseModel):
    gaps: list[SearchGapOut]
    next_page_token: str | None
