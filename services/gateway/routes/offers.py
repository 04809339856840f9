"""``/v1/offers/{id}/accept|decline`` and ``/v1/tickets/{id}/transfer``: an agent answers an offer; a
supervisor moves a ticket to another agent or queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.principal import Principal, Role
from services.gateway.problems import ProblemError
from services.gateway.routes.tickets import TicketIdPath
from services.gateway.schemas import DeclineOfferIn, OfferOut, QueueEntryOut, TransferIn

router = APIRouter(tags=["offers"])

OfferIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]


@router.post(
    "/v1/offers/{offer_id}/accept",
    summary="Accept an offer: the ticket is yours",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def accept_offer(
    offer_id: OfferIdPath,
    principal: Annotated[Principal, Depends(require_roles(Role.AGENT))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> OfferOut:
    return await clients.accept_offer(offer_id, principal.subject)


@router.post(
    "/v1/offers/{offer_id}/decline",
    summary="Decline an offer: the ticket goes back to the head of its queue",
    responses=problem_responses(401, 403, 404, 409, 422, 503),
)
async def decline_offer(
    offer_id: OfferIdPath,
    body: DeclineOfferIn,
    principal: Annotated[Principal, Depends(require_roles(Role.AGENT))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> OfferOut:
    return await clients.decline_offer(offer_id, principal.subject, body.reason)


@router.post(
    "/v1/tickets/{ticket_id}/transfer",
    summary="Transfer a ticket to an agent (assigned at once) or to a queue (routed again)",
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
)
async def transfer(
    ticket_id: TicketIdPath,
    body: TransferIn,
    principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> QueueEntryOut:
    if (body.to_agent_id is None) == (body.to_queue is None):
        raise ProblemError(422, "one_destination", "Give exactly one of to_agent_id and to_queue.")
    return await clients.transfer_ticket(ticket_id, body, by=principal.subject)
