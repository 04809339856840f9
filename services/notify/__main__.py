"""``python -m services.notify``: in-app, webhook and email notifications."""

from __future__ import annotations

import grpc
import uvloop
from support.notify.v1 import notify_service_pb2_grpc

from services.kit.bus.consumer import Handler
from services.kit.bus.streams import TICKETING, ConsumerSpec
from services.kit.service import Runtime, ServiceDefinition, run_service
from services.kit.settings import ServiceSettings
from services.notify.api import SERVICE_NAME, NotifyApi
from services.notify.service import NotifyQueries, on_ticket_created

TICKET_EVENTS = ConsumerSpec(TICKETING, "notify-ticket-events", ("support.ticketing.v1.ticket.created",))


class NotifySettings(ServiceSettings):
    grpc_port: int = 50053
    metrics_port: int = 9103


def _register(server: grpc.aio.Server, runtime: Runtime) -> None:
    notify_service_pb2_grpc.add_NotifyServiceServicer_to_server(NotifyApi(NotifyQueries(runtime.pool)), server)


def _consumers(_: Runtime) -> list[tuple[ConsumerSpec, Handler]]:
    return [(TICKET_EVENTS, on_ticket_created)]


DEFINITION = ServiceDefinition(
    name="notify",
    schema="notify",
    package="services.notify",
    grpc_services=[SERVICE_NAME],
    register=_register,
    consumers=_consumers,
)


def main() -> None:
    uvloop.run(run_service(DEFINITION, NotifySettings()))


if __name__ == "__main__":
    main()
