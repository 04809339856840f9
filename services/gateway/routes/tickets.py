"""``/v1/tickets``: open, list, read and update tickets, and see where routing holds one.

Idempotency: ``POST /v1/tickets`` takes ``Idempotency-Key`` as every creating POST does
(``services.gateway.idempotency``): ticketing stores the request_id and a fingerprint of the request with
the ticket, in the same transaction, so a retried POST never opens a second ticket.

Reading: a customer sees only their own tickets, an agent only those they hold or are offered (see
``services.gateway.access``); anything else is the same 404 as a missing ticket. Agents list the tickets
they hold and see personal data masked; supervisors and admins see and list any.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Response

from services.gateway import mapping
from services.gateway.access import check_ticket_access, readable_ticket, ticket_for, tickets_for
from services.gateway.auth import ANY_ROLE, STAFF, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import IdempotencyKey, creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.problems import FieldError, ProblemError
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.schemas import (
    MAX_TICKET_ID,
    TICKET_ID_PATTERN,
    CreateTicketIn,
    QueueEntryOut,
    TicketOut,
    TicketPage,
    TicketStatus,
    UpdateTicketIn,
)

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])

# Fields that steer routing; a customer choosing them could jump the queue.
STAFF_ONLY_FIELDS = ("priority", "customer_tier")

TicketIdPath = Annotated[
    str, Path(min_length=1, max_length=MAX_TICKET_ID, pattern=TICKET_ID_PATTERN, description="Ticket id.")
]


@router.post(
    "",
    status_code=201,
    summary="Open a ticket",
    response_description="The ticket was created; `Location` names it.",
    responses=creating_responses(
        TicketOut, "the original ticket", 400, 401, 403, 413, 503, location="Path of the ticket."
    ),
)
async def create_ticket(
    body: CreateTicketIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(Role.CUSTOMER, Role.AGENT, Role.SUPERVISOR))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: IdempotencyKey = None,
) -> TicketOut:
    customer_id = _customer_for(principal, body)
    with reused_key_is_422():
        ticket, created = await clients.create_ticket(
            body, customer_id=customer_id, request_id=request_id_for(principal, idempotency_key)
        )
    response.headers["Location"] = f"/v1/tickets/{quote(ticket.id, safe='')}"
    response.status_code = 201 if created else 200
    return ticket_for(principal, ticket)


def _customer_for(principal: Principal, body: CreateTicketIn) -> str:
    if principal.role is not Role.CUSTOMER:
        if body.customer_id is None:
            raise ProblemError(
                422,
                "validation_failed",
                "Staff opening a ticket must name the customer; see errors.",
                errors=[FieldError(field="customer_id", location="body", code="missing", message="Field required")],
            )
        return body.customer_id
    if body.customer_id is not None and body.customer_id != principal.subject:
        raise ProblemError(403, "customer_id_mismatch", "Customers can open tickets only for themselves.")
    given = [name for name in STAFF_ONLY_FIELDS if getattr(body, name) is not None]
    if given:
        raise ProblemError(
            403,
            "field_not_allowed",
            "Some fields may only be set by staff; see errors.",
            errors=[
                FieldError(field=name, location="body", code="field_not_allowed", message="Set by staff only")
                for name in given
            ],
        )
    return principal.subject


@router.get(
    "",
    summary="List tickets, newest first",
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_tickets(
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    status: Annotated[list[TicketStatus] | None, Query(description="Any of these statuses.")] = None,
    customer_id: Annotated[str | None, Query(max_length=200, description="Staff only.")] = None,
    assignee_id: Annotated[str | None, Query(max_length=200, description="Supervisors and admins only.")] = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> TicketPage:
    if principal.role is Role.CUSTOMER:
        if customer_id not in (None, principal.subject) or assignee_id is not None:
            raise ProblemError(403, "filter_not_allowed", "Customers list only their own tickets.")
        customer_id = principal.subject
    elif principal.role is Role.AGENT:
        if assignee_id not in (None, principal.subject):
            raise ProblemError(403, "filter_not_allowed", "Agents list the tickets they hold.")
        assignee_id = principal.subject
    page = await clients.list_tickets(
        mapping.list_tickets_request(
            customer_id=customer_id,
            assignee_id=assignee_id,
            statuses=status or [],
            page_size=page_size,
            page_token=page_token,
        )
    )
    return tickets_for(principal, page)


@router.get(
    "/{ticket_id}",
    summary="Read a ticket",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_ticket(
    ticket_id: TicketIdPath,
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> TicketOut:
    return ticket_for(principal, await readable_ticket(clients, principal, ticket_id))


@router.patch(
    "/{ticket_id}",
    summary="Change a ticket's status and/or priority",
    description=(
        "Statuses move `new → open ⇄ pending`, `on_hold`, `→ resolved → closed`; a resolved ticket reopens "
        "within the reopen window. Both changes apply or neither does. Customers may only reopen or close "
        "their own resolved ticket; a complaint is closed only with a `resolution_note`."
    ),
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
)
async def update_ticket(
    ticket_id: TicketIdPath,
    body: UpdateTicketIn,
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> TicketOut:
    if body.status is None and body.priority is None:
        raise ProblemError(422, "nothing_to_change", "Give a status, a priority, or both.")
    await check_ticket_access(clients, principal, ticket_id)
    return ticket_for(principal, await clients.update_ticket(ticket_id, body, principal))


@router.get(
    "/{ticket_id}/routing",
    summary="Where routing holds a ticket",
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_ticket_routing(
    ticket_id: TicketIdPath,
    principal: Annotated[Principal, Depends(require_roles(*STAFF))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> QueueEntryOut:
    await check_ticket_access(clients, principal, ticket_id)
    return await clients.get_ticket_routing(ticket_id)
