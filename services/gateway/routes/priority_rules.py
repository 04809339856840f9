"""``/v1/priority-rules``: the priority each category gets when a client sets none (admins edit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.schemas import Category, PriorityRuleIn, PriorityRuleOut

router = APIRouter(prefix="/v1/priority-rules", tags=["configuration"])


@router.get("", summary="The priority rules", responses=problem_responses(401, 403, 503))
async def list_rules(
    _principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> list[PriorityRuleOut]:
    return await clients.priority_rules()


@router.put(
    "/{category}",
    summary="Set a category's default priority",
    description="Money and security categories can never default to `low` (400 `priority_rule_refused`).",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def set_rule(
    category: Category,
    body: PriorityRuleIn,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> PriorityRuleOut:
    return await clients.set_priority_rule(category, body.priority, principal)
