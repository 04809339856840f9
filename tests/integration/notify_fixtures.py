"""A running notify (consumers, outbox relay, delivery worker) against real NATS and Postgres, plus a real
local HTTP receiver for webhooks and a real aiosmtpd SMTP server for email."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiosmtpd.controller import Controller
from nats.js import JetStreamContext

from services.kit.bus.consumer import EventConsumer
from services.kit.bus.envelope import Envelope
from services.kit.bus.outbox import OutboxRelay
from services.kit.bus.streams import declare_consumer
from services.notify.__main__ import CONSUMERS
from services.notify.deliveries.senders import EmailSender, WebhookSender
from services.notify.deliveries.worker import DeliveryWorker
from services.notify.service import EventHandler
from services.notify.settings import NotifySettings
from tests.integration.bus_fixtures import BUS, migrated_pool
from tests.waiting import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An ASGI app served by uvicorn: ``/ok`` answers 204, ``/fail`` 500, ``/hang`` only once released."""

    received: list[Received] = field(default_factory=list)
    base_url: str = ""
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(scope["path"], headers, body))
        if scope["path"].startswith("/hang"):
            await self.released.wait()
        status = 204 if scope["path"].startswith("/ok") else 500
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@contextlib.asynccontextmanager
async def http_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        return server.started

    await eventually(started, what="the webhook receiver to listen")
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        receiver.released.set()  # hanging requests end before the server stops
        server.should_exit = True
        server.force_exit = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class Mailbox:
    """aiosmtpd handler keeping every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@contextlib.contextmanager
def smtp_server() -> Any:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()


@dataclass
class Notify:
    pool: asyncpg.Pool
    js: JetStreamContext
    settings: NotifySettings
    publish: Callable[[Envelope], Awaitable[None]]


def notify_settings(database_url: str, smtp_port: int, **overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "webhook_timeout_s": 1.0,
        "delivery_max_attempts": 3,
        "delivery_backoff_base_s": 0.1,
        "delivery_backoff_jitter": 0.5,
        "delivery_per_target": 2,
        "delivery_poll_interval_s": 0.2,
        **overrides,
    }
    return NotifySettings(**values)


@contextlib.asynccontextmanager
async def running_notify(database_url: str, js: JetStreamContext, settings: NotifySettings) -> AsyncIterator[Notify]:
    pool = await migrated_pool(database_url, "notify", "services.notify")
    handler = EventHandler(email_enabled=settings.email_enabled, supervisors_email=settings.supervisors_email)
    tasks = [asyncio.create_task(OutboxRelay(pool, js, "notify").run())]
    for spec in CONSUMERS:
        await declare_consumer(js, spec, BUS)
        consumer = EventConsumer(  # as deployed
            js, pool, spec, handler, max_deliver=3, together=handler.together(), skips=handler.writes_nothing
        )
        tasks.append(asyncio.create_task(consumer.run()))
    http = httpx.AsyncClient()
    worker = DeliveryWorker(
        pool,
        webhooks=WebhookSender(http, settings.webhook_timeout_s),
        email=EmailSender(settings),
        schedule=settings.retry_schedule,
        concurrency=settings.delivery_concurrency,
        per_target=settings.delivery_per_target,
        attempt_timeout_s=settings.webhook_timeout_s,
        poll_interval_s=settings.delivery_poll_interval_s,
    )
    tasks.append(asyncio.create_task(worker.run()))

    async def publish(envelope: Envelope) -> None:
        await js.publish(envelope.type, envelope.data, headers=envelope.headers())

    try:
        yield Notify(pool, js, settings, publish)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
        await pool.close()
