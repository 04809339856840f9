"""``/v1/stream`` and the notification endpoints through a real uvicorn gateway, real notify and ticketing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import load_or_create_local_secret, mint_local_token
from services.kit.grpc_server import GrpcServer
from services.kit.service import Runtime
from services.notify.__main__ import DEFINITION as NOTIFY
from services.ticketing.__main__ import TicketingSettings, definition
from tests.integration import notify_events as ev
from tests.integration.bus_fixtures import migrated_pool
from tests.integration.notify_fixtures import free_port, notify_settings, running_notify
from tests.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass
class Gateway:
    http: httpx.AsyncClient
    ws_url: str
    secret: bytes
    publish: Any

    def token(self, role: str, subject: str) -> str:
        return mint_local_token(
            self.secret, role=role, subject=subject, issuer="supportdesk-local", audience="supportdesk"
        )

    def auth(self, role: str, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject)}"}


@pytest.fixture
async def gateway(
    tmp_path: Path, fresh_database_url: str, nats_url: str, js: JetStreamContext
) -> AsyncIterator[Gateway]:
    settings = notify_settings(fresh_database_url, free_port())
    async with running_notify(fresh_database_url, js, settings) as notify:
        runtime = Runtime(settings=settings, pool=notify.pool, js=js)
        notify_server = GrpcServer("127.0.0.1", 0, lambda s: NOTIFY.register(s, runtime), NOTIFY.grpc_services)
        ticketing_pool = await migrated_pool(fresh_database_url, "ticketing", "services.ticketing")
        ticketing_settings = TicketingSettings(database_url=fresh_database_url)
        ticketing = definition(ticketing_settings)
        t_runtime = Runtime(settings=ticketing_settings, pool=ticketing_pool, js=js)
        ticketing_server = GrpcServer(
            "127.0.0.1", 0, lambda s: ticketing.register(s, t_runtime), ticketing.grpc_services
        )
        await notify_server.start()
        await ticketing_server.start()
        port = free_port()
        app = create_app(
            GatewaySettings(
                data_dir=tmp_path,
                notify_addr=notify_server.address,
                ticketing_addr=ticketing_server.address,
                routing_addr=f"127.0.0.1:{free_port()}",
                nats_url=nats_url,
            )
        )
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
        task = asyncio.create_task(server.serve())

        async def ready() -> bool:
            return server.started and app.state.stream_hub.available

        await eventually(ready, what="the gateway to listen and reach NATS")
        secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            yield Gateway(http, f"ws://127.0.0.1:{port}/v1/stream", secret, notify.publish)
        server.should_exit = True
        await task
        await notify_server.stop(0)
        await ticketing_server.stop(0)
        await ticketing_pool.close()


async def next_frame(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return frame


async def test_live_events_then_resume_after_reconnect(gateway: Gateway) -> None:
    url = f"{gateway.ws_url}?access_token={gateway.token('agent', 'a-1')}"
    tid = str(uuid.uuid4())
    async with connect(url) as ws:
        await gateway.publish(ev.offer_created(tid, "a-1"))
        await gateway.publish(ev.offer_created(tid, "a-2"))  # someone else's: never on this socket
        first = await next_frame(ws)
    assert (first["type"], first["data"]["kind"]) == ("notification.created", "offer.received")
    assert first["data"]["data"]["queue"] == "payments"

    # Offline: two more arrive, kept in the inbox.
    await gateway.publish(ev.offer_created(str(uuid.uuid4()), "a-1"))
    await gateway.publish(ev.offer_created(str(uuid.uuid4()), "a-1"))

    async def kept() -> bool:
        page = (await gateway.http.get("/v1/notifications", headers=gateway.auth("agent", "a-1"))).json()
        return len(page["notifications"]) == 3

    await eventually(kept, what="the missed notifications in the inbox")
    # Through the subprotocol this time, resuming after the last frame seen.
    async with connect(
        f"{gateway.ws_url}?last_event_id={first['event_id']}", subprotocols=["bearer", gateway.token("agent", "a-1")]
    ) as ws:
        missed = [await next_frame(ws), await next_frame(ws)]
        await gateway.publish(ev.offer_created(str(uuid.uuid4()), "a-1"))
        live = await next_frame(ws)
    ids = {f["event_id"] for f in [*missed, live]}
    assert len(ids) == 3
    assert first["event_id"] not in ids

    # Each push is a delivery record too: the four to a-1 and the one to a-2, once each.
    admin = gateway.auth("admin", "ad-1")

    async def recorded() -> list[dict[str, Any]]:
        page = await gateway.http.get("/v1/deliveries", params={"channel": "in_app"}, headers=admin)
        return [d for d in page.json()["deliveries"] if d["status"] == "delivered"]

    async def five() -> bool:
        return len(await recorded()) == 5

    await eventually(five, what="five in-app deliveries recorded")
    pushes = await recorded()
    assert sorted(d["target"] for d in pushes) == ["a-1"] * 4 + ["a-2"]
    assert all(d["attempt_count"] == 1 and d["latency_ms"] is not None for d in pushes)
    one = await gateway.http.get(f"/v1/deliveries/{pushes[0]['id']}", headers=admin)
    assert len(one.json()["attempts"]) == 1
    refused = await gateway.http.post(f"/v1/deliveries/{pushes[0]['id']}/replay", headers=admin)
    assert (refused.status_code, refused.json()["code"]) == (409, "delivery_not_replayable")


async def test_supervisors_share_an_audience_and_bad_tokens_are_refused(gateway: Gateway) -> None:
    async with (
        connect(f"{gateway.ws_url}?access_token={gateway.token('supervisor', 's-1')}") as one,
        connect(f"{gateway.ws_url}?access_token={gateway.token('supervisor', 's-2')}") as two,
    ):
        await gateway.publish(ev.sla_breached(str(uuid.uuid4())))
        assert (await next_frame(one))["data"]["kind"] == "sla.breached"
        assert (await next_frame(two))["data"]["kind"] == "sla.breached"
    with pytest.raises(InvalidStatus):
        async with connect(f"{gateway.ws_url}?access_token=not-a-token"):
            pass


async def test_inbox_read_marks_and_this_wasnt_me(gateway: Gateway) -> None:
    customer = gateway.auth("customer", "c-7")
    await gateway.publish(ev.account_alert("c-7"))

    async def alerted() -> bool:
        page = (await gateway.http.get("/v1/notifications", headers=customer)).json()
        return page["unread_count"] == 1

    await eventually(alerted, what="the security alert in the inbox")
    [alert] = (await gateway.http.get("/v1/notifications", headers=customer)).json()["notifications"]
    assert alert["security"] is True
    assert alert["title"] == "异常登录提醒"
    first = await gateway.http.post(f"/v1/notifications/{alert['id']}/not-me", headers=customer)
    again = await gateway.http.post(f"/v1/notifications/{alert['id']}/not-me", headers=customer)
    assert (first.status_code, again.status_code) == (201, 200), first.text
    ticket = first.json()
    assert (ticket["category"], ticket["priority"], ticket["customer_id"]) == ("suspicious_activity", "urgent", "c-7")
    assert again.json()["id"] == ticket["id"]
    other = await gateway.http.post(f"/v1/notifications/{alert['id']}/not-me", headers=gateway.auth("customer", "c-8"))
    assert (other.status_code, other.json()["code"]) == (404, "notification_not_found")

    marked = await gateway.http.post("/v1/notifications/read", json={"all": True}, headers=customer)
    assert marked.json() == {"marked": 1}
    unread = (await gateway.http.get("/v1/notifications", params={"unread": "true"}, headers=customer)).json()
    assert (unread["notifications"], unread["unread_count"]) == ([], 0)


async def test_webhook_admin_and_preferences(gateway: Gateway) -> None:
    admin = gateway.auth("admin", "ad-1")
    body = {"subscriber": "risk", "url": "https://risk.example/hook", "event_types": ["wallet.>"]}
    key = {"Idempotency-Key": "k-1"}
    created = await gateway.http.post("/v1/webhooks", json=body, headers={**admin, **key})
    retried = await gateway.http.post("/v1/webhooks", json=body, headers={**admin, **key})
    assert (created.status_code, retried.status_code) == (201, 200), created.text
    assert created.json()["secret"].startswith("whsec_")
    hook = created.json()["id"]
    bad = await gateway.http.post("/v1/webhooks", json={**body, "event_types": ["a.>.b"]}, headers=admin)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_argument")
    replaced = await gateway.http.put(
        f"/v1/webhooks/{hook}", json={"url": body["url"], "event_types": [">"], "enabled": False}, headers=admin
    )
    assert (replaced.json()["enabled"], replaced.json()["version"], replaced.json()["secret"]) == (False, 2, None)
    assert (await gateway.http.get("/v1/webhooks", headers=admin)).json()["webhooks"][0]["id"] == hook
    assert (await gateway.http.delete(f"/v1/webhooks/{hook}", headers=admin)).status_code == 204
    assert (await gateway.http.get(f"/v1/webhooks/{hook}", headers=admin)).status_code == 404
    assert (await gateway.http.get("/v1/dead-letters", headers=admin)).json()["deliveries"] == []

    me = gateway.auth("customer", "c-1")
    prefs = {
        "locale": "zh-CN",
        "email": "c1@example.com",
        "quiet_start": "22:00",
        "quiet_end": "07:00",
        "time_zone": "Asia/Shanghai",
    }
    saved = await gateway.http.put("/v1/notifications/preferences", json=prefs, headers=me)
    assert saved.status_code == 200, saved.text
    read = (await gateway.http.get("/v1/notifications/preferences", headers=me)).json()
    assert (read["locale"], read["quiet_start"], read["time_zone"]) == ("zh-CN", "22:00", "Asia/Shanghai")
    wrong = await gateway.http.put("/v1/notifications/preferences", json={"time_zone": "Mars/Base"}, headers=me)
    assert wrong.status_code == 400


async def test_without_nats_the_stream_asks_to_come_back_later(tmp_path: Path) -> None:
    port = free_port()
    app = create_app(GatewaySettings(data_dir=tmp_path, notify_addr=f"127.0.0.1:{free_port()}"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, what="the gateway to listen")
    secret = load_or_create_local_secret(tmp_path / "secrets" / "local-jwt.key")
    token = mint_local_token(secret, role="customer", subject="c-1", issuer="supportdesk-local", audience="supportdesk")
    try:
        async with connect(f"ws://127.0.0.1:{port}/v1/stream?access_token={token}") as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
    finally:
        server.should_exit = True
        await task
