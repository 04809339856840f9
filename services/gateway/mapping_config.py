"""Protobuf ↔ public JSON for routing rules, queue settings, SLA policies, calendars, clocks and statistics.

Pure functions, with the conventions of ``mapping``: enum names lose their prefix, empty strings become null.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from google.protobuf.duration_pb2 import Duration
from support.routing.v1 import rule_pb2, sla_pb2, sla_service_pb2

from services.gateway import schemas, schemas_config
from services.gateway.mapping import PRIORITY, EnumMap, MappingError, duration_seconds, timestamp_in, timestamp_out

SLA_METRIC = EnumMap(sla_pb2.SlaMetric, "SLA_METRIC_", schemas_config.SlaMetric)
SLA_CLOCK_STATE = EnumMap(sla_pb2.SlaClockState, "SLA_CLOCK_STATE_", schemas_config.SlaClockState)


def _seconds(value: int) -> Duration:
    return Duration(seconds=value)


def _category_out(name: str) -> schemas.Category:
    # Routing keeps categories as the public names ticketing's enum maps to.
    try:
        return schemas.Category(name)
    except ValueError:
        raise MappingError(f"no public category for {name!r}") from None


# --- routing rules -------------------------------------------------------------------------------------------


def routing_rule_in(body: schemas_config.RoutingRuleIn, *, rule_id: str = "", version: int = 0) -> rule_pb2.RoutingRule:
    return rule_pb2.RoutingRule(
        id=rule_id,
        name=body.name,
        position=body.position,
        match=rule_pb2.RuleMatch(
            categories=[c.value for c in body.match.categories],
            languages=body.match.languages,
            priorities=[PRIORITY.to_proto[p] for p in body.match.priorities],
            customer_tiers=body.match.customer_tiers,
        ),
        queue=body.queue,
        steps=[
            rule_pb2.RoutingStep(
                after=_seconds(step.after_seconds),
                requirements=[
                    rule_pb2.SkillRequirement(skill=r.skill, min_proficiency=r.min_proficiency)
                    for r in step.requirements
                ],
                any_agent=step.any_agent,
                notify_supervisor=step.notify_supervisor,
            )
            for step in body.steps
        ],
        version=version,
    )


def routing_rule_out(rule: rule_pb2.RoutingRule) -> schemas_config.RoutingRuleOut:
    return schemas_config.RoutingRuleOut(
        id=rule.id,
        name=rule.name,
        position=rule.position,
        match=schemas_config.RuleMatchOut(
            categories=[_category_out(c) for c in rule.match.categories],
            languages=list(rule.match.languages),
            priorities=[PRIORITY.out(p) for p in rule.match.priorities],
            customer_tiers=list(rule.match.customer_tiers),
        ),
        queue=rule.queue,
        steps=[
            schemas_config.RoutingStepOut(
                after_seconds=duration_seconds(step.after),
                requirements=[
                    schemas_config.SkillRequirementOut(skill=r.skill, min_proficiency=r.min_proficiency)
                    for r in step.requirements
                ],
                any_agent=step.any_agent,
                notify_supervisor=step.notify_supervisor,
            )
            for step in rule.steps
        ],
        version=rule.version,
    )


# --- queues --------------------------------------------------------------------------------------------------


def queue_settings_in(queue: str, body: schemas_config.QueueSettingsIn) -> rule_pb2.Queue:
    return rule_pb2.Queue(
        name=queue,
        direct_assignment=body.direct_assignment,
        offer_timeout=_seconds(body.offer_timeout_seconds),
        requeue_on_offline=body.requeue_on_offline,
        version=body.expected_version or 0,
    )


def queue_settings_out(queue: rule_pb2.Queue) -> schemas_config.QueueSettingsOut:
    return schemas_config.QueueSettingsOut(
        queue=queue.name,
        direct_assignment=queue.direct_assignment,
        offer_timeout_seconds=duration_seconds(queue.offer_timeout),
        requeue_on_offline=queue.requeue_on_offline,
        version=queue.version,
    )


# --- SLA policies --------------------------------------------------------------------------------------------


def sla_policy_in(body: schemas_config.SlaPolicyIn, *, policy_id: str = "", version: int = 0) -> sla_pb2.SlaPolicy:
    return sla_pb2.SlaPolicy(
        id=policy_id,
        name=body.name,
        position=body.position or 0,
        match=sla_pb2.SlaMatch(
            priorities=[PRIORITY.to_proto[p] for p in body.match.priorities],
            categories=[c.value for c in body.match.categories],
            customer_tiers=body.match.customer_tiers,
        ),
        targets=[
            sla_pb2.SlaTarget(metric=SLA_METRIC.to_proto[t.metric], target=_seconds(t.target_seconds))
            for t in body.targets
        ],
        calendar_id=body.calendar_id or "",
        warning_percents=body.warning_percents,
        escalation=sla_pb2.SlaEscalation(
            raise_priority=body.escalation.raise_priority, notify_supervisor=body.escalation.notify_supervisor
        ),
        version=version,
    )


def sla_policy_out(policy: sla_pb2.SlaPolicy) -> schemas_config.SlaPolicyOut:
    return schemas_config.SlaPolicyOut(
        id=policy.id,
        name=policy.name,
        position=policy.position,
        match=schemas_config.SlaMatchOut(
            priorities=[PRIORITY.out(p) for p in policy.match.priorities],
            categories=[_category_out(c) for c in policy.match.categories],
            customer_tiers=list(policy.match.customer_tiers),
        ),
        targets=[
            schemas_config.SlaTargetOut(metric=SLA_METRIC.out(t.metric), target_seconds=duration_seconds(t.target))
            for t in policy.targets
        ],
        calendar_id=policy.calendar_id or None,
        warning_percents=list(policy.warning_percents),
        escalation=schemas_config.SlaEscalationOut(
            raise_priority=policy.escalation.raise_priority, notify_supervisor=policy.escalation.notify_supervisor
        ),
        version=policy.version,
    )


# --- calendars -----------------------------------------------------------------------------------------------


def calendar_in(
    body: schemas_config.CalendarIn, *, calendar_id: str = "", version: int = 0
) -> sla_pb2.BusinessCalendar:
    return sla_pb2.BusinessCalendar(
        id=calendar_id,
        name=body.name,
        time_zone=body.time_zone,
        hours=[sla_pb2.OpeningHours(weekday=h.weekday, open=h.open, close=h.close) for h in body.hours],
        holidays=[d.isoformat() for d in body.holidays],
        version=version,
    )


def calendar_out(calendar: sla_pb2.BusinessCalendar) -> schemas_config.CalendarOut:
    return schemas_config.CalendarOut(
        id=calendar.id,
        name=calendar.name,
        time_zone=calendar.time_zone,
        hours=[schemas_config.OpeningHoursOut(weekday=h.weekday, open=h.open, close=h.close) for h in calendar.hours],
        holidays=[date.fromisoformat(d) for d in calendar.holidays],
        version=calendar.version,
    )


# --- clocks and statistics -----------------------------------------------------------------------------------


def sla_clock_out(clock: sla_pb2.SlaClock) -> schemas_config.SlaClockOut:
    return schemas_config.SlaClockOut(
        metric=SLA_METRIC.out(clock.metric),
        policy_id=clock.policy_id,
        state=SLA_CLOCK_STATE.out(clock.state),
        target_seconds=duration_seconds(clock.target),
        started_at=timestamp_out(clock, "start_time"),
        deadline=timestamp_out(clock, "deadline"),
        paused_seconds=duration_seconds(clock.paused),
        stopped_at=timestamp_out(clock, "stop_time"),
        breached=clock.breached,
        queue=clock.queue or None,
        priority=PRIORITY.out_or_none(clock.priority),
        pause_reason=clock.pause_reason or None,
    )


def ticket_sla_out(ticket_id: str, response: sla_service_pb2.GetTicketSlaResponse) -> schemas_config.TicketSlaOut:
    return schemas_config.TicketSlaOut(ticket_id=ticket_id, clocks=[sla_clock_out(c) for c in response.clocks])


def sla_stats_request(
    *, policy_id: str | None, queue: str | None, start: datetime | None, end: datetime | None
) -> sla_service_pb2.GetSlaStatsRequest:
    request = sla_service_pb2.GetSlaStatsRequest(policy_id=policy_id or "", queue=queue or "")
    if start is not None:
        request.start_time.CopyFrom(timestamp_in(start))
    if end is not None:
        request.end_time.CopyFrom(timestamp_in(end))
    return request


def _optional_seconds(stats: sla_service_pb2.SlaStats, field: Literal["p50", "p90", "p99"]) -> float | None:
    return duration_seconds(getattr(stats, field)) if stats.HasField(field) else None


def sla_stats_report(response: sla_service_pb2.GetSlaStatsResponse) -> schemas_config.SlaStatsReport:
    return schemas_config.SlaStatsReport(
        stats=[
            schemas_config.SlaStatsOut(
                policy_id=s.policy_id or None,
                queue=s.queue or None,
                metric=SLA_METRIC.out(s.metric),
                completed=s.completed,
                met=s.met,
                breached=s.breached,
                attainment_percent=s.attainment_percent,
                at_risk=s.at_risk,
                p50_seconds=_optional_seconds(s, "p50"),
                p90_seconds=_optional_seconds(s, "p90"),
                p99_seconds=_optional_seconds(s, "p99"),
            )
            for s in response.stats
        ]
    )
