"""``/v1/webhooks`` (admins): subscribers' endpoints and the events they want, signed deliveries to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import IdempotencyKey, creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal
from services.gateway.routes.config_access import ADMINS
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas_notify import NOTIFICATION_ID_PATTERN, WebhookIn, WebhookOut, WebhookPage, WebhookUpdateIn

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

WebhookIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=NOTIFICATION_ID_PATTERN)]

SIGNING = """Each delivery is a CloudEvents JSON document, POSTed with `Supportdesk-Timestamp` (Unix seconds) and
`Supportdesk-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>`. Verify it in constant time and
refuse timestamps more than five minutes old. Any 2xx within the timeout is success; anything else is retried with
exponential back-off and jitter, then dead-lettered (see `/v1/deliveries`)."""


@router.get("", summary="Webhook endpoints", responses=problem_responses(400, 401, 403, 422, 503))
async def list_webhooks(
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> WebhookPage:
    return await clients.list_webhooks(page_size=page_size, page_token=page_token)


@router.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint",
    description=(
        SIGNING + "\n\nThe answer carries the signing `secret`; it is never shown again, except to a retry "
        "with the same Idempotency-Key and body, which answers what the first call answered."
    ),
    responses=creating_responses(
        WebhookOut,
        "the original endpoint, with its signing `secret`",
        400,
        401,
        403,
        413,
        503,
        location="Path of the endpoint.",
    ),
)
async def create_webhook(
    body: WebhookIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> WebhookOut:
    with reused_key_is_422():
        endpoint, created = await clients.create_webhook(body, request_id=request_id_for(principal, idempotency_key))
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    response.status_code = 201 if created else 200
    return endpoint


@router.get("/{webhook_id}", summary="Read a webhook endpoint", responses=problem_responses(401, 403, 404, 422, 503))
async def get_webhook(
    webhook_id: WebhookIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> WebhookOut:
    return await clients.get_webhook(webhook_id)


@router.put(
    "/{webhook_id}",
    summary="Replace a webhook endpoint's URL, filters and state",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def replace_webhook(
    webhook_id: WebhookIdPath,
    body: WebhookUpdateIn,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> WebhookOut:
    return await clients.update_webhook(webhook_id, body)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook endpoint",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def delete_webhook(
    webhook_id: WebhookIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> Response:
    await clients.delete_webhook(webhook_id)
    return Response(status_code=204)
