"""``python -m services.ticketing``: the ticketing gRPC service."""

from __future__ import annotations

from datetime import timedelta

import grpc
import uvloop
from support.ticketing.v1 import ticketing_service_pb2_grpc

from services.kit.bus.consumer import Handler
from services.kit.bus.envelope import Envelope
from services.kit.bus.streams import ROUTING, ConsumerSpec
from services.kit.db import Connection
from services.kit.service import Runtime, ServiceDefinition, run_service
from services.kit.settings import ServiceSettings
from services.ticketing import convert
from services.ticketing.api import SERVICE_NAME, TicketingApi
from services.ticketing.help import api as help_api
from services.ticketing.service import TicketingService

ROUTING_EVENTS = ConsumerSpec(
    ROUTING, "ticketing-routing-events", (convert.ROUTING_TICKET_ASSIGNED, convert.ROUTING_SLA_BREACHED)
)


class TicketingSettings(ServiceSettings):
    grpc_port: int = 50051
    metrics_port: int = 9101
    # How long after resolution a customer's reply (or a reopen) brings a ticket back; later, a new ticket.
    reopen_window_s: float = 7 * 24 * 3600
    # How stale another replica's view of an edited priority rule may be (each create reads the rules).
    priority_rules_max_age_s: float = 5.0


def definition(settings: TicketingSettings) -> ServiceDefinition:
    def tickets(runtime: Runtime) -> TicketingService:
        return TicketingService(
            runtime.pool,
            reopen_window=timedelta(seconds=settings.reopen_window_s),
            priority_rules_max_age_s=settings.priority_rules_max_age_s,
        )

    def register(server: grpc.aio.Server, runtime: Runtime) -> None:
        ticketing_service_pb2_grpc.add_TicketingServiceServicer_to_server(TicketingApi(tickets(runtime)), server)
        help_api.register(server, runtime.pool)

    def consumers(runtime: Runtime) -> list[tuple[ConsumerSpec, Handler]]:
        service = tickets(runtime)

        async def on_routing_event(conn: Connection, event: Envelope) -> None:
            if event.type == convert.ROUTING_TICKET_ASSIGNED:
                await service.apply_assignment(conn, *convert.assignment(event.data))
            elif event.type == convert.ROUTING_SLA_BREACHED:
                ticket_id, raise_priority = convert.escalation(event.data)
                if raise_priority:
                    await service.apply_escalation(conn, ticket_id, "sla_breach")

        return [(ROUTING_EVENTS, on_routing_event)]

    return ServiceDefinition(
        name="ticketing",
        schema="ticketing",
        package="services.ticketing",
        grpc_services=[SERVICE_NAME, help_api.SERVICE_NAME],
        register=register,
        consumers=consumers,
    )


def main() -> None:
    settings = TicketingSettings()
    uvloop.run(run_service(definition(settings), settings))


if __name__ == "__main__":
    main()
