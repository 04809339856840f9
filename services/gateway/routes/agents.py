"""``/v1/agents``: who can take tickets, with which skills, and whether they are available now.

Supervisors and admins manage profiles; an agent sets their own presence and sees their own offers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import IdempotencyKey, creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.problems import ProblemError
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import (
    AgentOut,
    AgentPage,
    CreateAgentIn,
    OfferPage,
    OfferState,
    Presence,
    PresenceIn,
    UpdateAgentIn,
)

router = APIRouter(prefix="/v1/agents", tags=["agents"])

MANAGERS = (Role.SUPERVISOR, Role.ADMIN)
AgentIdPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@|+-]+$")]


def _self_or_manager(principal: Principal, agent_id: str) -> None:
    if principal.role is Role.AGENT and principal.subject != agent_id:
        raise ProblemError(403, "not_your_agent_profile", "Agents act only on their own profile.")


@router.post(
    "",
    status_code=201,
    summary="Add an agent",
    description=(
        "The agent id is the identity provider's subject, so it names the agent: adding an existing id again "
        "with the same profile answers 200 with the agent, under any Idempotency-Key; with another profile, "
        "409 `agent_exists`."
    ),
    responses=creating_responses(
        AgentOut,
        "the agent as it is now",
        400,
        401,
        403,
        413,
        503,
        location="Path of the agent.",
        conflicts="`agent_exists`: an agent with this id exists with another profile",
    ),
)
async def create_agent(
    body: CreateAgentIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(*MANAGERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> AgentOut:
    with reused_key_is_422():
        agent, created = await clients.create_agent(body, request_id=request_id_for(principal, idempotency_key))
    response.headers["Location"] = f"/v1/agents/{agent.id}"
    response.status_code = 201 if created else 200
    return agent


@router.get("", summary="List agents", responses=problem_responses(400, 401, 403, 422, 503))
async def list_agents(
    _principal: Annotated[Principal, Depends(require_roles(*MANAGERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    presence: Annotated[list[Presence] | None, Query()] = None,
    skill: Annotated[str | None, Query(max_length=64)] = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> AgentPage:
    return await clients.list_agents(presences=presence or [], skill=skill, page_size=page_size, page_token=page_token)


@router.get("/{agent_id}", summary="Read an agent", responses=problem_responses(401, 403, 404, 422, 503))
async def get_agent(
    agent_id: AgentIdPath,
    principal: Annotated[Principal, Depends(require_roles(Role.AGENT, *MANAGERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> AgentOut:
    _self_or_manager(principal, agent_id)
    return await clients.get_agent(agent_id)


@router.put(
    "/{agent_id}",
    summary="Replace an agent's profile (skills, languages, capacity)",
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
)
async def update_agent(
    agent_id: AgentIdPath,
    body: UpdateAgentIn,
    _principal: Annotated[Principal, Depends(require_roles(*MANAGERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> AgentOut:
    return await clients.update_agent(agent_id, body)


@router.put(
    "/{agent_id}/presence",
    summary="Set presence: only available agents with free capacity receive work",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def set_presence(
    agent_id: AgentIdPath,
    body: PresenceIn,
    principal: Annotated[Principal, Depends(require_roles(Role.AGENT, *MANAGERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> AgentOut:
    _self_or_manager(principal, agent_id)
    return await clients.set_presence(agent_id, body.presence)


@router.get(
    "/{agent_id}/offers",
    summary="An agent's offers, newest first",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_offers(
    agent_id: AgentIdPath,
    principal: Annotated[Principal, Depends(require_roles(Role.AGENT, *MANAGERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    state: Annotated[list[OfferState] | None, Query()] = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> OfferPage:
    _self_or_manager(principal, agent_id)
    return await clients.list_offers(agent_id, states=state or [], page_size=page_size, page_token=page_token)
