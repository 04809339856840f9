"""``/v1/sla``: SLA policies and business calendars (admins edit), attainment statistics, and a ticket's clocks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from services.gateway import mapping_config
from services.gateway.access import readable_ticket
from services.gateway.auth import STAFF, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import IdempotencyKey, creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal
from services.gateway.routes.config_access import ADMINS, READERS
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.routes.tickets import TicketIdPath
from services.gateway.schemas import Instant
from services.gateway.schemas_config import (
    CONFIG_ID_PATTERN,
    MAX_CONFIG_ID,
    QUEUE_NAME_PATTERN,
    CalendarIn,
    CalendarOut,
    CalendarPage,
    CalendarReplaceIn,
    SlaPolicyIn,
    SlaPolicyOut,
    SlaPolicyPage,
    SlaPolicyReplaceIn,
    SlaStatsReport,
    TicketSlaOut,
)

router = APIRouter()

ConfigIdPath = Annotated[str, Path(min_length=1, max_length=MAX_CONFIG_ID, pattern=CONFIG_ID_PATTERN)]
POLICIES = "/v1/sla/policies"
CALENDARS = "/v1/sla/calendars"


# --- policies --------------------------------------------------------------------------------------------------


@router.get(
    POLICIES,
    tags=["sla"],
    summary="SLA policies, first match first",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_policies(
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> SlaPolicyPage:
    return await clients.list_sla_policies(page_size=page_size, page_token=page_token)


@router.post(
    POLICIES,
    tags=["sla"],
    status_code=201,
    summary="Add an SLA policy",
    responses=creating_responses(
        SlaPolicyOut, "the original policy", 400, 401, 403, 404, 413, 503, location="Path of the policy."
    ),
)
async def create_policy(
    body: SlaPolicyIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> SlaPolicyOut:
    with reused_key_is_422():
        policy, created = await clients.create_sla_policy(body, request_id=request_id_for(principal, idempotency_key))
    response.headers["Location"] = f"{POLICIES}/{policy.id}"
    response.status_code = 201 if created else 200
    return policy


@router.get(
    POLICIES + "/{policy_id}",
    tags=["sla"],
    summary="Read an SLA policy",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_policy(
    policy_id: ConfigIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> SlaPolicyOut:
    return await clients.get_sla_policy(policy_id)


@router.put(
    POLICIES + "/{policy_id}",
    tags=["sla"],
    summary="Replace an SLA policy",
    description="Running clocks keep their targets until the ticket's priority changes; new tickets use it at once.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def replace_policy(
    policy_id: ConfigIdPath,
    body: SlaPolicyReplaceIn,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> SlaPolicyOut:
    return await clients.update_sla_policy(policy_id, body)


@router.delete(
    POLICIES + "/{policy_id}",
    tags=["sla"],
    status_code=204,
    summary="Delete an SLA policy",
    description="Clocks it started keep running to their targets; statistics keep its id.",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def delete_policy(
    policy_id: ConfigIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> Response:
    await clients.delete_sla_policy(policy_id)
    return Response(status_code=204)


# --- calendars -------------------------------------------------------------------------------------------------


@router.get(
    CALENDARS,
    tags=["sla"],
    summary="Business-hours calendars",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_calendars(
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> CalendarPage:
    return await clients.list_calendars(page_size=page_size, page_token=page_token)


@router.post(
    CALENDARS,
    tags=["sla"],
    status_code=201,
    summary="Add a business-hours calendar",
    responses=creating_responses(
        CalendarOut, "the original calendar", 400, 401, 403, 413, 503, location="Path of the calendar."
    ),
)
async def create_calendar(
    body: CalendarIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> CalendarOut:
    with reused_key_is_422():
        calendar, created = await clients.create_calendar(body, request_id=request_id_for(principal, idempotency_key))
    response.headers["Location"] = f"{CALENDARS}/{calendar.id}"
    response.status_code = 201 if created else 200
    return calendar


@router.get(
    CALENDARS + "/{calendar_id}",
    tags=["sla"],
    summary="Read a business-hours calendar",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_calendar(
    calendar_id: ConfigIdPath,
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> CalendarOut:
    return await clients.get_calendar(calendar_id)


@router.put(
    CALENDARS + "/{calendar_id}",
    tags=["sla"],
    summary="Replace a business-hours calendar",
    description="Running clocks keep the deadlines already computed; the new hours apply from their next change.",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
)
async def replace_calendar(
    calendar_id: ConfigIdPath,
    body: CalendarReplaceIn,
    _principal: Annotated[Principal, Depends(require_roles(*ADMINS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> CalendarOut:
    return await clients.update_calendar(calendar_id, body)


# --- statistics and clocks -------------------------------------------------------------------------------------


@router.get(
    "/v1/sla/stats",
    tags=["sla"],
    summary="SLA attainment and time to respond or resolve, per policy, queue and metric",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def sla_stats(
    _principal: Annotated[Principal, Depends(require_roles(*READERS))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    policy_id: Annotated[uuid.UUID | None, Query(description="Only this policy's clocks.")] = None,
    queue: Annotated[str | None, Query(max_length=63, pattern=QUEUE_NAME_PATTERN)] = None,
    start: Annotated[Instant | None, Query(description="Clocks that started at or after this instant.")] = None,
    end: Annotated[Instant | None, Query(description="…and before this one; left out: now.")] = None,
) -> SlaStatsReport:
    request = mapping_config.sla_stats_request(
        policy_id=str(policy_id) if policy_id else None, queue=queue, start=start, end=end
    )
    return await clients.sla_stats(request)


@router.get(
    "/v1/tickets/{ticket_id}/sla",
    tags=["tickets"],
    summary="A ticket's SLA clocks",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def ticket_sla(
    ticket_id: TicketIdPath,
    principal: Annotated[Principal, Depends(require_roles(*STAFF))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> TicketSlaOut:
    # Routing knows only tickets it has seen; ticketing says whether the id exists at all (404 otherwise),
    # and an agent reaches only tickets routed to them.
    await readable_ticket(clients, principal, ticket_id)
    return await clients.get_ticket_sla(ticket_id)
