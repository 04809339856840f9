"""Public JSON shapes of routing and SLA configuration and statistics.

Durations are whole seconds on input (``*_seconds``) and seconds on output, like the queue statistics.
Request models forbid unknown fields; lists and strings are bounded as the routing service bounds them.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator

from services.gateway.schemas import MAX_VERSION, Category, LanguageCode, Priority, SkillName, Tier

QUEUE_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,62}$"
CONFIG_ID_PATTERN = r"^[A-Za-z0-9-]+$"
MAX_CONFIG_ID = 64
MAX_MATCH_VALUES = 50
MAX_STEPS = 10
MAX_OFFER_TIMEOUT_S = 3600
MAX_TARGET_S = 365 * 24 * 3600

QueueName = Annotated[str, StringConstraints(pattern=QUEUE_NAME_PATTERN)]
ConfigName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ExpectedVersion = Annotated[
    int | None,
    Field(
        default=None,
        ge=1,
        le=MAX_VERSION,
        description="When given, the update is refused (409) at another version.",
    ),
]


class SlaMetric(StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class SlaClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FULFILLED = "fulfilled"
    BREACHED = "breached"
    CANCELLED = "cancelled"


# --- routing rules -------------------------------------------------------------------------------------------


class RuleMatchIn(BaseModel):
    """Which tickets a rule takes; an empty list matches anything."""

    model_config = ConfigDict(extra="forbid")

    categories: list[Category] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)
    languages: list[LanguageCode] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)
    priorities: list[Priority] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)
    customer_tiers: list[Tier] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)


class SkillRequirementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill: SkillName
    min_proficiency: StrictInt = Field(ge=1, le=5)


class RoutingStepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_seconds: StrictInt = Field(
        ge=0, le=MAX_TARGET_S, description="Ticket age at which this step applies; the first step's is 0."
    )
    requirements: list[SkillRequirementIn] = Field(default_factory=list, max_length=20)
    any_agent: StrictBool = Field(default=False, description="Drop the language requirement too: anyone available.")
    notify_supervisor: StrictBool = Field(
        default=False, description="Tell supervisors when a ticket reaches this step."
    )


class RoutingRuleIn(BaseModel):
    """A rule maps matching tickets to a queue and the skills they need, relaxing step by step with age."""

    model_config = ConfigDict(extra="forbid")

    name: ConfigName
    position: StrictInt = Field(ge=0, le=1_000_000, description="Lower first; the first matching rule wins.")
    match: RuleMatchIn = Field(default_factory=RuleMatchIn)
    queue: QueueName = Field(description="Created with default settings if it does not exist.")
    steps: list[RoutingStepIn] = Field(min_length=1, max_length=MAX_STEPS)


class RoutingRuleReplaceIn(RoutingRuleIn):
    expected_version: ExpectedVersion = None


class RuleMatchOut(BaseModel):
    categories: list[Category]
    languages: list[str]
    priorities: list[Priority]
    customer_tiers: list[str]


class SkillRequirementOut(BaseModel):
    skill: str
    min_proficiency: int


class RoutingStepOut(BaseModel):
    after_seconds: float
    requirements: list[SkillRequirementOut]
    any_agent: bool
    notify_supervisor: bool


class RoutingRuleOut(BaseModel):
    id: str
    name: str
    position: int
    match: RuleMatchOut
    queue: str
    steps: list[RoutingStepOut]
    version: int


class RoutingRulePage(BaseModel):
    rules: list[RoutingRuleOut]
    next_page_token: str | None


# --- queue settings ------------------------------------------------------------------------------------------


class QueueSettingsIn(BaseModel):
    """A queue's settings, replaced whole; a queue that does not exist yet is created."""

    model_config = ConfigDict(extra="forbid")

    direct_assignment: StrictBool = Field(
        default=False, description="Assign to the best agent at once, without an offer."
    )
    offer_timeout_seconds: StrictInt = Field(default=30, ge=1, le=MAX_OFFER_TIMEOUT_S)
    requeue_on_offline: StrictBool = Field(
        default=False, description="When an agent goes offline, return their open tickets too (offers always return)."
    )
    expected_version: ExpectedVersion = None


class QueueSettingsOut(BaseModel):
    queue: str
    direct_assignment: bool
    offer_timeout_seconds: float
    requeue_on_offline: bool
    version: int


# --- SLA policies --------------------------------------------------------------------------------------------


class SlaMatchIn(BaseModel):
    """Which tickets a policy takes; an empty list matches anything."""

    model_config = ConfigDict(extra="forbid")

    priorities: list[Priority] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)
    categories: list[Category] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)
    customer_tiers: list[Tier] = Field(default_factory=list, max_length=MAX_MATCH_VALUES)


class SlaTargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: SlaMetric
    target_seconds: StrictInt = Field(ge=1, le=MAX_TARGET_S)


class SlaEscalationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raise_priority: StrictBool = Field(default=False, description="On breach, raise the ticket's priority one step.")
    notify_supervisor: StrictBool = False


class SlaPolicyIn(BaseModel):
    """The first matching policy (by position) sets a ticket's targets."""

    model_config = ConfigDict(extra="forbid")

    name: ConfigName
    position: StrictInt | None = Field(
        default=None, ge=1, le=1_000_000, description="Lower first; left out: after the last (or unchanged)."
    )
    match: SlaMatchIn = Field(default_factory=SlaMatchIn)
    targets: list[SlaTargetIn] = Field(min_length=1, max_length=len(SlaMetric))
    calendar_id: Annotated[str, StringConstraints(pattern=CONFIG_ID_PATTERN, max_length=MAX_CONFIG_ID)] | None = Field(
        default=None, description="A business calendar; left out: calendar time, 24/7."
    )
    warning_percents: list[Annotated[StrictInt, Field(ge=1, le=99)]] = Field(default=[50, 80], max_length=10)
    escalation: SlaEscalationIn = Field(default_factory=SlaEscalationIn)

    @model_validator(mode="after")
    def _one_target_per_metric(self) -> Self:
        metrics = [t.metric for t in self.targets]
        if len(set(metrics)) != len(metrics):
            raise ValueError("targets: one target per metric")
        return self


class SlaPolicyReplaceIn(SlaPolicyIn):
    expected_version: ExpectedVersion = None


class SlaMatchOut(BaseModel):
    priorities: list[Priority]
    categories: list[Category]
    customer_tiers: list[str]


class SlaTargetOut(BaseModel):
    metric: SlaMetric
    target_seconds: float


class SlaEscalationOut(BaseModel):
    raise_priority: bool
    notify_supervisor: bool


class SlaPolicyOut(BaseModel):
    id: str
    name: str
    position: int
    match: SlaMatchOut
    targets: list[SlaTargetOut]
    calendar_id: str | None
    warning_percents: list[int]
    escalation: SlaEscalationOut
    version: int


class SlaPolicyPage(BaseModel):
    policies: list[SlaPolicyOut]
    next_page_token: str | None


# --- business calendars --------------------------------------------------------------------------------------

HourMinute = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-4]):[0-5]\d$")]


class OpeningHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weekday: StrictInt = Field(ge=1, le=7, description="ISO weekday: 1 = Monday … 7 = Sunday.")
    open: HourMinute = Field(description='Local time of the calendar, e.g. "09:00".')
    close: HourMinute = Field(description='Local time, after `open`; "24:00" is midnight after.')


class CalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ConfigName
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description='IANA zone, e.g. "Asia/Shanghai".'
    )
    hours: list[OpeningHoursIn] = Field(min_length=1, max_length=7 * 24)
    holidays: list[date] = Field(default_factory=list, max_length=1000, description="Closed days.")


class CalendarReplaceIn(CalendarIn):
    expected_version: ExpectedVersion = None


class OpeningHoursOut(BaseModel):
    weekday: int
    open: str
    close: str


class CalendarOut(BaseModel):
    id: str
    name: str
    time_zone: str
    hours: list[OpeningHoursOut]
    holidays: list[date]
    version: int


class CalendarPage(BaseModel):
    calendars: list[CalendarOut]
    next_page_token: str | None


# --- clocks and statistics -----------------------------------------------------------------------------------


class SlaClockOut(BaseModel):
    metric: SlaMetric
    policy_id: str
    state: SlaClockState
    target_seconds: float
    started_at: datetime | None
    deadline: datetime | None = Field(description="Moves later by every pause.")
    paused_seconds: float
    stopped_at: datetime | None
    breached: bool = Field(description="The target passed; a stopped breached clock was met late.")
    queue: str | None
    priority: Priority | None
    pause_reason: str | None


class TicketSlaOut(BaseModel):
    ticket_id: str
    clocks: list[SlaClockOut]


class SlaStatsOut(BaseModel):
    policy_id: str | None
    queue: str | None
    metric: SlaMetric
    completed: int = Field(description="Clocks that ended (fulfilled or breached) in the period.")
    met: int
    breached: int
    attainment_percent: float = Field(description="met / completed × 100; 100 when nothing completed.")
    at_risk: int = Field(description="Running clocks past 80 % of their target.")
    p50_seconds: float | None
    p90_seconds: float | None
    p99_seconds: float | None


class SlaStatsReport(BaseModel):
    stats: list[SlaStatsOut]
