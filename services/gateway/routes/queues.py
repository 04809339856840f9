"""``/v1/queues``: live queue statistics for supervisors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import QueueStatsPage

router = APIRouter(prefix="/v1/queues", tags=["queues"])


@router.get("", summary="Queue statistics", responses=problem_responses(400, 401, 403, 422, 503))
async def list_queues(
    _principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> QueueStatsPage:
    return await clients.list_queue_stats(page_size=page_size, page_token=page_token)
