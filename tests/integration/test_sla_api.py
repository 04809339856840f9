"""SlaService over real gRPC: policies, calendars, a ticket's clocks and attainment statistics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nats.js import JetStreamContext
from support.common.v1 import common_pb2
from support.routing.v1 import sla_pb2
from support.routing.v1 import sla_service_pb2 as pb
from support.routing.v1 import sla_service_pb2_grpc as pb_grpc

from services.kit.grpc_server import GrpcServer
from services.kit.proto_enums import timestamp
from services.kit.service import Runtime
from services.kit.settings import ServiceSettings
from services.routing.sla import SERVICE_NAME, register
from services.routing.sla.calendar import BusinessHours, CalendarSpec, OpeningHours
from tests.integration.bus_fixtures import migrated_pool
from tests.integration.test_sla_clocks import created, db_now, deliver, message

pytestmark = pytest.mark.integration

MIN = timedelta(minutes=1)
DEFAULT_POLICY = "5a1a0000-0000-4000-8000-000000000002"


@dataclass
class Sla:
    stub: pb_grpc.SlaServiceAsyncStub
    pool: asyncpg.Pool


@pytest.fixture
async def sla(fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[Sla]:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    runtime = Runtime(settings=ServiceSettings(DATABASE_URL=fresh_database_url), pool=pool, js=js)
    server = GrpcServer("127.0.0.1", 0, lambda s: register(s, runtime), [SERVICE_NAME])
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    yield Sla(pb_grpc.SlaServiceStub(channel), pool)
    await channel.close()
    await server.stop(0)
    await pool.close()


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)


def minutes(n: float) -> Duration:
    value = Duration()
    value.FromTimedelta(timedelta(minutes=n))
    return value


def a_policy(**overrides: object) -> sla_pb2.SlaPolicy:
    fields: dict[str, object] = {
        "name": "VIP complaints",
        "position": 5,
        "match": sla_pb2.SlaMatch(categories=["complaint"], customer_tiers=["vip"]),
        "targets": [
            sla_pb2.SlaTarget(metric=sla_pb2.SLA_METRIC_FIRST_RESPONSE, target=minutes(1)),
            sla_pb2.SlaTarget(metric=sla_pb2.SLA_METRIC_RESOLUTION, target=minutes(120)),
        ],
        "warning_percents": [80, 50],
        "escalation": sla_pb2.SlaEscalation(notify_supervisor=True),
    }
    fields.update(overrides)
    return sla_pb2.SlaPolicy(**fields)  # type: ignore[arg-type]


SHANGHAI_WEEKDAYS = sla_pb2.BusinessCalendar(
    name="Shanghai office",
    time_zone="Asia/Shanghai",
    hours=[sla_pb2.OpeningHours(weekday=d, open="09:00", close="18:00") for d in range(1, 6)],
    holidays=["2026-10-01", "2026-10-02"],
)


async def expect_error(call: object, code: grpc.StatusCode, expected_reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    assert error.value.code() == code
    assert reason(error.value) == expected_reason


async def test_the_default_policies_are_seeded_in_match_order(sla: Sla) -> None:
    response = await sla.stub.ListSlaPolicies(pb.ListSlaPoliciesRequest())
    assert [p.name for p in response.policies] == ["Urgent", "Default"]
    urgent, default = response.policies
    assert list(urgent.match.priorities) == [common_pb2.PRIORITY_URGENT]
    assert {t.metric: t.target.ToTimedelta() for t in urgent.targets} == {
        sla_pb2.SLA_METRIC_FIRST_RESPONSE: 2 * MIN,
        sla_pb2.SLA_METRIC_NEXT_RESPONSE: 5 * MIN,
        sla_pb2.SLA_METRIC_RESOLUTION: 240 * MIN,
    }
    assert {t.metric: t.target.ToTimedelta() for t in default.targets}[sla_pb2.SLA_METRIC_FIRST_RESPONSE] == 5 * MIN
    assert list(default.warning_percents) == [50, 80]
    assert (urgent.escalation.raise_priority, urgent.escalation.notify_supervisor) == (False, True)
    assert (default.escalation.raise_priority, default.escalation.notify_supervisor) == (True, True)
    assert default.id == DEFAULT_POLICY


async def test_policies_are_created_once_per_request_id_updated_by_version_and_deleted(sla: Sla) -> None:
    first = await sla.stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(request_id="r-1", policy=a_policy()))
    assert first.created
    assert list(first.policy.warning_percents) == [50, 80]
    again = await sla.stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(request_id="r-1", policy=a_policy()))
    assert (again.created, again.policy.id, again.policy.name) == (False, first.policy.id, "VIP complaints")
    await expect_error(
        sla.stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(request_id="r-1", policy=a_policy(name="x"))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "idempotency_key_reused",
    )
    appended = await sla.stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(request_id="r-2", policy=a_policy(position=0)))
    assert appended.policy.position == 110  # after the last one

    page = await sla.stub.ListSlaPolicies(pb.ListSlaPoliciesRequest(page_size=2))
    assert [p.name for p in page.policies] == ["VIP complaints", "Urgent"]
    rest = await sla.stub.ListSlaPolicies(pb.ListSlaPoliciesRequest(page_size=2, page_token=page.next_page_token))
    assert [p.position for p in rest.policies] == [100, 110]

    changed = a_policy(id=first.policy.id, version=1, name="VIP complaints (faster)", position=0)
    updated = await sla.stub.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(policy=changed))
    assert (updated.policy.version, updated.policy.name, updated.policy.position) == (2, changed.name, 5)
    await expect_error(
        sla.stub.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(policy=changed)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "version_conflict",
    )
    missing = a_policy(id=str(uuid.uuid4()))
    await expect_error(
        sla.stub.UpdateSlaPolicy(pb.UpdateSlaPolicyRequest(policy=missing)),
        grpc.StatusCode.NOT_FOUND,
        "policy_not_found",
    )
    await sla.stub.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(policy_id=first.policy.id))
    await expect_error(
        sla.stub.DeleteSlaPolicy(pb.DeleteSlaPolicyRequest(policy_id=first.policy.id)),
        grpc.StatusCode.NOT_FOUND,
        "policy_not_found",
    )


async def test_invalid_policies_and_calendars_are_refused_with_stable_codes(sla: Sla) -> None:
    invalid = [
        a_policy(name=""),
        a_policy(targets=[]),
        a_policy(targets=[sla_pb2.SlaTarget(metric=sla_pb2.SLA_METRIC_FIRST_RESPONSE, target=minutes(0))]),
        a_policy(targets=[sla_pb2.SlaTarget(target=minutes(1))]),
        a_policy(warning_percents=[100]),
        a_policy(match=sla_pb2.SlaMatch(priorities=[99])),  # type: ignore[list-item]
    ]
    for n, policy in enumerate(invalid):
        await expect_error(
            sla.stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(request_id=f"bad-{n}", policy=policy)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_argument",
        )
    await expect_error(
        sla.stub.CreateSlaPolicy(
            pb.CreateSlaPolicyRequest(request_id="cal", policy=a_policy(calendar_id=str(uuid.uuid4())))
        ),
        grpc.StatusCode.NOT_FOUND,
        "calendar_not_found",
    )
    mars = sla_pb2.BusinessCalendar(name="Mars", time_zone="Mars/Olympus_Mons", hours=SHANGHAI_WEEKDAYS.hours)
    await expect_error(
        sla.stub.CreateCalendar(pb.CreateCalendarRequest(request_id="mars", calendar=mars)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown_time_zone",
    )
    closed = sla_pb2.BusinessCalendar(name="Closed", time_zone="UTC")
    await expect_error(
        sla.stub.CreateCalendar(pb.CreateCalendarRequest(request_id="closed", calendar=closed)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
    await expect_error(
        sla.stub.UpdateCalendar(
            pb.UpdateCalendarRequest(
                calendar=sla_pb2.BusinessCalendar(
                    id=str(uuid.uuid4()), name="x", time_zone="UTC", hours=SHANGHAI_WEEKDAYS.hours
                )
            )
        ),
        grpc.StatusCode.NOT_FOUND,
        "calendar_not_found",
    )
    assert len((await sla.stub.ListSlaPolicies(pb.ListSlaPoliciesRequest())).policies) == 2


async def test_calendars_and_a_business_hours_policy_drive_a_tickets_deadline(sla: Sla) -> None:
    made = await sla.stub.CreateCalendar(pb.CreateCalendarRequest(request_id="sh", calendar=SHANGHAI_WEEKDAYS))
    assert made.created
    assert made.calendar.version == 1
    assert list(made.calendar.holidays) == ["2026-10-01", "2026-10-02"]
    assert (
        await sla.stub.CreateCalendar(pb.CreateCalendarRequest(request_id="sh", calendar=SHANGHAI_WEEKDAYS))
    ).created is False
    edited = sla_pb2.BusinessCalendar()
    edited.CopyFrom(made.calendar)
    edited.holidays.append("2026-10-05")
    updated = await sla.stub.UpdateCalendar(pb.UpdateCalendarRequest(calendar=edited))
    assert updated.calendar.version == 2
    await expect_error(
        sla.stub.UpdateCalendar(pb.UpdateCalendarRequest(calendar=edited)),
        grpc.StatusCode.FAILED_PRECONDITION,
        "version_conflict",
    )
    listed = await sla.stub.ListCalendars(pb.ListCalendarsRequest())
    assert [c.name for c in listed.calendars] == ["Shanghai office"]

    business = a_policy(
        position=1,
        match=sla_pb2.SlaMatch(categories=["bank_card"]),
        targets=[sla_pb2.SlaTarget(metric=sla_pb2.SLA_METRIC_FIRST_RESPONSE, target=minutes(240))],
        calendar_id=made.calendar.id,
    )
    await sla.stub.CreateSlaPolicy(pb.CreateSlaPolicyRequest(request_id="biz", policy=business))
    ticket = uuid.uuid4()
    at = await db_now(sla.pool)
    await deliver(sla.pool, created(ticket, at, category="bank_card"))

    clocks = (await sla.stub.GetTicketSla(pb.GetTicketSlaRequest(ticket_id=str(ticket)))).clocks
    assert [c.metric for c in clocks] == [sla_pb2.SLA_METRIC_FIRST_RESPONSE]
    hours = BusinessHours(
        CalendarSpec(
            "Shanghai office",
            "Asia/Shanghai",
            tuple(OpeningHours(d, 9 * 60, 18 * 60) for d in range(1, 6)),
            (date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 5)),
        )
    )
    assert clocks[0].deadline.ToDatetime().timestamp() == pytest.approx(hours.add(at, 4 * 60 * MIN).timestamp())
    assert clocks[0].state == sla_pb2.SLA_CLOCK_STATE_RUNNING
    assert clocks[0].target.ToTimedelta() == 240 * MIN


async def test_get_ticket_sla_lists_every_clock(sla: Sla) -> None:
    ticket = uuid.uuid4()
    at = await db_now(sla.pool)
    await deliver(
        sla.pool,
        created(ticket, at, priority="urgent"),
        message(ticket, 2, "agent", at + MIN),
        message(ticket, 3, "customer", at + 2 * MIN),
    )
    clocks = (await sla.stub.GetTicketSla(pb.GetTicketSlaRequest(ticket_id=str(ticket)))).clocks
    by_metric = {c.metric: c for c in clocks}
    assert len(clocks) == 3
    first = by_metric[sla_pb2.SLA_METRIC_FIRST_RESPONSE]
    assert (first.state, first.breached, first.priority) == (
        sla_pb2.SLA_CLOCK_STATE_FULFILLED,
        False,
        common_pb2.PRIORITY_URGENT,
    )
    assert first.queue == "payments"
    assert by_metric[sla_pb2.SLA_METRIC_NEXT_RESPONSE].state == sla_pb2.SLA_CLOCK_STATE_RUNNING
    assert (await sla.stub.GetTicketSla(pb.GetTicketSlaRequest(ticket_id=str(uuid.uuid4())))).clocks == []
    await expect_error(
        sla.stub.GetTicketSla(pb.GetTicketSlaRequest(ticket_id="nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )


async def test_stats_report_attainment_percentiles_and_clocks_at_risk(sla: Sla) -> None:
    now = await db_now(sla.pool)
    start = now - 60 * MIN
    replies = [1, 2, 8]  # minutes after creation: met, met, late (5 min target)
    for n, after in enumerate(replies):
        ticket = uuid.uuid4()
        await deliver(
            sla.pool, created(ticket, start + n * MIN), message(ticket, 2, "agent", start + (n + after) * MIN)
        )
    at_risk = uuid.uuid4()
    await deliver(sla.pool, created(at_risk, now - 4.5 * MIN))  # 90 % of 5 min elapsed, no reply
    elsewhere = uuid.uuid4()
    await deliver(sla.pool, created(elsewhere, start, category="complaint"), message(elsewhere, 2, "agent", start))

    request = pb.GetSlaStatsRequest(policy_id=DEFAULT_POLICY, queue="payments", start_time=timestamp(start))
    stats = {s.metric: s for s in (await sla.stub.GetSlaStats(request)).stats}
    first = stats[sla_pb2.SLA_METRIC_FIRST_RESPONSE]
    assert (first.policy_id, first.queue) == (DEFAULT_POLICY, "payments")
    assert (first.completed, first.met, first.breached, first.at_risk) == (3, 2, 1, 1)
    assert first.attainment_percent == pytest.approx(200 / 3)
    assert (first.p50.ToTimedelta(), first.p90.ToTimedelta(), first.p99.ToTimedelta()) == (2 * MIN, 8 * MIN, 8 * MIN)
    resolution = stats[sla_pb2.SLA_METRIC_RESOLUTION]
    assert (resolution.completed, resolution.attainment_percent, resolution.at_risk) == (0, 100.0, 0)

    everything = (await sla.stub.GetSlaStats(pb.GetSlaStatsRequest())).stats
    assert {s.queue for s in everything} == {"payments", "complaints"}
    later = pb.GetSlaStatsRequest(start_time=timestamp(now + MIN), end_time=timestamp(now + 2 * MIN))
    assert (await sla.stub.GetSlaStats(later)).stats == []
    await expect_error(
        sla.stub.GetSlaStats(pb.GetSlaStatsRequest(start_time=timestamp(now), end_time=timestamp(start))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_argument",
    )
