"""Translation between SLA's domain and protobuf: ticketing's events in, SLA messages and events out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from support.common.v1 import common_pb2
from support.routing.v1 import events_pb2 as routing_events
from support.routing.v1 import sla_pb2, sla_service_pb2
from support.ticketing.v1 import events_pb2 as ticketing_events
from support.ticketing.v1 import ticket_pb2

from services.kit.bus.envelope import Envelope
from services.kit.errors import InvalidArgument, NotFound
from services.kit.proto_enums import from_proto, from_timestamp, timestamp, to_proto
from services.routing.sla.calendar import (
    Calendar,
    CalendarSpec,
    OpeningHours,
    format_minute,
    parse_holiday,
    parse_minute,
)
from services.routing.sla.domain import (
    Author,
    Clock,
    ClockState,
    Escalation,
    Fact,
    MessagePosted,
    Metric,
    OtherChange,
    Policy,
    PolicyMatch,
    PolicySpec,
    PriorityChanged,
    SlaStats,
    StatusChanged,
    TicketOpened,
)

EVENT_SOURCE = "supportdesk/routing"
SLA_WARNING = "support.routing.v1.sla.warning"
SLA_BREACHED = "support.routing.v1.sla.breached"
SLA_FULFILLED = "support.routing.v1.sla.fulfilled"
TICKET_EVENT_PREFIX = "support.ticketing.v1.ticket."
DEFAULT_CUSTOMER_TIER = "standard"

_STAFF = frozenset({ticket_pb2.ACTOR_TYPE_AGENT, ticket_pb2.ACTOR_TYPE_SUPERVISOR, ticket_pb2.ACTOR_TYPE_ADMIN})


class UnreadableEvent(ValueError):
    """A ticket event SLA cannot read (bad payload, missing ticket or version)."""


# --- ticketing's events → facts ------------------------------------------------------------------------


def fact(event: Envelope) -> Fact | None:
    """The fact a ticketing event states, or None for a type SLA does not know."""
    kind = event.type.removeprefix(TICKET_EVENT_PREFIX)
    try:
        return _fact(kind, event)
    except (DecodeError, ValueError) as exc:
        raise UnreadableEvent(f"{event.type}: {exc}") from exc


def _fact(kind: str, event: Envelope) -> Fact | None:
    data = event.data
    match kind:
        case "created":
            ticket = ticketing_events.TicketCreated.FromString(data).ticket
            return TicketOpened(
                ticket_id=_ticket_id(ticket.id),
                version=_version(ticket.version),
                at=from_timestamp(ticket.create_time) if ticket.HasField("create_time") else event.time,
                category=_name(ticket_pb2.Category, ticket.category, "category"),
                priority=_name(common_pb2.Priority, ticket.priority, "priority"),
                customer_tier=ticket.customer_tier or DEFAULT_CUSTOMER_TIER,
                status=_name(ticket_pb2.TicketStatus, ticket.status, "status"),
            )
        case "message_added":
            added = ticketing_events.MessageAdded.FromString(data)
            message = added.message
            return MessagePosted(
                ticket_id=_ticket_id(message.ticket_id or event.subject),
                version=_version(added.ticket_version),
                at=from_timestamp(message.create_time) if message.HasField("create_time") else event.time,
                author=_author(message),
            )
        case "status_changed":
            changed = ticketing_events.TicketStatusChanged.FromString(data)
            return StatusChanged(
                ticket_id=_ticket_id(changed.ticket_id),
                version=_version(changed.ticket_version),
                at=event.time,
                from_status=_name(ticket_pb2.TicketStatus, changed.from_status, "from_status"),
                to_status=_name(ticket_pb2.TicketStatus, changed.to_status, "to_status"),
            )
        case "priority_changed":
            priority = ticketing_events.TicketPriorityChanged.FromString(data)
            return PriorityChanged(
                ticket_id=_ticket_id(priority.ticket_id),
                version=_version(priority.ticket_version),
                at=event.time,
                priority=_name(common_pb2.Priority, priority.to_priority, "to_priority"),
            )
        case "note_added":
            note = ticketing_events.NoteAdded.FromString(data)
            return _other(note.ticket_id, note.ticket_version, event)
        case "assigned":
            assigned = ticketing_events.TicketAssigned.FromString(data)
            return _other(assigned.ticket_id, assigned.ticket_version, event)
        case "csat_recorded":
            csat = ticketing_events.CsatRecorded.FromString(data)
            return _other(csat.ticket_id, csat.ticket_version, event)
        case "flagged":
            flagged = ticketing_events.TicketFlagged.FromString(data)
            return _other(flagged.ticket_id, flagged.ticket_version, event)
    return None


def _other(ticket_id: str, version: int, event: Envelope) -> OtherChange:
    return OtherChange(ticket_id=_ticket_id(ticket_id or event.subject), version=_version(version), at=event.time)


def _author(message: ticket_pb2.Message) -> Author:
    if message.visibility != ticket_pb2.MESSAGE_VISIBILITY_PUBLIC:
        return Author.SYSTEM  # internal notes are never published; if one were, it would answer no one
    if message.author.type == ticket_pb2.ACTOR_TYPE_CUSTOMER:
        return Author.CUSTOMER
    if message.author.type in _STAFF:
        return Author.STAFF
    return Author.SYSTEM


def _ticket_id(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def _version(value: int) -> int:
    if value <= 0:
        raise ValueError("no ticket version")
    return value


def _name(wrapper: Any, number: int, field: str) -> str:
    name = from_proto(wrapper, number)
    if name is None:
        raise ValueError(f"{field} unspecified")
    return name


# --- clocks and SLA events -----------------------------------------------------------------------------


def _duration(value: timedelta) -> Duration:
    message = Duration()
    message.FromTimedelta(value)
    return message


def _clock_state(clock: Clock) -> int:
    # A breached clock stays BREACHED once stopped: stop_time then records when it was eventually met.
    if clock.state is ClockState.PAUSED:
        return sla_pb2.SLA_CLOCK_STATE_PAUSED
    if clock.breached:
        return sla_pb2.SLA_CLOCK_STATE_BREACHED
    return int(to_proto(sla_pb2.SlaClockState, clock.state.value))


def clock_message(clock: Clock) -> sla_pb2.SlaClock:
    message = sla_pb2.SlaClock(
        ticket_id=str(clock.ticket_id),
        metric=to_proto(sla_pb2.SlaMetric, clock.metric.value),
        policy_id=str(clock.policy_id),
        state=_clock_state(clock),  # type: ignore[arg-type]
        target=_duration(clock.target),
        start_time=timestamp(clock.started_at),
        deadline=timestamp(clock.deadline),
        paused=_duration(clock.paused_total),
        breached=clock.breached,
        queue=clock.queue,
        priority=to_proto(common_pb2.Priority, clock.priority) if clock.priority else common_pb2.PRIORITY_UNSPECIFIED,
        pause_reason=clock.pause_reason,
    )
    if clock.stopped_at is not None:
        message.stop_time.CopyFrom(timestamp(clock.stopped_at))
    return message


def escalation_message(escalation: Escalation) -> sla_pb2.SlaEscalation:
    return sla_pb2.SlaEscalation(
        raise_priority=escalation.raise_priority, notify_supervisor=escalation.notify_supervisor
    )


def warning_event(clock: Clock, percent: int) -> Envelope:
    return _event(SLA_WARNING, clock, routing_events.SlaWarning(clock=clock_message(clock), percent=percent))


def breached_event(clock: Clock) -> Envelope:
    payload = routing_events.SlaBreached(clock=clock_message(clock), escalation=escalation_message(clock.escalation))
    return _event(SLA_BREACHED, clock, payload)


def fulfilled_event(clock: Clock) -> Envelope:
    return _event(SLA_FULFILLED, clock, routing_events.SlaFulfilled(clock=clock_message(clock)))


def _event(event_type: str, clock: Clock, payload: Any) -> Envelope:
    return Envelope.new(
        type=event_type, source=EVENT_SOURCE, subject=str(clock.ticket_id), data=payload.SerializeToString()
    )


# --- policies and calendars ----------------------------------------------------------------------------


def policy_message(policy: Policy) -> sla_pb2.SlaPolicy:
    spec = policy.spec
    return sla_pb2.SlaPolicy(
        id=str(policy.id),
        name=spec.name,
        position=spec.position,
        match=sla_pb2.SlaMatch(
            priorities=[to_proto(common_pb2.Priority, p) for p in spec.match.priorities],
            categories=list(spec.match.categories),
            customer_tiers=list(spec.match.customer_tiers),
        ),
        targets=[
            sla_pb2.SlaTarget(metric=to_proto(sla_pb2.SlaMetric, m.value), target=_duration(t))
            for m, t in spec.targets.items()
        ],
        calendar_id=str(spec.calendar_id) if spec.calendar_id else "",
        warning_percents=list(spec.warning_percents),
        escalation=escalation_message(spec.escalation),
        version=policy.version,
    )


def policy_spec(message: sla_pb2.SlaPolicy) -> PolicySpec:
    targets: dict[Metric, timedelta] = {}
    for target in message.targets:
        metric = Metric(_required_enum(sla_pb2.SlaMetric, target.metric, "targets.metric"))
        if metric in targets:
            raise InvalidArgument("invalid_argument", f"targets: {metric.value} given twice", field="targets")
        targets[metric] = target.target.ToTimedelta()
    return PolicySpec(
        name=message.name,
        position=message.position,
        match=PolicyMatch(
            priorities=tuple(
                _required_enum(common_pb2.Priority, p, "match.priorities") for p in message.match.priorities
            ),
            categories=tuple(message.match.categories),
            customer_tiers=tuple(message.match.customer_tiers),
        ),
        targets=targets,
        calendar_id=calendar_ref(message.calendar_id),
        warning_percents=tuple(message.warning_percents),
        escalation=Escalation(
            raise_priority=message.escalation.raise_priority,
            notify_supervisor=message.escalation.notify_supervisor,
        ),
    )


def calendar_ref(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound("calendar_not_found", f"calendar {value[:64]!r} does not exist", field="calendar_id") from None


def calendar_message(calendar: Calendar) -> sla_pb2.BusinessCalendar:
    spec = calendar.spec
    return sla_pb2.BusinessCalendar(
        id=str(calendar.id),
        name=spec.name,
        time_zone=spec.time_zone,
        hours=[
            sla_pb2.OpeningHours(
                weekday=h.weekday, open=format_minute(h.open_minute), close=format_minute(h.close_minute)
            )
            for h in spec.hours
        ],
        holidays=[d.isoformat() for d in spec.holidays],
        version=calendar.version,
    )


def calendar_spec(message: sla_pb2.BusinessCalendar) -> CalendarSpec:
    return CalendarSpec(
        name=message.name,
        time_zone=message.time_zone,
        hours=tuple(
            OpeningHours(
                weekday=h.weekday,
                open_minute=parse_minute(h.open, "hours.open"),
                close_minute=parse_minute(h.close, "hours.close"),
            )
            for h in message.hours
        ),
        holidays=tuple(parse_holiday(d) for d in message.holidays),
    )


def _required_enum(wrapper: Any, number: int, field: str) -> str:
    try:
        name = from_proto(wrapper, number)
    except ValueError:
        name = None
    if name is None:
        raise InvalidArgument("invalid_argument", f"{field}: required, one of the defined values", field=field)
    return name


# --- statistics ----------------------------------------------------------------------------------------


def stats_period(request: sla_service_pb2.GetSlaStatsRequest) -> tuple[datetime | None, datetime | None]:
    start = from_timestamp(request.start_time) if request.HasField("start_time") else None
    end = from_timestamp(request.end_time) if request.HasField("end_time") else None
    return start, end


def stats_message(stats: SlaStats) -> sla_service_pb2.SlaStats:
    message = sla_service_pb2.SlaStats(
        policy_id=str(stats.policy_id) if stats.policy_id else "",
        queue=stats.queue,
        metric=to_proto(sla_pb2.SlaMetric, stats.metric.value),
        completed=stats.completed,
        met=stats.met,
        breached=stats.breached,
        attainment_percent=stats.attainment_percent,
        at_risk=stats.at_risk,
    )
    for name, value in (("p50", stats.p50), ("p90", stats.p90), ("p99", stats.p99)):
        if value is not None:
            getattr(message, name).CopyFrom(_duration(value))
    return message


# --- what the metrics count ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlaFact:
    """An SLA event reduced to what is counted: bounded labels and the elapsed (unpaused) time."""

    metric: str
    queue: str
    priority: str
    percent: int = 0
    breached: bool = False
    elapsed: timedelta | None = None


def sla_fact(event_type: str, data: bytes) -> SlaFact | None:
    """The fact of an SLA warning, breach or fulfilment; None for any other event."""
    message: Any
    if event_type == SLA_WARNING:
        message = routing_events.SlaWarning.FromString(data)
    elif event_type == SLA_BREACHED:
        message = routing_events.SlaBreached.FromString(data)
    elif event_type == SLA_FULFILLED:
        message = routing_events.SlaFulfilled.FromString(data)
    else:
        return None
    clock = message.clock
    elapsed = None
    if event_type == SLA_FULFILLED and clock.HasField("stop_time"):
        elapsed = clock.stop_time.ToDatetime() - clock.start_time.ToDatetime() - clock.paused.ToTimedelta()
    return SlaFact(
        metric=from_proto(sla_pb2.SlaMetric, clock.metric) or "unspecified",
        queue=clock.queue,
        priority=from_proto(common_pb2.Priority, clock.priority) or "unspecified",
        percent=message.percent if event_type == SLA_WARNING else 0,
        breached=clock.breached,
        elapsed=elapsed,
    )
