"""``/v1/notifications``: the caller's own in-app inbox (newest first), read marks, preferences, and
"this wasn't me" on a security alert."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.gateway.auth import ANY_ROLE, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import NotificationPage, TicketOut
from services.gateway.schemas_notify import (
    NOTIFICATION_ID_PATTERN,
    MarkReadIn,
    MarkReadOut,
    PreferencesIn,
    PreferencesOut,
)

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])

NotificationIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NOTIFICATION_ID_PATTERN)]


@router.get("", summary="My notifications", responses=problem_responses(400, 401, 422, 503))
async def list_notifications(
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
    unread: Annotated[bool, Query(description="Only those not yet marked read.")] = False,
) -> NotificationPage:
    return await clients.list_notifications(principal, page_size=page_size, page_token=page_token, unread_only=unread)


@router.post(
    "/read",
    summary="Mark notifications read",
    description="`ids` marks those; `all: true` marks the whole inbox. Marking twice changes nothing.",
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def mark_read(
    body: MarkReadIn,
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> MarkReadOut:
    return MarkReadOut(marked=await clients.mark_notifications_read(principal, body.ids, body.all))


@router.get("/preferences", summary="My notification preferences", responses=problem_responses(401, 422, 503))
async def get_preferences(
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> PreferencesOut:
    return await clients.get_preferences(principal.subject)


@router.put(
    "/preferences",
    summary="Replace my notification preferences",
    description="Security alerts ignore quiet hours and the channel choice: they go out on every channel at once.",
    responses=problem_responses(400, 401, 413, 422, 503),
)
async def put_preferences(
    body: PreferencesIn,
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> PreferencesOut:
    return await clients.update_preferences(principal.subject, body)


@router.post(
    "/{notification_id}/not-me",
    status_code=201,
    summary="This wasn't me: open an urgent ticket for a security alert",
    description="Opens one urgent `suspicious_activity` ticket per alert; asking again answers 200 with it.",
    responses={
        200: {"model": TicketOut, "description": "The ticket opened for this alert earlier."},
        **problem_responses(401, 403, 404, 409, 422, 503),
    },
)
async def not_me(
    notification_id: NotificationIdPath,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(Role.CUSTOMER))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> TicketOut:
    ticket, created = await clients.disown_alert(principal.subject, notification_id)
    response.headers["Location"] = f"/v1/tickets/{ticket.id}"
    response.status_code = 201 if created else 200
    return ticket
