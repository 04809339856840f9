"""Health probes for container orchestrators that cannot speak gRPC health themselves (e.g. Compose)."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


async def grpc_serving(address: str, timeout_s: float) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(url: str, timeout_s: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - operator-given URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def probe(*, grpc_address: str | None, http_url: str | None, timeout_s: float) -> bool:
    if grpc_address:
        return asyncio.run(grpc_serving(grpc_address, timeout_s))
    assert http_url is not None
    return http_ok(http_url, timeout_s)
