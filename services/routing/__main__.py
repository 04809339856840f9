"""``python -m services.routing``: skill-based routing and SLA timers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import grpc
import uvloop
from support.routing.v1 import routing_service_pb2_grpc

from services.kit.bus.consumer import Handler
from services.kit.bus.streams import ConsumerSpec
from services.kit.service import Runtime, ServiceDefinition, run_service
from services.kit.settings import ServiceSettings
from services.routing import consumers, metrics, sla
from services.routing.api import SERVICE_NAME, RoutingApi
from services.routing.consumers import TICKET_EVENTS
from services.routing.service import RoutingService

__all__ = ["DEFINITION", "TICKET_EVENTS", "main"]


class RoutingSettings(ServiceSettings):
    grpc_port: int = 50052
    metrics_port: int = 9102


def _register(server: grpc.aio.Server, runtime: Runtime) -> None:
    routing_service_pb2_grpc.add_RoutingServiceServicer_to_server(RoutingApi(RoutingService(runtime.pool)), server)
    sla.register(server, runtime)


def _consumers(_: Runtime) -> list[tuple[ConsumerSpec, Handler]]:
    return [(TICKET_EVENTS, consumers.on_ticket_event)]


def _workers(runtime: Runtime) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    # Offer deadlines, step relaxations, dispatch re-checks and the SLA clocks' timers.
    return [consumers.scheduler(runtime.pool).run]


DEFINITION = ServiceDefinition(
    name="routing",
    schema="routing",
    package="services.routing",
    grpc_services=[SERVICE_NAME, sla.SERVICE_NAME],
    register=_register,
    consumers=_consumers,
    together=lambda _: {TICKET_EVENTS.durable: consumers.TICKETS_CREATED_TOGETHER},
    workers=_workers,
    samplers=lambda runtime: metrics.samplers(runtime.pool),
    on_published=metrics.on_published,
)


def main() -> None:
    uvloop.run(run_service(DEFINITION, RoutingSettings()))


if __name__ == "__main__":
    main()
