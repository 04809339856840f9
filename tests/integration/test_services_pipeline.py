"""Ticketing over gRPC, its outbox through JetStream, and routing and notify consuming the event."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from nats.js import JetStreamContext
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support.common.v1 import common_pb2
from support.ticketing.v1 import ticket_pb2, ticketing_service_pb2, ticketing_service_pb2_grpc

from services.kit.bus.consumer import EventConsumer
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import declare_consumer
from services.kit.grpc_server import GrpcServer
from services.notify import __main__ as notify_main
from services.notify import service as notify_service
from services.routing import __main__ as routing_main
from services.routing import consumers as routing_consumers
from services.runtime.probe import grpc_serving
from services.ticketing.api import SERVICE_NAME, TicketingApi
from services.ticketing.service import TicketingService
from tests.integration.bus_fixtures import BUS, migrated_pool, stream_messages
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass
class System:
    channel: grpc.aio.Channel
    stub: ticketing_service_pb2_grpc.TicketingServiceStub
    ticketing: asyncpg.Pool
    routing: asyncpg.Pool
    notify: asyncpg.Pool


@pytest.fixture
async def system(fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[System]:
    pools = {
        name: await migrated_pool(fresh_database_url, name, f"services.{name}")
        for name in ("ticketing", "routing", "notify")
    }
    server = GrpcServer(
        "127.0.0.1",
        0,
        lambda s: ticketing_service_pb2_grpc.add_TicketingServiceServicer_to_server(
            TicketingApi(TicketingService(pools["ticketing"], reopen_window=timedelta(days=7))), s
        ),
        [SERVICE_NAME],
    )
    await server.start()
    workers = [asyncio.create_task(OutboxRelay(pools[n], js, n).run()) for n in pools]
    for spec, pool, handler in (
        (routing_main.TICKET_EVENTS, pools["routing"], routing_consumers.on_ticket_event),
        (notify_main.TICKET_EVENTS, pools["notify"], notify_service.EventHandler(email_enabled=False)),
    ):
        await declare_consumer(js, spec, BUS)
        workers.append(asyncio.create_task(EventConsumer(js, pool, spec, handler, max_deliver=3).run()))
    channel = grpc.aio.insecure_channel(server.address)
    yield System(
        channel,
        ticketing_service_pb2_grpc.TicketingServiceStub(channel),
        pools["ticketing"],
        pools["routing"],
        pools["notify"],
    )
    await channel.close()
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    await server.stop(0)
    for pool in pools.values():
        await pool.close()


def create_request(request_id: str, **overrides: object) -> ticketing_service_pb2.CreateTicketRequest:
    fields: dict[str, object] = {
        "request_id": request_id,
        "customer_id": "c-1",
        "channel": ticket_pb2.CHANNEL_APP,
        "category": ticket_pb2.CATEGORY_PAYMENT_FAILED,
        "subject": "付款失败",
        "description": "扫码付款时提示错误 51",
        "language": "zh",
    }
    fields.update(overrides)
    return ticketing_service_pb2.CreateTicketRequest(**fields)  # type: ignore[arg-type]


def error_reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


async def test_create_is_idempotent_per_request_id(system: System, js: JetStreamContext) -> None:
    key = str(uuid.uuid4())
    first = await system.stub.CreateTicket(create_request(key))
    retry = await system.stub.CreateTicket(create_request(key))
    other = await system.stub.CreateTicket(create_request(str(uuid.uuid4())))
    assert first.created
    assert not retry.created
    assert other.created
    assert retry.ticket == first.ticket
    assert other.ticket.id != first.ticket.id
    assert first.ticket.priority == common_pb2.PRIORITY_URGENT  # derived from payment_failed
    assert first.ticket.status == ticket_pb2.TICKET_STATUS_NEW
    assert first.ticket.version == 1

    async def two_events() -> bool:
        return (await js.stream_info("TICKETING")).state.messages == 2

    await eventually(two_events, what="one event per created ticket")
    subjects = {m.headers["ce-subject"] for m in await stream_messages(js, "TICKETING") if m.headers}
    assert subjects == {first.ticket.id, other.ticket.id}
    assert await system.ticketing.fetchval("SELECT count(*) FROM tickets") == 2


async def test_created_ticket_is_queued_by_routing_and_the_customer_is_told(
    system: System, js: JetStreamContext
) -> None:
    created = await system.stub.CreateTicket(create_request(str(uuid.uuid4())))
    ticket_id = uuid.UUID(created.ticket.id)

    async def queued() -> bool:
        return bool(await system.routing.fetchval("SELECT count(*) FROM queue_entries WHERE ticket_id = $1", ticket_id))

    async def notified() -> bool:
        return bool(
            await system.notify.fetchval("SELECT count(*) FROM notifications WHERE ticket_id = $1", str(ticket_id))
        )

    await eventually(queued, what="routing to queue the ticket")
    await eventually(notified, what="notify to record the customer's notification")
    entry = await system.routing.fetchrow("SELECT queue, priority, state, ticket_version FROM queue_entries")
    assert dict(entry) == {"queue": "payments", "priority": "urgent", "state": "waiting", "ticket_version": 1}
    note = await system.notify.fetchrow("SELECT user_id, kind, title FROM notifications")
    assert dict(note) == {"user_id": "c-1", "kind": "ticket.received", "title": "我们已收到您的工单"}

    async def announced() -> bool:
        routing = (await js.stream_info("ROUTING")).state.messages
        notify = (await js.stream_info("NOTIFY")).state.messages
        return routing == 1 and notify == 1

    await eventually(announced, what="routing and notify to publish their own events")


async def test_bad_requests_get_invalid_argument_with_a_stable_reason(system: System) -> None:
    for request in (
        create_request(""),
        create_request("k", category=ticket_pb2.CATEGORY_UNSPECIFIED),
        create_request("k", subject=""),
        create_request("k", channel=99),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.stub.CreateTicket(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(caught.value) == "invalid_argument"
    assert await system.ticketing.fetchval("SELECT count(*) FROM tickets") == 0
    assert await system.ticketing.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_batch_of_creates_is_answered_item_by_item_in_order(
    system: System, js: JetStreamContext, spans: InMemorySpanExporter
) -> None:
    replayed, reused = str(uuid.uuid4()), str(uuid.uuid4())
    original = (await system.stub.CreateTicket(create_request(replayed))).ticket
    await system.stub.CreateTicket(create_request(reused))
    trace_id = uuid.uuid4().hex
    Item = ticketing_service_pb2.BatchCreateTicketsRequest.Item
    batch = ticketing_service_pb2.BatchCreateTicketsRequest(
        items=[
            Item(
                request=create_request(str(uuid.uuid4())),
                trace_context={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
            ),
            Item(request=create_request(str(uuid.uuid4()), channel=ticket_pb2.CHANNEL_UNSPECIFIED)),
            Item(request=create_request(replayed)),
            Item(request=create_request(reused, subject="Something else")),
        ]
    )
    new, invalid, replay, conflict = (await system.stub.BatchCreateTickets(batch)).results

    assert new.response.created
    assert (replay.response.created, replay.response.ticket) == (False, original)
    assert (invalid.WhichOneof("outcome"), conflict.WhichOneof("outcome")) == ("error", "error")
    assert (invalid.error.code, item_reason(invalid.error)) == (
        grpc.StatusCode.INVALID_ARGUMENT.value[0],
        "invalid_argument",
    )
    assert (conflict.error.code, item_reason(conflict.error)) == (
        grpc.StatusCode.FAILED_PRECONDITION.value[0],
        "idempotency_key_reused",
    )
    # The new ticket belongs to the trace its item carried, as a unary call's ticket belongs to the call's.
    timeline_trace = await system.ticketing.fetchval(
        "SELECT trace_id FROM timeline WHERE ticket_id = $1", uuid.UUID(new.response.ticket.id)
    )
    assert timeline_trace == trace_id
    assert await system.ticketing.fetchval("SELECT count(*) FROM tickets") == 3

    async def three_events() -> bool:
        return (await js.stream_info("TICKETING")).state.messages == 3

    await eventually(three_events, what="one event per created ticket, the batch's one included")


async def test_a_batch_holds_one_to_five_hundred_items(system: System) -> None:
    Item = ticketing_service_pb2.BatchCreateTicketsRequest.Item
    for items in ([], [Item(request=create_request(str(uuid.uuid4()))) for _ in range(501)]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.stub.BatchCreateTickets(ticketing_service_pb2.BatchCreateTicketsRequest(items=items))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(caught.value) == "batch_size_invalid"
    assert await system.ticketing.fetchval("SELECT count(*) FROM tickets") == 0


def item_reason(status: status_pb2.Status) -> str:
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == "supportdesk"
    return info.reason


async def test_an_unknown_ticket_is_not_found(system: System) -> None:
    for ticket_id in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await system.stub.GetTicket(ticketing_service_pb2.GetTicketRequest(ticket_id=ticket_id))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "ticket_not_found"


async def test_services_offer_reflection(system: System) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(system.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [response] = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    names = {s.name for s in response.list_services_response.service}
    assert {"support.ticketing.v1.TicketingService", "grpc.health.v1.Health"} <= names


async def test_probe_reports_a_serving_service_and_a_stopped_one() -> None:
    server = GrpcServer("127.0.0.1", 0, lambda _: None, [])
    await server.start()
    assert await grpc_serving(server.address, timeout_s=2)
    await server.stop(0)
    assert not await grpc_serving(server.address, timeout_s=2)
