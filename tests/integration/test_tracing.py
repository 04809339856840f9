"""One trace from the HTTP request through gRPC, the outbox, NATS and every consumer; timers link back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.kit.db import Connection
from services.kit.settings import ServiceSettings
from services.kit.telemetry import instrument_database
from services.notify.__main__ import DEFINITION as NOTIFY
from services.routing import timers
from services.routing.__main__ import DEFINITION as ROUTING
from services.ticketing.__main__ import TicketingSettings, definition
from tests.integration.bus_fixtures import migrated_pool
from tests.integration.test_gateway_agents import AGENT, running
from tests.integration.test_gateway_help import Auth, auth
from tests.waiting import eventually

pytestmark = pytest.mark.integration

__all__ = ["auth"]


@pytest.fixture
def traced_database(spans: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    instrument_database()
    yield spans
    AsyncPGInstrumentor().uninstrument()


@pytest.fixture
async def system(tmp_path: Path, fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway and all three services in this process, each with its relay, consumers and workers."""
    settings = TicketingSettings(database_url=fresh_database_url)
    plain = ServiceSettings(database_url=fresh_database_url)
    async with (
        running(definition(settings), settings, js) as ticketing,
        running(ROUTING, plain, js) as routing,
        running(NOTIFY, plain, js) as notify,
    ):
        app: FastAPI = create_app(
            GatewaySettings(data_dir=tmp_path, ticketing_addr=ticketing, routing_addr=routing, notify_addr=notify)
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
        ):
            yield client


def trace_of(spans: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def consumed_by(spans: Sequence[ReadableSpan]) -> set[tuple[str, str]]:
    return {
        (str(s.attributes.get("messaging.consumer.group.name")), s.name.removeprefix("process "))
        for s in spans
        if s.kind is SpanKind.CONSUMER and s.attributes
    }


async def test_a_ticket_is_one_trace_from_the_request_to_every_consumer(
    system: httpx.AsyncClient, auth: Auth, traced_database: InMemorySpanExporter
) -> None:
    admin, agent = auth("admin", "ad-1"), auth("agent", "a-1")
    assert (await system.post("/v1/agents", json=AGENT, headers=admin)).status_code == 201
    assert (await system.put("/v1/agents/a-1/presence", json={"presence": "available"}, headers=agent)).is_success
    queue = {"direct_assignment": True, "offer_timeout_seconds": 30, "requeue_on_offline": False}
    assert (await system.put("/v1/queues/payments/settings", json=queue, headers=admin)).is_success
    traced_database.clear()

    body = {"channel": "app", "category": "payment_failed", "subject": "Payment failed", "language": "en"}
    created = await system.post(
        "/v1/tickets", json=body, headers={**auth("customer", "c-1"), "Idempotency-Key": str(uuid.uuid4())}
    )
    assert created.status_code == 201, created.text
    [request] = [
        s for s in traced_database.get_finished_spans() if s.kind is SpanKind.SERVER and s.name == "POST /v1/tickets"
    ]
    assert request.context is not None
    trace_id = request.context.trace_id
    expected = {
        ("routing-ticket-events", "support.ticketing.v1.ticket.created"),
        ("notify-ticket-events", "support.ticketing.v1.ticket.created"),
        ("ticketing-routing-events", "support.routing.v1.ticket.assigned"),
        ("routing-ticket-events", "support.ticketing.v1.ticket.assigned"),
    }

    async def every_hop_handled() -> bool:
        return expected <= consumed_by(trace_of(traced_database.get_finished_spans(), trace_id))

    await eventually(every_hop_handled, what="creation, routing, assignment and notification in the request's trace")
    hops = trace_of(traced_database.get_finished_spans(), trace_id)
    names = {s.name for s in hops}
    assert "/support.ticketing.v1.TicketingService/CreateTicket" in names
    assert {"publish support.ticketing.v1.ticket.created", "publish support.routing.v1.ticket.assigned"} <= names
    assert any(s.attributes and s.attributes.get("db.system") == "postgresql" for s in hops), "queries are traced"
    by_id = {s.context.span_id: s for s in hops if s.context is not None}
    create = "/support.ticketing.v1.TicketingService/CreateTicket"
    [served] = [s for s in hops if s.kind is SpanKind.SERVER and s.name == create]
    assert served.parent is not None
    called = by_id[served.parent.span_id]
    assert (called.kind, called.name) == (SpanKind.CLIENT, create), "the RPC is served as a child of the call"
    assert called.parent is not None
    assert by_id[called.parent.span_id] is request, "the call is made inside the HTTP request's span"
    assert served.context is not None
    finished = traced_database.get_finished_spans()
    # The ticket is written by a statement it may share with other creates: a span of its own, linked.
    [written] = [
        s for s in finished if s.name == "ticketing.write_tickets" and served.context in [k.context for k in s.links]
    ]
    assert written.context is not None
    assert any(
        s.parent is not None and s.parent.span_id == written.context.span_id and (s.attributes or {}).get("db.system")
        for s in finished
    ), "the write's statement is traced inside the write's span"
    for span in hops:
        if span.kind is SpanKind.CONSUMER:
            assert span.parent is not None
            publish = by_id[span.parent.span_id]
            assert publish.kind is SpanKind.PRODUCER, "every handling is a child of the publish it received"
            assert span.attributes
            assert span.attributes["cloudevents.event_subject"] == created.json()["id"]


async def test_a_timer_fires_in_a_trace_of_its_own_linked_to_the_one_that_armed_it(
    fresh_database_url: str, spans: InMemorySpanExporter
) -> None:
    pool = await migrated_pool(fresh_database_url, "routing", "services.routing")
    fired: list[str] = []

    async def handler(_: Connection, timer: timers.Timer) -> None:
        fired.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    try:
        with trace.get_tracer(__name__).start_as_current_span("arming request") as arming:
            async with pool.acquire() as conn:
                await timers.arm(conn, kind="test.kind", key="k-1", due_at=datetime.now(UTC))
        scheduler = timers.TimerScheduler(pool, {"test.kind": handler})
        assert await scheduler.fire_due() == 1
    finally:
        await pool.close()
    [firing] = [s for s in spans.get_finished_spans() if s.name == "timer test.kind"]
    assert firing.context is not None
    assert fired == [format(firing.context.trace_id, "032x")]
    assert firing.context.trace_id != arming.get_span_context().trace_id
    assert [link.context.span_id for link in firing.links] == [arming.get_span_context().span_id]
