"""An agent's day through the real gateway, ticketing and routing: profile, presence, offer, accept, assignment."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.js import JetStreamContext

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.kit.bus.consumer import EventConsumer
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import declare_consumer
from services.kit.grpc_server import GrpcServer
from services.kit.service import Runtime, ServiceDefinition
from services.kit.settings import ServiceSettings
from services.routing.__main__ import DEFINITION as ROUTING
from services.ticketing.__main__ import TicketingSettings, definition
from tests.integration.bus_fixtures import BUS, migrated_pool
from tests.integration.test_gateway_help import Auth, assert_problem, auth, dead_address

pytestmark = pytest.mark.integration

__all__ = ["auth"]


@contextlib.asynccontextmanager
async def running(service: ServiceDefinition, settings: ServiceSettings, js: JetStreamContext) -> AsyncIterator[str]:
    """One service as its process would run it: gRPC, outbox relay, consumers and workers; yields its address."""
    pool = await migrated_pool(settings.database_url, service.schema, service.package)
    runtime = Runtime(settings=settings, pool=pool, js=js)
    server = GrpcServer("127.0.0.1", 0, lambda s: service.register(s, runtime), service.grpc_services)
    await server.start()
    tasks = [asyncio.create_task(OutboxRelay(pool, js, service.schema, on_published=service.on_published).run())]
    for spec, handler in service.consumers(runtime):
        await declare_consumer(js, spec, BUS)
        tasks.append(asyncio.create_task(EventConsumer(js, pool, spec, handler, max_deliver=5).run()))
    tasks += [asyncio.create_task(work()) for work in service.workers(runtime)]
    try:
        yield server.address
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop(0)
        await pool.close()


@pytest.fixture
async def gateway(tmp_path: Path, fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[httpx.AsyncClient]:
    settings = TicketingSettings(database_url=fresh_database_url)
    async with (
        running(definition(settings), settings, js) as ticketing,
        running(ROUTING, ServiceSettings(database_url=fresh_database_url), js) as routing,
    ):
        app: FastAPI = create_app(
            GatewaySettings(
                data_dir=tmp_path, ticketing_addr=ticketing, routing_addr=routing, notify_addr=dead_address()
            )
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
        ):
            yield client


DEADLINE_S = 20.0


async def until(check: Any, what: str) -> Any:
    """The first truthy result of ``check()``; fail if none comes before the deadline."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


AGENT = {
    "agent_id": "a-1",
    "display_name": "Li Lei",
    "skills": [{"name": "payments", "proficiency": 5}],
    "languages": ["en", "zh"],
    "capacity": 2,
}


async def test_an_agent_is_offered_a_ticket_accepts_it_and_holds_it(gateway: httpx.AsyncClient, auth: Auth) -> None:
    admin, agent, customer = auth("admin", "ad-1"), auth("agent", "a-1"), auth("customer", "c-1")
    key = {"Idempotency-Key": str(uuid.uuid4())}
    created = await gateway.post("/v1/agents", json=AGENT, headers={**admin, **key})
    again = await gateway.post("/v1/agents", json=AGENT, headers={**admin, **key})
    assert (created.status_code, again.status_code) == (201, 200), created.text
    assert created.json()["presence"] == "offline"
    assert_problem(
        await gateway.put("/v1/agents/a-1/presence", json={"presence": "available"}, headers=auth("agent", "a-2")),
        403,
        "not_your_agent_profile",
    )
    available = await gateway.put("/v1/agents/a-1/presence", json={"presence": "available"}, headers=agent)
    assert available.json()["presence"] == "available", available.text

    ticket = await gateway.post(
        "/v1/tickets",
        json={"channel": "app", "category": "payment_failed", "subject": "Payment failed", "language": "en"},
        headers=customer,
    )
    tid = ticket.json()["id"]

    async def pending_offer() -> list[dict[str, Any]]:
        page = await gateway.get("/v1/agents/a-1/offers", params={"state": "pending"}, headers=agent)
        return [o for o in page.json()["offers"] if o["ticket_id"] == tid]

    [offer] = await until(pending_offer, "the offer")
    assert offer["queue"] == "payments"
    assert_problem(
        await gateway.post(f"/v1/offers/{offer['id']}/accept", headers=auth("agent", "a-2")), 403, "not_offer_agent"
    )
    accepted = await gateway.post(f"/v1/offers/{offer['id']}/accept", headers=agent)
    assert accepted.json()["state"] == "accepted", accepted.text
    assert_problem(await gateway.post(f"/v1/offers/{offer['id']}/accept", headers=agent), 409, "offer_not_pending")

    async def held() -> bool:
        got = (await gateway.get(f"/v1/tickets/{tid}", headers=customer)).json()
        return bool(got["assignee_id"] == "a-1" and got["status"] == "open")

    await until(held, "ticketing to record the assignment")
    entry = (await gateway.get(f"/v1/tickets/{tid}/routing", headers=auth("supervisor", "s-1"))).json()
    assert (entry["state"], entry["agent_id"]) == ("assigned", "a-1")
    mine = (await gateway.get("/v1/tickets", headers=agent)).json()["tickets"]
    assert [t["id"] for t in mine] == [tid]
    profile = (await gateway.get("/v1/agents/a-1", headers=agent)).json()
    assert profile["active_tickets"] == 1


async def test_a_supervisor_transfers_and_validation_is_strict(gateway: httpx.AsyncClient, auth: Auth) -> None:
    supervisor = auth("supervisor", "s-1")
    assert_problem(await gateway.post("/v1/agents", json=AGENT, headers=auth("agent", "a-1")), 403, "forbidden")
    bad = {**AGENT, "skills": [{"name": "payments", "proficiency": 9}]}
    assert_problem(await gateway.post("/v1/agents", json=bad, headers=supervisor), 422, "validation_failed")
    tid = (
        await gateway.post(
            "/v1/tickets",
            json={"channel": "web", "category": "bank_card", "subject": "Card", "language": "en"},
            headers=auth("customer", "c-3"),
        )
    ).json()["id"]

    async def queued() -> bool:
        return (await gateway.get(f"/v1/tickets/{tid}/routing", headers=supervisor)).status_code == 200

    await until(queued, "routing to queue the ticket")
    both = {"to_agent_id": "a-1", "to_queue": "general"}
    assert_problem(
        await gateway.post(f"/v1/tickets/{tid}/transfer", json=both, headers=supervisor), 422, "one_destination"
    )
    moved = await gateway.post(f"/v1/tickets/{tid}/transfer", json={"to_queue": "complaints"}, headers=supervisor)
    assert moved.status_code == 200, moved.text
    assert moved.json()["queue"] == "complaints"
