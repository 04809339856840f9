"""The ops page in a real headless Chromium (Debian's /usr/bin/chromium) against the real gateway and services."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from nats.js import JetStreamContext
from playwright.async_api import Browser, Page, async_playwright, expect

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.kit.settings import ServiceSettings
from services.routing.__main__ import DEFINITION as ROUTING
from services.runtime.processes import free_port
from services.ticketing.__main__ import TicketingSettings, definition
from tests.integration.test_gateway_agents import AGENT, running
from tests.integration.test_gateway_help import Auth, auth, dead_address
from tests.waiting import eventually

# Needs Debian's Chromium, which a machine with only Python lacks: run by `pytest -m browser` (.ci/run).
pytestmark = [pytest.mark.integration, pytest.mark.browser]

__all__ = ["auth"]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE_S = 20_000  # ms: a few poll intervals


@dataclass
class Served:
    url: str
    api: httpx.AsyncClient


@pytest.fixture
async def served(tmp_path: Path, fresh_database_url: str, js: JetStreamContext) -> AsyncIterator[Served]:
    """The gateway on a real HTTP port (a browser needs one), with ticketing and routing behind it."""
    settings = TicketingSettings(database_url=fresh_database_url)
    async with (
        running(definition(settings), settings, js) as ticketing,
        running(ROUTING, ServiceSettings(database_url=fresh_database_url), js) as routing,
    ):
        app = create_app(
            GatewaySettings(
                data_dir=tmp_path, ticketing_addr=ticketing, routing_addr=routing, notify_addr=dead_address()
            )
        )
        port = free_port("127.0.0.1")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
        task = asyncio.create_task(server.serve())

        async def started() -> bool:
            return server.started

        await eventually(started, what="the gateway to listen")
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=url) as api:
                yield Served(url, api)
        finally:
            server.should_exit = True
            await task


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - one stat, before any browser starts
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield launched
        await launched.close()


async def open_ticket(api: httpx.AsyncClient, auth: Auth, customer: str) -> str:
    body = {"channel": "app", "category": "payment_failed", "subject": "Payment failed", "language": "en"}
    headers = {**auth("customer", customer), "Idempotency-Key": str(uuid.uuid4())}
    created = await api.post("/v1/tickets", json=body, headers=headers)
    assert created.status_code == 201, created.text
    tid: str = created.json()["id"]

    async def queued() -> bool:
        return (await api.get(f"/v1/tickets/{tid}/routing", headers=auth("admin", "ad-1"))).status_code == 200

    await eventually(queued, what="routing to queue the ticket")
    return tid


def figure(page: Page, name: str) -> object:
    return page.locator(f'#summary [data-figure="{name}"] .value')


async def test_a_supervisor_watches_queues_and_sla_live(served: Served, browser: Browser, auth: Auth) -> None:
    assert (await served.api.post("/v1/agents", json=AGENT, headers=auth("admin", "ad-1"))).status_code == 201
    await open_ticket(served.api, auth, "c-1")
    page = await browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = await page.goto(f"{served.url}/ops")
    assert response is not None
    assert response.status == 200
    assert "default-src 'none'" in (await response.all_headers())["content-security-policy"]

    # An agent's token is refused with a reason; a supervisor's opens the board.
    await expect(page.locator("#token-form")).to_be_visible()
    await page.fill("#token-input", auth("agent", "a-1")["Authorization"].removeprefix("Bearer "))
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-error")).to_contain_text("supervisor or admin")
    await page.fill("#token-input", auth("supervisor", "s-1")["Authorization"].removeprefix("Bearer "))
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#board")).to_be_visible()
    await expect(page.locator("#token-form")).to_be_hidden()

    await expect(figure(page, "waiting")).to_have_text("1")  # type: ignore[arg-type]
    # Agents by presence at a glance, each agent once: the one agent has not signed in yet.
    for name, count in (("agents_available", "0"), ("agents_busy", "0"), ("agents_away", "0"), ("agents_offline", "1")):
        await expect(figure(page, name)).to_have_text(count)  # type: ignore[arg-type]
    await expect(figure(page, "attainment")).to_have_text("100.0 %")  # type: ignore[arg-type]
    payments = page.locator('#queues tbody tr[data-queue="payments"] td')
    await expect(payments.nth(1)).to_have_text("1")
    await expect(page.locator('#chart-queues rect[data-queue="payments"]')).to_have_count(1)
    await expect(page.locator('#sla tbody tr td:has-text("First response")')).to_have_count(1)

    # Live: a second ticket shows up without a reload, and the trend chart draws a line.
    await open_ticket(served.api, auth, "c-2")
    await expect(figure(page, "waiting")).to_have_text("2", timeout=LIVE_S)  # type: ignore[arg-type]
    await expect(payments.nth(1)).to_have_text("2", timeout=LIVE_S)
    await expect(page.locator("#chart-trend polyline.line-waiting")).to_have_count(1, timeout=LIVE_S)
    assert all(url.startswith(served.url) for url in requested), "the page loads nothing from elsewhere"

    # Forgetting the token returns to the form; a token in the address fragment opens the board and is removed.
    await page.click("#sign-out")
    await expect(page.locator("#token-form")).to_be_visible()
    token = auth("admin", "ad-1")["Authorization"].removeprefix("Bearer ")
    await page.goto(f"{served.url}/ops#token={token}")
    await expect(figure(page, "waiting")).to_have_text("2")  # type: ignore[arg-type]
    assert "#" not in page.url

    # The agent steps away: the presence tiles follow without a reload.
    away = await served.api.put("/v1/agents/a-1/presence", json={"presence": "away"}, headers=auth("agent", "a-1"))
    assert away.is_success, away.text
    await expect(figure(page, "agents_away")).to_have_text("1", timeout=LIVE_S)  # type: ignore[arg-type]
    await expect(figure(page, "agents_offline")).to_have_text("0")  # type: ignore[arg-type]


async def test_the_overview_needs_a_supervisor_and_sums_every_queue(served: Served, auth: Auth) -> None:
    assert (await served.api.get("/v1/ops/overview")).status_code == 401
    refused = await served.api.get("/v1/ops/overview", headers=auth("agent", "a-1"))
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    one_seat = {**AGENT, "capacity": 1}
    assert (await served.api.post("/v1/agents", json=one_seat, headers=auth("admin", "ad-1"))).status_code == 201
    await open_ticket(served.api, auth, "c-3")
    body = (await served.api.get("/v1/ops/overview", headers=auth("supervisor", "s-1"))).json()
    assert body["agents"] == {"available": 0, "busy": 0, "away": 0, "offline": 1}
    assert (body["waiting"], body["sla_window_seconds"]) == (1, 86400)
    totals = [s for s in body["sla"] if s["queue"] is None]
    assert [(s["metric"], s["completed"], s["breached"]) for s in totals] == [
        ("first_response", 0, 0),
        ("resolution", 0, 0),
    ]
    assert "payments" in [q["queue"] for q in body["queues"]]

    # Signed in, the agent is offered the waiting ticket and so is at capacity: busy, not available.
    signed_in = await served.api.put(
        "/v1/agents/a-1/presence", json={"presence": "available"}, headers=auth("agent", "a-1")
    )
    assert signed_in.is_success, signed_in.text

    async def busy() -> bool:
        now = (await served.api.get("/v1/ops/overview", headers=auth("supervisor", "s-1"))).json()
        return bool(now["agents"] == {"available": 0, "busy": 1, "away": 0, "offline": 0})

    await eventually(busy, what="the agent to be offered the ticket and counted busy")
