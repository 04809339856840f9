"""``/v1/deliveries`` and ``/v1/dead-letters``: every webhook, email and in-app delivery with its attempts; replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal
from services.gateway.routes.config_access import ADMINS, READERS
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas_notify import (
    NOTIFICATION_ID_PATTERN,
    DeliveryChannel,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
)

router = APIRouter(tags=["webhooks"])

DeliveryIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NOTIFICATION_ID_PATTERN)]
WebhookFilter = Annotated[str | None, Query(min_length=1, max_length=64, pattern=NOTIFICATION_ID_PATTERN)]


@router.get("/v1/deliveries", summary="Deliveries, newest first", responses=problem_responses(400, 401, 403, 422, 503))
async def list_deliveries(
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
    status: DeliveryStatus | None = None,
    channel: DeliveryChannel | None = None,
    webhook_id: WebhookFilter = None,
) -> DeliveryPage:
    return await clients.list_deliveries(
        page_size=page_size, page_token=page_token, status=status, channel=channel, webhook_id=webhook_id
    )


@router.get(
    "/v1/dead-letters",
    summary="Dead-lettered deliveries: out of attempts, waiting for a replay",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_dead_letters(
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> DeliveryPage:
    return await clients.list_deliveries(
        page_size=page_size,
        page_token=page_token,
        status=DeliveryStatus.DEAD_LETTERED,
        channel=None,
        webhook_id=None,
    )


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="A delivery with its attempts",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_delivery(
    delivery_id: DeliveryIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> DeliveryOut:
    return await clients.get_delivery(delivery_id)


@router.post(
    "/v1/deliveries/{delivery_id}/replay",
    summary="Send a delivery again now, with a fresh budget of attempts",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def replay_delivery(
    delivery_id: DeliveryIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> DeliveryOut:
    return await clients.replay_delivery(delivery_id)
