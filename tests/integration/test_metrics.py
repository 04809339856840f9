"""Every service's metrics, scraped in Prometheus text format, move as tickets, offers and events do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from nats.js import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from services.kit import metrics
from services.kit.bus.gauges import bus_samplers
from services.kit.db import create_pool
from services.kit.metrics import Sample
from services.kit.metrics_http import MetricsEndpoint
from services.notify.__main__ import TICKET_EVENTS as NOTIFY_EVENTS
from services.routing import metrics as routing_metrics
from services.routing.__main__ import TICKET_EVENTS as ROUTING_EVENTS
from tests.integration.test_gateway_agents import AGENT
from tests.integration.test_gateway_help import Auth, auth
from tests.integration.test_tracing import system
from tests.waiting import eventually

pytestmark = pytest.mark.integration

__all__ = ["auth", "system"]

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
CARD = "4111 1111 1111 1111"


async def scrape(client: httpx.AsyncClient, path: str = "/metrics") -> Series:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def routing_pool(fresh_database_url: str, system: httpx.AsyncClient) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(fresh_database_url, schema="routing", application="test", min_size=1, max_size=2)
    yield pool
    await pool.close()


async def sample_all(samplers: list[tuple[str, Sample]]) -> None:
    for _, sample in samplers:
        await sample()


async def test_series_move_with_tickets_offers_and_events(
    system: httpx.AsyncClient, auth: Auth, routing_pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    admin, agent, customer = auth("admin", "ad-1"), auth("agent", "a-1"), auth("customer", "c-1")
    samplers = routing_metrics.samplers(routing_pool) + bus_samplers(
        routing_pool, js, "routing", [ROUTING_EVENTS, NOTIFY_EVENTS]
    )
    before = await scrape(system)
    assert (await system.post("/v1/agents", json=AGENT, headers=admin)).status_code == 201
    body = {"channel": "app", "category": "payment_failed", "subject": "Payment failed", "language": "en"}
    created = await system.post(
        "/v1/tickets",
        json={**body, "description": f"card {CARD} was declined"},
        headers={**customer, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    assert (await system.get(f"/v1/tickets/{uuid.uuid4()}", headers=customer)).status_code == 404

    async def queued() -> bool:
        return (await system.get(f"/v1/tickets/{tid}/routing", headers=admin)).status_code == 200

    await eventually(queued, what="routing to queue the ticket")
    await sample_all(samplers)
    waiting = await scrape(system)
    assert value(waiting, "supportdesk_queue_waiting_tickets", queue="payments") == 1
    assert value(waiting, "supportdesk_queue_longest_wait_seconds", queue="payments") > 0
    # An urgent payment first needs payments >= 4: the ticket waits under that skill too.
    assert value(waiting, "supportdesk_skill_waiting_tickets", skill="payments") == 1
    assert value(waiting, "supportdesk_skill_longest_wait_seconds", skill="payments") > 0
    assert value(waiting, "supportdesk_agents", presence="offline") == 1
    assert value(waiting, "supportdesk_sla_running_clocks", metric="first_response", status="on_track") == 1
    assert value(waiting, "supportdesk_consumer_pending_messages", consumer="routing-ticket-events") == 0

    assert (await system.put("/v1/agents/a-1/presence", json={"presence": "available"}, headers=agent)).is_success

    async def offer() -> list[dict[str, Any]]:
        page = await system.get("/v1/agents/a-1/offers", params={"state": "pending"}, headers=agent)
        return list(page.json()["offers"])

    await eventually(offer, what="the offer")
    [pending] = await offer()
    assert (await system.post(f"/v1/offers/{pending['id']}/accept", headers=agent)).is_success

    async def held() -> bool:
        return bool((await system.get(f"/v1/tickets/{tid}", headers=customer)).json()["assignee_id"] == "a-1")

    await eventually(held, what="ticketing to record the assignment")
    reply = await system.post(f"/v1/tickets/{tid}/messages", json={"body": "Looking into it"}, headers=agent)
    assert reply.status_code == 201, reply.text

    async def first_response_counted() -> bool:
        after = await scrape(system)
        return value(after, "supportdesk_sla_met_total", metric="first_response", queue="payments") > value(
            before, "supportdesk_sla_met_total", metric="first_response", queue="payments"
        )

    await eventually(first_response_counted, what="the first response to be met and counted")
    await sample_all(samplers)
    after = await scrape(system)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("supportdesk_http_requests_total", method="POST", route="/v1/tickets", status="201") == 1
    assert moved("supportdesk_http_requests_total", method="GET", route="/v1/tickets/{ticket_id}", status="404") == 1
    assert moved("supportdesk_http_request_duration_seconds_count", method="POST", route="/v1/tickets") == 1
    create_rpc = {"grpc_service": "support.ticketing.v1.TicketingService", "grpc_method": "CreateTicket"}
    assert moved("supportdesk_grpc_server_handled_total", **create_rpc, grpc_code="OK") == 1
    assert (
        moved(
            "supportdesk_grpc_server_handled_total", **{**create_rpc, "grpc_method": "GetTicket"}, grpc_code="NOT_FOUND"
        )
        >= 1
    )
    assert moved("supportdesk_grpc_server_handling_seconds_count", **create_rpc) == 1
    assert moved("supportdesk_offers_total", queue="payments", outcome="created") == 1
    assert moved("supportdesk_offers_total", queue="payments", outcome="accepted") == 1
    assert moved("supportdesk_first_response_seconds_count", queue="payments", priority="urgent") == 1
    assert moved("supportdesk_redactions_total", kind="card_number") == 1
    ticket_created = {"service": "ticketing", "event_type": "support.ticketing.v1.ticket.created"}
    assert moved("supportdesk_events_published_total", **ticket_created) == 1
    # notify consumes every ticket event (created, flagged, assigned, messages...), some maybe still in flight here.
    assert moved("supportdesk_events_handled_total", consumer="notify-ticket-events", outcome="applied") >= 1
    assert moved("supportdesk_event_age_seconds_count", consumer="notify-ticket-events") >= 1
    assert value(after, "supportdesk_queue_waiting_tickets", queue="payments") == 0
    assert ("supportdesk_skill_waiting_tickets", frozenset({("skill", "payments")})) in after  # still reported
    assert value(after, "supportdesk_skill_waiting_tickets", skill="payments") == 0
    assert value(after, "supportdesk_skill_longest_wait_seconds", skill="payments") == 0
    assert value(after, "supportdesk_agents", presence="available") == 1
    assert value(after, "supportdesk_sla_running_clocks", metric="first_response", status="on_track") == 0
    assert value(after, "supportdesk_outbox_unpublished_events", service="routing") == 0
    assert value(after, "supportdesk_outbox_oldest_unpublished_age_seconds", service="routing") == 0
    for series, _ in after:
        assert tid not in str(series), "no ticket id in any label"


async def test_poison_is_counted_as_a_dead_letter(
    system: httpx.AsyncClient, routing_pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    before = await scrape(system)
    await js.publish("support.ticketing.v1.ticket.created", b"not an event")
    samplers = bus_samplers(routing_pool, js, "routing", [ROUTING_EVENTS])

    def letters(series: Series, consumer: str) -> float:
        return value(series, "supportdesk_dead_letters_total", consumer=consumer)

    async def dead_lettered() -> bool:
        await sample_all(samplers)
        now = await scrape(system)
        counted = all(
            letters(now, c) - letters(before, c) == 1 for c in ("routing-ticket-events", "notify-ticket-events")
        )
        return counted and value(now, "supportdesk_dead_letters_unreplayed", consumer="routing-ticket-events") == 1

    await eventually(dead_lettered, what="the poison message to be dead-lettered and counted by both consumers")
    handled = await scrape(system)
    assert (
        value(handled, "supportdesk_events_handled_total", consumer="routing-ticket-events", outcome="dead_lettered")
        >= 1
    )


async def test_a_service_serves_its_metrics_on_its_own_port() -> None:
    metrics.OUTBOX_UNPUBLISHED.labels("endpoint-test").set(3)
    endpoint = MetricsEndpoint("127.0.0.1", 0)
    try:
        assert endpoint.port > 0
        async with httpx.AsyncClient(base_url=f"http://{endpoint.address}") as client:
            series = await scrape(client)
    finally:
        endpoint.close()
        metrics.OUTBOX_UNPUBLISHED.remove("endpoint-test")
    assert value(series, "supportdesk_outbox_unpublished_events", service="endpoint-test") == 3
