"""Liveness and readiness probes (unauthenticated, outside ``/v1``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients, get_settings
from services.gateway.openapi import problem_responses
from services.gateway.problems import dependency_unavailable
from services.gateway.schemas import HealthOut, ReadinessOut
from services.gateway.settings import GatewaySettings

router = APIRouter(tags=["health"])

SERVING = "serving"


@router.get("/healthz", summary="Liveness: the process serves requests")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: every peer service reports SERVING",
    responses=problem_responses(503),
)
async def readyz(
    clients: Annotated[ServiceClients, Depends(get_clients)],
    settings: Annotated[GatewaySettings, Depends(get_settings)],
) -> ReadinessOut:
    dependencies = await clients.readiness()
    if any(status != SERVING for status in dependencies.values()):
        problem = dependency_unavailable(settings.retry_after_s, "Not every dependency is serving.")
        problem.extensions["dependencies"] = dependencies
        raise problem
    return ReadinessOut(status="ready", dependencies=dependencies)
