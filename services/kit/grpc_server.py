"""grpc.aio server bootstrap: the standard health service, reflection, and a graceful stop."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.kit.grpc_observe import ObservedServer

log = logging.getLogger(__name__)


class GrpcServer:
    def __init__(
        self,
        host: str,
        port: int,
        register: Callable[[grpc.aio.Server], None],
        service_names: Sequence[str],
    ) -> None:
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        # The service's handlers continue the caller's trace (traceparent in metadata) and are counted and
        # timed; ObservedServer wraps them as they are registered. Health and reflection are not observed.
        register(cast(grpc.aio.Server, ObservedServer(self._server)))
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._service_names = list(service_names)
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server
        )
        self.port = self._server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self.address = f"{host}:{self.port}"

    async def start(self) -> None:
        await self._server.start()
        await self._set_all(health_pb2.HealthCheckResponse.SERVING)
        log.info("grpc serving", extra={"address": self.address})

    async def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING first so balancers drain us, then let in-flight calls finish."""
        await self._set_all(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self._server.stop(grace_s)

    async def _set_all(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ["", *self._service_names]:
            await self._health.set(name, status)
