"""``/v1/routing-rules``: which queue a ticket joins and which skills it needs as it ages (admins edit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import IdempotencyKey, creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal
from services.gateway.routes.config_access import ADMINS, READERS
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas_config import (
    CONFIG_ID_PATTERN,
    MAX_CONFIG_ID,
    RoutingRuleIn,
    RoutingRuleOut,
    RoutingRulePage,
    RoutingRuleReplaceIn,
)

router = APIRouter(prefix="/v1/routing-rules", tags=["configuration"])

RuleIdPath = Annotated[str, Path(min_length=1, max_length=MAX_CONFIG_ID, pattern=CONFIG_ID_PATTERN)]


@router.get("", summary="Routing rules, first match first", responses=problem_responses(400, 401, 403, 422, 503))
async def list_rules(
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> RoutingRulePage:
    return await clients.list_routing_rules(page_size=page_size, page_token=page_token)


@router.post(
    "",
    status_code=201,
    summary="Add a routing rule",
    responses=creating_responses(
        RoutingRuleOut, "the original rule", 400, 401, 403, 413, 503, location="Path of the rule."
    ),
)
async def create_rule(
    body: RoutingRuleIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> RoutingRuleOut:
    with reused_key_is_422():
        rule, created = await clients.create_routing_rule(body, request_id=request_id_for(principal, idempotency_key))
    response.headers["Location"] = f"/v1/routing-rules/{rule.id}"
    response.status_code = 201 if created else 200
    return rule


@router.get("/{rule_id}", summary="Read a routing rule", responses=problem_responses(401, 403, 404, 422, 503))
async def get_rule(
    rule_id: RuleIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> RoutingRuleOut:
    return await clients.get_routing_rule(rule_id)


@router.put(
    "/{rule_id}",
    summary="Replace a routing rule",
    description="Tickets already queued keep their steps; the rule applies to tickets routed from now on.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def replace_rule(
    rule_id: RuleIdPath,
    body: RoutingRuleReplaceIn,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> RoutingRuleOut:
    return await clients.update_routing_rule(rule_id, body)


@router.delete(
    "/{rule_id}",
    status_code=204,
    summary="Delete a routing rule",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def delete_rule(
    rule_id: RuleIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> Response:
    await clients.delete_routing_rule(rule_id)
    return Response(status_code=204)
