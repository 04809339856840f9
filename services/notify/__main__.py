"""``python -m services.notify``: in-app, webhook and email notifications."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import httpx
import uvloop
from support.notify.v1 import notify_service_pb2_grpc

from services.kit.bus.consumer import Handler, Skips, Together
from services.kit.bus.streams import ROUTING, TICKETING, WALLET, ConsumerSpec
from services.kit.service import Runtime, ServiceDefinition, run_service
from services.notify.api import SERVICE_NAME, NotifyApi
from services.notify.deliveries.admin import DeliveryAdmin
from services.notify.deliveries.senders import EmailSender, WebhookSender
from services.notify.deliveries.worker import DeliveryWorker
from services.notify.inbox import Inbox
from services.notify.service import EventHandler
from services.notify.settings import NotifySettings

TICKET_EVENTS = ConsumerSpec(TICKETING, "notify-ticket-events", ("support.ticketing.v1.ticket.>",))
ROUTING_EVENTS = ConsumerSpec(
    ROUTING, "notify-routing-events", ("support.routing.v1.offer.>", "support.routing.v1.ticket.>")
)
SLA_EVENTS = ConsumerSpec(ROUTING, "notify-sla-events", ("support.routing.v1.sla.>",))
WALLET_EVENTS = ConsumerSpec(WALLET, "notify-wallet-events", ("wallet.>",))
CONSUMERS = (TICKET_EVENTS, ROUTING_EVENTS, SLA_EVENTS, WALLET_EVENTS)


def _settings(runtime: Runtime) -> NotifySettings:
    """notify's settings; a runtime built with plain service settings gets notify's defaults for the rest."""
    if isinstance(runtime.settings, NotifySettings):
        return runtime.settings
    return NotifySettings.model_construct(**runtime.settings.model_dump())


def _register(server: grpc.aio.Server, runtime: Runtime) -> None:
    settings = _settings(runtime)
    api = NotifyApi(
        Inbox(runtime.pool, replay_overlap_s=settings.replay_overlap_s),
        DeliveryAdmin(runtime.pool, allowed_hosts=settings.webhook_allowed_hosts),
    )
    notify_service_pb2_grpc.add_NotifyServiceServicer_to_server(api, server)


def _handler(runtime: Runtime) -> EventHandler:
    settings = _settings(runtime)
    return EventHandler(email_enabled=settings.email_enabled, supervisors_email=settings.supervisors_email)


def _consumers(runtime: Runtime) -> list[tuple[ConsumerSpec, Handler]]:
    handler = _handler(runtime)
    return [(spec, handler) for spec in CONSUMERS]


def _together(runtime: Runtime) -> dict[str, Together]:
    # Every event notify knows may be applied with others: a burst of tickets is one transaction per fetch.
    together = _handler(runtime).together()
    return {spec.durable: together for spec in CONSUMERS}


def _skips(runtime: Runtime) -> dict[str, Skips]:
    # Most events of a ticket's life tell nobody; without a webhook that wants them, they cost one read.
    skips = _handler(runtime).writes_nothing
    return {spec.durable: skips for spec in CONSUMERS}


def delivery_worker(runtime: Runtime, http: httpx.AsyncClient) -> DeliveryWorker:
    settings = _settings(runtime)
    return DeliveryWorker(
        runtime.pool,
        webhooks=WebhookSender(http, settings.webhook_timeout_s, settings.webhook_allowed_hosts),
        email=EmailSender(settings) if settings.email_enabled else None,
        schedule=settings.retry_schedule,
        concurrency=settings.delivery_concurrency,
        per_target=settings.delivery_per_target,
        attempt_timeout_s=max(settings.webhook_timeout_s, settings.smtp_timeout_s),
        poll_interval_s=settings.delivery_poll_interval_s,
    )


def _workers(runtime: Runtime) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    async def deliver() -> None:
        limits = httpx.Limits(max_connections=_settings(runtime).delivery_concurrency)
        async with httpx.AsyncClient(limits=limits, follow_redirects=False) as http:
            await delivery_worker(runtime, http).run()

    return [deliver]


DEFINITION = ServiceDefinition(
    name="notify",
    schema="notify",
    package="services.notify",
    grpc_services=[SERVICE_NAME],
    register=_register,
    consumers=_consumers,
    together=_together,
    skips=_skips,
    workers=_workers,
)


def main() -> None:
    uvloop.run(run_service(DEFINITION, NotifySettings()))


if __name__ == "__main__":
    main()
