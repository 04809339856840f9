"""``/v1/tickets/{id}/messages``, ``/timeline`` and ``/csat``: what is said on a ticket and what happened to it.

Customers read and write only the public conversation of their own tickets; internal notes are never
returned to them. Agents work only on tickets they hold or are offered, and see personal data masked.
Text is redacted by ticketing before it is stored, so what comes back is what was kept.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from services.gateway.access import check_ticket_access, message_for, messages_for, readable_ticket
from services.gateway.auth import ANY_ROLE, STAFF, require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.idempotency import creating_responses, request_id_for, reused_key_is_422
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.problems import ProblemError
from services.gateway.routes.paging import PageSize, PageToken
from services.gateway.routes.tickets import TicketIdPath
from services.gateway.schemas import (
    CsatIn,
    MessageIn,
    MessageOut,
    MessagePage,
    MessageVisibility,
    TicketOut,
    TimelinePage,
)

router = APIRouter(prefix="/v1/tickets", tags=["conversation"])


@router.get(
    "/{ticket_id}/messages",
    summary="The conversation, oldest first",
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def list_messages(
    ticket_id: TicketIdPath,
    principal: Annotated[Principal, Depends(require_roles(*ANY_ROLE))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> MessagePage:
    await check_ticket_access(clients, principal, ticket_id)
    page = await clients.list_messages(
        ticket_id, include_internal=principal.is_staff, page_size=page_size, page_token=page_token
    )
    return messages_for(principal, page)


@router.post(
    "/{ticket_id}/messages",
    status_code=201,
    summary="Add a message or an internal note",
    description=(
        "Recovery phrases, private keys and card numbers are redacted before the message is stored; the "
        "ticket is then flagged and the customer warned. Staff messages asking a customer for such secrets "
        "are refused (409 `secret_request_refused`). A retry with the same `Idempotency-Key` answers the "
        "original message (200); the same key with another body is 422 `idempotency_key_reused`."
    ),
    responses=creating_responses(
        MessageOut,
        "the original message",
        400,
        401,
        403,
        404,
        413,
        503,
        conflicts="`secret_request_refused`, or `ticket_closed`",
        in_flight=False,
    ),
)
async def add_message(
    ticket_id: TicketIdPath,
    body: MessageIn,
    response: Response,
    principal: Annotated[Principal, Depends(require_roles(Role.CUSTOMER, Role.AGENT, Role.SUPERVISOR))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description=(
                "Client-chosen key (e.g. a UUID). A retry with the same key and body answers 200 with the first "
                "message and never adds a second; a concurrent retry waits for the first and replays it. The same "
                "key with another body is 422 `idempotency_key_reused`."
            ),
        ),
    ] = None,
) -> MessageOut:
    if not body.body and not body.attachments:
        raise ProblemError(422, "empty_message", "A message needs a body or an attachment.")
    if principal.role is Role.CUSTOMER and body.visibility is MessageVisibility.INTERNAL:
        raise ProblemError(403, "internal_note_forbidden", "Customers cannot write internal notes.")
    await check_ticket_access(clients, principal, ticket_id)
    with reused_key_is_422():
        message, created = await clients.add_message(
            ticket_id, body, principal, request_id=request_id_for(principal, idempotency_key)
        )
    response.status_code = 201 if created else 200
    return message_for(principal, message)


@router.get(
    "/{ticket_id}/timeline",
    summary="Every change to a ticket: who, what, when, and the trace id",
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def timeline(
    ticket_id: TicketIdPath,
    principal: Annotated[Principal, Depends(require_roles(*STAFF))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> TimelinePage:
    await check_ticket_access(clients, principal, ticket_id)
    return await clients.list_timeline(ticket_id, page_size=page_size, page_token=page_token)


@router.post(
    "/{ticket_id}/csat",
    summary="Rate the support received (once, after resolution)",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def record_csat(
    ticket_id: TicketIdPath,
    body: CsatIn,
    principal: Annotated[Principal, Depends(require_roles(Role.CUSTOMER))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> TicketOut:
    await readable_ticket(clients, principal, ticket_id)
    return await clients.record_csat(ticket_id, body, principal)
