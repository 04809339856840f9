"""Protobuf ↔ JSON mapping of routing and SLA configuration, clocks and statistics."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError
from support.common.v1 import common_pb2
from support.routing.v1 import rule_pb2, sla_pb2, sla_service_pb2

from services.gateway import mapping_config, schemas_config
from services.gateway.mapping import MappingError

pytestmark = pytest.mark.unit

RULE: dict[str, Any] = {
    "name": "Beta",
    "position": 5,
    "match": {"categories": ["beta_access"], "languages": ["en"], "priorities": ["high"], "customer_tiers": ["vip"]},
    "queue": "beta",
    "steps": [
        {"after_seconds": 0, "requirements": [{"skill": "beta", "min_proficiency": 3}]},
        {"after_seconds": 90, "any_agent": True, "notify_supervisor": True},
    ],
}
POLICY: dict[str, Any] = {"name": "Beta", "targets": [{"metric": "first_response", "target_seconds": 120}]}


def stamp(value: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(value)
    return result


@pytest.mark.parametrize(
    ("enum_map", "proto_enum"),
    [(mapping_config.SLA_METRIC, sla_pb2.SlaMetric), (mapping_config.SLA_CLOCK_STATE, sla_pb2.SlaClockState)],
)
def test_every_sla_enum_value_has_a_public_name_and_back(enum_map: Any, proto_enum: Any) -> None:
    assert set(enum_map.to_public) == {number for number in proto_enum.values() if number != 0}
    assert set(enum_map.to_proto) == set(enum_map.public)


def test_a_routing_rule_goes_to_protobuf_and_back_unchanged() -> None:
    body = schemas_config.RoutingRuleReplaceIn.model_validate({**RULE, "expected_version": 3})
    message = mapping_config.routing_rule_in(body, rule_id="r-1", version=3)
    assert message.steps[1].after == Duration(seconds=90)
    assert list(message.match.priorities) == [common_pb2.PRIORITY_HIGH]
    assert list(message.match.categories) == ["beta_access"]
    out = mapping_config.routing_rule_out(message)
    assert (out.id, out.version, out.queue, out.position) == ("r-1", 3, "beta", 5)
    assert out.match.model_dump() == RULE["match"]
    assert [s.after_seconds for s in out.steps] == [0.0, 90.0]
    assert out.steps[0].requirements[0].model_dump() == {"skill": "beta", "min_proficiency": 3}
    assert (out.steps[1].any_agent, out.steps[1].notify_supervisor) == (True, True)


def test_a_category_the_public_api_does_not_know_is_an_error() -> None:
    with pytest.raises(MappingError):
        mapping_config.routing_rule_out(rule_pb2.RoutingRule(match=rule_pb2.RuleMatch(categories=["lottery"])))


def test_queue_settings_carry_the_expected_version() -> None:
    body = schemas_config.QueueSettingsIn(direct_assignment=True, offer_timeout_seconds=45, expected_version=2)
    message = mapping_config.queue_settings_in("vip", body)
    assert (message.name, message.offer_timeout.seconds, message.version) == ("vip", 45, 2)
    unconditional = mapping_config.queue_settings_in("vip", schemas_config.QueueSettingsIn())
    assert (unconditional.version, unconditional.offer_timeout.seconds) == (0, 30)
    out = mapping_config.queue_settings_out(message)
    assert out.model_dump() == {
        "queue": "vip",
        "direct_assignment": True,
        "offer_timeout_seconds": 45.0,
        "requeue_on_offline": False,
        "version": 2,
    }


def test_an_sla_policy_without_position_or_calendar_sends_zero_values() -> None:
    body = schemas_config.SlaPolicyIn.model_validate(POLICY)
    message = mapping_config.sla_policy_in(body)
    assert (message.position, message.calendar_id, message.id, message.version) == (0, "", "", 0)
    assert list(message.warning_percents) == [50, 80]
    assert message.targets[0].metric == sla_pb2.SLA_METRIC_FIRST_RESPONSE
    assert message.targets[0].target == Duration(seconds=120)
    out = mapping_config.sla_policy_out(message)
    assert out.calendar_id is None
    assert [(t.metric, t.target_seconds) for t in out.targets] == [("first_response", 120.0)]


def test_an_sla_policy_names_each_metric_once() -> None:
    twice = {**POLICY, "targets": POLICY["targets"] * 2}
    with pytest.raises(ValidationError, match="one target per metric"):
        schemas_config.SlaPolicyIn.model_validate(twice)


def test_a_calendar_goes_to_protobuf_and_back_unchanged() -> None:
    body = schemas_config.CalendarIn(
        name="Office",
        time_zone="Asia/Shanghai",
        hours=[schemas_config.OpeningHoursIn(weekday=1, open="09:00", close="24:00")],
        holidays=[date(2026, 10, 1)],
    )
    message = mapping_config.calendar_in(body, calendar_id="c-1", version=4)
    assert list(message.holidays) == ["2026-10-01"]
    out = mapping_config.calendar_out(message)
    assert out.model_dump() == {
        "id": "c-1",
        "name": "Office",
        "time_zone": "Asia/Shanghai",
        "hours": [{"weekday": 1, "open": "09:00", "close": "24:00"}],
        "holidays": [date(2026, 10, 1)],
        "version": 4,
    }


def test_a_running_clock_has_no_stop_time_and_empty_values_become_null() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    clock = sla_pb2.SlaClock(
        ticket_id="t-1",
        metric=sla_pb2.SLA_METRIC_RESOLUTION,
        policy_id="p-1",
        state=sla_pb2.SLA_CLOCK_STATE_PAUSED,
        target=Duration(seconds=3600),
        start_time=stamp(start),
        deadline=stamp(start + timedelta(hours=2)),
        paused=Duration(seconds=90, nanos=500_000_000),
        priority=common_pb2.PRIORITY_URGENT,
        pause_reason="pending",
    )
    out = mapping_config.ticket_sla_out("t-1", sla_service_pb2.GetTicketSlaResponse(clocks=[clock])).clocks[0]
    assert (out.metric, out.state, out.priority, out.pause_reason) == ("resolution", "paused", "urgent", "pending")
    assert (out.started_at, out.deadline, out.stopped_at) == (start, start + timedelta(hours=2), None)
    assert (out.paused_seconds, out.queue) == (90.5, None)


def test_stats_requests_carry_only_the_given_filters() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    request = mapping_config.sla_stats_request(policy_id=None, queue="beta", start=start, end=None)
    assert (request.policy_id, request.queue) == ("", "beta")
    assert request.start_time.ToDatetime(tzinfo=UTC) == start
    assert not request.HasField("end_time")


def test_stats_without_completed_clocks_have_no_percentiles() -> None:
    stats = sla_service_pb2.SlaStats(
        queue="beta", metric=sla_pb2.SLA_METRIC_FIRST_RESPONSE, attainment_percent=100.0, p50=Duration(seconds=30)
    )
    [out] = mapping_config.sla_stats_report(sla_service_pb2.GetSlaStatsResponse(stats=[stats])).stats
    assert (out.policy_id, out.queue, out.metric) == (None, "beta", "first_response")
    assert (out.p50_seconds, out.p90_seconds, out.p99_seconds) == (30.0, None, None)
