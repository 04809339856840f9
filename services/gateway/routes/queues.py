"""``/v1/queues``: live queue statistics for supervisors, and each queue's settings (admins edit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.routes.config_access import ADMINS, READERS
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import QueueStatsPage
from services.gateway.schemas_config import QUEUE_NAME_PATTERN, QueueSettingsIn, QueueSettingsOut

router = APIRouter(prefix="/v1/queues", tags=["queues"])

QueuePath = Annotated[str, Path(max_length=63, pattern=QUEUE_NAME_PATTERN, description="Queue name.")]


@router.get("", summary="Queue statistics", responses=problem_responses(400, 401, 403, 422, 503))
async def list_queues(
    _principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> QueueStatsPage:
    return await clients.list_queue_stats(page_size=page_size, page_token=page_token)


@router.get(
    "/{queue}/settings",
    summary="A queue's settings",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_queue_settings(
    queue: QueuePath,
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> QueueSettingsOut:
    return await clients.get_queue_settings(queue)


@router.put(
    "/{queue}/settings",
    summary="Replace a queue's settings (creates the queue if it does not exist)",
    responses=problem_responses(400, 401, 403, 409, 413, 422, 503),
)
async def replace_queue_settings(
    queue: QueuePath,
    body: QueueSettingsIn,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> QueueSettingsOut:
    return await clients.update_queue_settings(queue, body)
