"""``/v1/notifications``: the caller's own in-app inbox, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.gateway.auth import ANY_ROLE, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import NotificationPage

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


@router.get("", summary="My notifications", responses=problem_responses(400, 401, 422, 503))
async def list_notifications(
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> NotificationPage:
    return await clients.list_notifications(user_id=principal.subject, page_size=page_size, page_token=page_token)
