"""SLA policies and clocks: pure rules, no I/O.

A ticket has up to three kinds of clock (metrics). Each start of a metric is a new clock with the next
``cycle`` number: first response and resolution start at creation (cycle 1); next response starts anew at
every customer message that finds no response clock running; a reopened ticket gets a new resolution clock.

Clock rules:
- first response: fulfilled by the first public message of an agent, supervisor or admin;
- next response: starts at the oldest unanswered public customer message (one that arrives while no response
  clock runs) and is fulfilled by the next public staff message;
- resolution: fulfilled when the ticket is resolved; a reopen starts a new resolution clock with the full
  target (the first one stays fulfilled, so attainment already reported never changes);
- resolving a ticket cancels its running response clocks (no reply is owed any more); cancelled clocks are
  not counted in attainment unless they had already breached;
- every running clock pauses while the ticket is ``pending`` (waiting on the customer) and resumes when it
  leaves ``pending``; a clock that starts while the ticket is pending starts paused. Paused time is credited
  back in the clock's time base: the deadline is where the target is reached counting only running time;
- a clock breaches once, when running time reaches the target; it keeps running until it is fulfilled (then
  ``breached`` tells that it was met late);
- warnings go out once each, in order, before the breach: a warning or breach timer first announces any earlier
  warning whose timer has not fired yet (retried late); a clock that stops or pauses announces none;
- a priority change re-applies the policies: clocks that run and have not breached take the targets of the
  policy that now matches; warnings already sent are not sent again.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from services.kit.errors import InvalidArgument
from services.routing.sla.calendar import CALENDAR_TIME, TimeBase


class Metric(StrEnum):
    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"
    RESOLUTION = "resolution"


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class Author(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"


PRIORITIES = ("low", "normal", "high", "urgent")
PENDING = "pending"
RESOLVED = "resolved"
CLOSED = "closed"
# "At risk" in the statistics: a running clock past this share of its target.
AT_RISK_PERCENT = 80
DEFAULT_WARNING_PERCENTS = (50, 80)
MAX_TARGET = timedelta(days=365)
MAX_NAME = 200
MAX_MATCH_VALUES = 50
_WORD = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


# --- policies ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Escalation:
    raise_priority: bool = False
    notify_supervisor: bool = False


@dataclass(frozen=True, slots=True)
class PolicyMatch:
    """Empty lists match anything."""

    priorities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    customer_tiers: tuple[str, ...] = ()

    def matches(self, priority: str, category: str, customer_tier: str) -> bool:
        return (
            (not self.priorities or priority in self.priorities)
            and (not self.categories or category in self.categories)
            and (not self.customer_tiers or customer_tier in self.customer_tiers)
        )


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    # Lower first; on create, 0 or less places the policy after the last one.
    position: int
    match: PolicyMatch
    targets: Mapping[Metric, timedelta]
    calendar_id: uuid.UUID | None = None
    warning_percents: tuple[int, ...] = DEFAULT_WARNING_PERCENTS
    escalation: Escalation = field(default_factory=Escalation)


@dataclass(frozen=True, slots=True)
class Policy:
    id: uuid.UUID
    version: int
    spec: PolicySpec


def first_match(policies: Sequence[Policy], priority: str, category: str, customer_tier: str) -> Policy | None:
    """The first policy (``policies`` is in position order) whose match accepts the ticket."""
    return next((p for p in policies if p.spec.match.matches(priority, category, customer_tier)), None)


def check_policy(spec: PolicySpec) -> PolicySpec:
    """The spec, normalised (sorted, de-duplicated), or InvalidArgument naming the offending field."""
    if not spec.name.strip() or len(spec.name) > MAX_NAME:
        raise InvalidArgument("invalid_argument", f"name: 1 to {MAX_NAME} characters", field="name")
    match = spec.match
    for name, values in (
        ("match.priorities", match.priorities),
        ("match.categories", match.categories),
        ("match.customer_tiers", match.customer_tiers),
    ):
        if len(values) > MAX_MATCH_VALUES:
            raise InvalidArgument("invalid_argument", f"{name}: at most {MAX_MATCH_VALUES} values", field=name)
        if any(not _WORD.match(v) for v in values):
            raise InvalidArgument(
                "invalid_argument", f"{name}: lowercase names of letters, digits, '_' or '-'", field=name
            )
    if any(p not in PRIORITIES for p in match.priorities):
        raise InvalidArgument("invalid_argument", "match.priorities: unknown priority", field="match.priorities")
    if not spec.targets:
        raise InvalidArgument("invalid_argument", "targets: at least one", field="targets")
    for metric, target in spec.targets.items():
        if not timedelta(0) < target <= MAX_TARGET:
            raise InvalidArgument(
                "invalid_argument", f"targets.{metric.value}: more than 0 and at most 365 days", field="targets"
            )
    if any(not 1 <= p <= 99 for p in spec.warning_percents):
        raise InvalidArgument("invalid_argument", "warning_percents: 1 to 99", field="warning_percents")
    return dataclasses.replace(
        spec,
        name=spec.name.strip(),
        match=PolicyMatch(
            priorities=tuple(sorted(set(match.priorities), key=PRIORITIES.index)),
            categories=tuple(sorted(set(match.categories))),
            customer_tiers=tuple(sorted(set(match.customer_tiers))),
        ),
        targets={m: spec.targets[m] for m in Metric if m in spec.targets},
        warning_percents=tuple(sorted(set(spec.warning_percents))),
    )


# --- clocks --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Clock:
    ticket_id: uuid.UUID
    metric: Metric
    cycle: int
    policy_id: uuid.UUID
    target: timedelta
    calendar_id: uuid.UUID | None
    warning_percents: tuple[int, ...]
    escalation: Escalation
    state: ClockState
    started_at: datetime
    # Where running time reaches the target, paused time credited; while paused, the one before the pause.
    deadline: datetime
    # Where running time reaches AT_RISK_PERCENT of the target.
    at_risk_at: datetime
    queue: str
    priority: str
    pauses: tuple[Pause, ...] = ()
    stopped_at: datetime | None = None
    # When the target passed (the deadline), and when that was noticed (later if the service was down).
    breached_at: datetime | None = None
    breach_recorded_at: datetime | None = None
    warned: tuple[int, ...] = ()

    @property
    def key(self) -> tuple[Metric, int]:
        return self.metric, self.cycle

    @property
    def active(self) -> bool:
        return self.state in (ClockState.RUNNING, ClockState.PAUSED)

    @property
    def breached(self) -> bool:
        return self.breached_at is not None

    @property
    def paused_total(self) -> timedelta:
        """Wall-clock time spent paused (closed pauses)."""
        return sum((p.end - p.start for p in self.pauses if p.end is not None), timedelta(0))

    @property
    def pause_reason(self) -> str:
        return self.pauses[-1].reason if self.state is ClockState.PAUSED and self.pauses else ""


@dataclass(frozen=True, slots=True)
class Due:
    """A timer a running clock needs: a warning (``percent``) or the breach (``percent`` None)."""

    percent: int | None
    at: datetime


def _credit(clock: Clock, base: TimeBase) -> timedelta:
    return sum((base.between(p.start, p.end) for p in clock.pauses if p.end is not None), timedelta(0))


def point_in_time(clock: Clock, share_percent: int, base: TimeBase) -> datetime:
    """When running time reaches ``share_percent`` of the target (closed pauses credited)."""
    return base.add(clock.started_at, clock.target * share_percent / 100 + _credit(clock, base))


def rescheduled(clock: Clock, base: TimeBase) -> Clock:
    credit = _credit(clock, base)
    return dataclasses.replace(
        clock,
        deadline=base.add(clock.started_at, clock.target + credit),
        at_risk_at=base.add(clock.started_at, clock.target * AT_RISK_PERCENT / 100 + credit),
    )


def due_timers(clock: Clock, base: TimeBase) -> list[Due]:
    """The timers a clock needs now: none unless it runs; no warning already sent; no breach twice."""
    if clock.state is not ClockState.RUNNING or clock.breached:
        return []
    warnings = [Due(p, point_in_time(clock, p, base)) for p in clock.warning_percents if p not in clock.warned]
    return [*warnings, Due(None, clock.deadline)]


def warn(clock: Clock, percent: int) -> tuple[Clock, tuple[int, ...]] | None:
    """The clock with the warning recorded, and the percents to announce in order: this one and any earlier one
    not announced yet (its timer was retried late). None if it is not owed (stopped, paused, breached, sent)."""
    if clock.state is not ClockState.RUNNING or clock.breached or percent in clock.warned:
        return None
    if percent not in clock.warning_percents:
        return None
    owed = tuple(p for p in clock.warning_percents if p <= percent and p not in clock.warned)
    return dataclasses.replace(clock, warned=tuple(sorted((*clock.warned, *owed)))), owed


def breach(clock: Clock, now: datetime) -> tuple[Clock, tuple[int, ...]] | None:
    """The clock marked breached at its deadline, and the warnings still owed before the breach, in order; None
    if it is not running or already breached."""
    if clock.state is not ClockState.RUNNING or clock.breached:
        return None
    owed = tuple(p for p in clock.warning_percents if p not in clock.warned)
    breached = dataclasses.replace(
        clock, breached_at=clock.deadline, breach_recorded_at=now, warned=tuple(sorted((*clock.warned, *owed)))
    )
    return breached, owed


# --- tickets and the facts that move their clocks ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketSla:
    """What SLA keeps of a ticket, as of ``version`` (the last applied ticket version)."""

    ticket_id: uuid.UUID
    version: int
    category: str
    priority: str
    customer_tier: str
    queue: str
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TicketOpened:
    ticket_id: uuid.UUID
    version: int
    at: datetime
    category: str
    priority: str
    customer_tier: str
    status: str


@dataclass(frozen=True, slots=True)
class MessagePosted:
    ticket_id: uuid.UUID
    version: int
    at: datetime
    author: Author


@dataclass(frozen=True, slots=True)
class StatusChanged:
    ticket_id: uuid.UUID
    version: int
    at: datetime
    from_status: str
    to_status: str


@dataclass(frozen=True, slots=True)
class PriorityChanged:
    ticket_id: uuid.UUID
    version: int
    at: datetime
    priority: str


@dataclass(frozen=True, slots=True)
class OtherChange:
    """A ticket change that moves no clock; it still advances the version."""

    ticket_id: uuid.UUID
    version: int
    at: datetime


Fact = TicketOpened | MessagePosted | StatusChanged | PriorityChanged | OtherChange


@dataclass(frozen=True, slots=True)
class Rules:
    """Policies in position order and the time base of every calendar they or the clocks name."""

    policies: Sequence[Policy]
    time_bases: Mapping[uuid.UUID, TimeBase]

    def time_base(self, calendar_id: uuid.UUID | None) -> TimeBase:
        # A calendar that disappeared falls back to calendar time rather than stopping the clock.
        return CALENDAR_TIME if calendar_id is None else self.time_bases.get(calendar_id, CALENDAR_TIME)

    def policy_for(self, ticket: TicketSla) -> Policy | None:
        return first_match(self.policies, ticket.priority, ticket.category, ticket.customer_tier)


@dataclass(slots=True)
class Outcome:
    ticket: TicketSla
    # Clocks started or changed, by (metric, cycle), in their final state.
    changed: dict[tuple[Metric, int], Clock] = field(default_factory=dict)
    # Clocks that breached (noticed while applying) and clocks fulfilled, in that order of events.
    breached: list[Clock] = field(default_factory=list)
    fulfilled: list[Clock] = field(default_factory=list)


def open_ticket(fact: TicketOpened, queue: str, rules: Rules) -> Outcome:
    ticket = TicketSla(
        ticket_id=fact.ticket_id,
        version=fact.version,
        category=fact.category,
        priority=fact.priority,
        customer_tier=fact.customer_tier,
        queue=queue,
        status=fact.status,
        created_at=fact.at,
    )
    step = _Step(ticket, {}, rules)
    if fact.status not in (RESOLVED, CLOSED):
        step.start(Metric.FIRST_RESPONSE, fact.at)
        step.start(Metric.RESOLUTION, fact.at)
    return step.outcome


def apply(ticket: TicketSla, current: Mapping[Metric, Clock], fact: Fact, rules: Rules) -> Outcome:
    """Apply the next fact (version ``ticket.version + 1``) to a ticket whose latest clocks are ``current``."""
    step = _Step(dataclasses.replace(ticket, version=fact.version), current, rules)
    match fact:
        case MessagePosted(author=Author.STAFF, at=at):
            step.fulfil(Metric.FIRST_RESPONSE, at)
            step.fulfil(Metric.NEXT_RESPONSE, at)
        case MessagePosted(author=Author.CUSTOMER, at=at):
            if not step.is_active(Metric.FIRST_RESPONSE) and not step.is_active(Metric.NEXT_RESPONSE):
                step.start(Metric.NEXT_RESPONSE, at)
        case StatusChanged():
            step.change_status(fact)
        case PriorityChanged():
            step.change_priority(fact.priority)
        case _:
            pass
    return step.outcome


class _Step:
    def __init__(self, ticket: TicketSla, current: Mapping[Metric, Clock], rules: Rules) -> None:
        self.outcome = Outcome(ticket)
        self._current = dict(current)
        self._rules = rules

    @property
    def ticket(self) -> TicketSla:
        return self.outcome.ticket

    def is_active(self, metric: Metric) -> bool:
        clock = self._current.get(metric)
        return clock is not None and clock.active

    def start(self, metric: Metric, at: datetime) -> None:
        policy = self._rules.policy_for(self.ticket)
        target = policy.spec.targets.get(metric) if policy else None
        if policy is None or target is None:
            return  # the first matching policy sets no target for this metric
        previous = self._current.get(metric)
        if previous is not None and previous.active:
            self._stop(previous, at, ClockState.CANCELLED)
        spec = policy.spec
        clock = Clock(
            ticket_id=self.ticket.ticket_id,
            metric=metric,
            cycle=previous.cycle + 1 if previous else 1,
            policy_id=policy.id,
            target=target,
            calendar_id=spec.calendar_id,
            warning_percents=spec.warning_percents,
            escalation=spec.escalation,
            state=ClockState.RUNNING,
            started_at=at,
            deadline=at,
            at_risk_at=at,
            queue=self.ticket.queue,
            priority=self.ticket.priority,
        )
        if self.ticket.status == PENDING:
            clock = dataclasses.replace(clock, state=ClockState.PAUSED, pauses=(Pause(PENDING, at),))
        self._put(rescheduled(clock, self._rules.time_base(clock.calendar_id)))

    def fulfil(self, metric: Metric, at: datetime) -> None:
        clock = self._current.get(metric)
        if clock is not None and clock.active:
            self.outcome.fulfilled.append(self._stop(clock, at, ClockState.FULFILLED))

    def cancel(self, metric: Metric, at: datetime) -> None:
        clock = self._current.get(metric)
        if clock is not None and clock.active:
            self._stop(clock, at, ClockState.CANCELLED)

    def change_status(self, fact: StatusChanged) -> None:
        self.outcome.ticket = dataclasses.replace(self.ticket, status=fact.to_status)
        at = fact.at
        if fact.to_status == PENDING:
            for clock in self._active():
                self._pause(clock, at, PENDING)
        elif fact.from_status == PENDING:
            for clock in self._active():
                self._resume(clock, at)
        if fact.to_status == RESOLVED:
            self.fulfil(Metric.RESOLUTION, at)
            self.cancel(Metric.FIRST_RESPONSE, at)
            self.cancel(Metric.NEXT_RESPONSE, at)
        elif fact.to_status == CLOSED:
            for clock in self._active():
                self._stop(clock, at, ClockState.CANCELLED)
        elif fact.from_status == RESOLVED:
            self.start(Metric.RESOLUTION, at)  # reopened: a new resolution clock with the full target

    def change_priority(self, priority: str) -> None:
        self.outcome.ticket = dataclasses.replace(self.ticket, priority=priority)
        policy = self._rules.policy_for(self.ticket)
        for clock in self._active():
            updated = dataclasses.replace(clock, priority=priority)
            target = policy.spec.targets.get(clock.metric) if policy else None
            if policy is not None and target is not None and not clock.breached:
                spec = policy.spec
                updated = dataclasses.replace(
                    updated,
                    policy_id=policy.id,
                    target=target,
                    calendar_id=spec.calendar_id,
                    warning_percents=spec.warning_percents,
                    escalation=spec.escalation,
                )
                updated = rescheduled(updated, self._rules.time_base(updated.calendar_id))
            if updated != clock:
                self._put(updated)

    def _active(self) -> list[Clock]:
        return [c for c in self._current.values() if c.active]

    def _put(self, clock: Clock) -> Clock:
        self._current[clock.metric] = clock
        self.outcome.changed[clock.key] = clock
        return clock

    def _pause(self, clock: Clock, at: datetime, reason: str) -> None:
        if clock.state is not ClockState.RUNNING:
            return
        at = max(at, clock.started_at)
        clock = self._breach_if_passed(clock, at)
        self._put(dataclasses.replace(clock, state=ClockState.PAUSED, pauses=(*clock.pauses, Pause(reason, at))))

    def _resume(self, clock: Clock, at: datetime) -> Clock:
        if clock.state is not ClockState.PAUSED:
            return clock
        last = clock.pauses[-1]
        closed = dataclasses.replace(last, end=max(at, last.start))
        resumed = dataclasses.replace(clock, state=ClockState.RUNNING, pauses=(*clock.pauses[:-1], closed))
        return self._put(rescheduled(resumed, self._rules.time_base(clock.calendar_id)))

    def _stop(self, clock: Clock, at: datetime, state: ClockState) -> Clock:
        at = max(at, clock.started_at)
        clock = self._resume(clock, at)
        clock = self._breach_if_passed(clock, at)
        return self._put(dataclasses.replace(clock, state=state, stopped_at=at))

    def _breach_if_passed(self, clock: Clock, at: datetime) -> Clock:
        """A running clock whose deadline passed before ``at`` breached, even if its timer has not fired yet."""
        if clock.state is ClockState.RUNNING and not clock.breached and at > clock.deadline:
            clock = dataclasses.replace(clock, breached_at=clock.deadline, breach_recorded_at=at)
            self.outcome.breached.append(clock)
        return clock


# --- statistics ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlaStats:
    policy_id: uuid.UUID | None
    queue: str
    metric: Metric
    completed: int
    met: int
    breached: int
    at_risk: int
    p50: timedelta | None
    p90: timedelta | None
    p99: timedelta | None

    @property
    def attainment_percent(self) -> float:
        return 100.0 if self.completed == 0 else self.met * 100.0 / self.completed
