"""Who may see which ticket, and how much of it.

- A customer: only their own tickets.
- An agent: only the tickets they hold or are being offered. Ticketing's ``assignee_id`` answers the
  common case without a second call; otherwise routing is asked, since an offer lives only there (and an
  assignment reaches routing before ticketing hears of it).
- Supervisors and admins: every ticket.

Anything a caller may not see answers the same 404 as a missing ticket, so nobody can probe which ids
exist. Agents see customers' personal data masked (see ``masking``).
"""

from __future__ import annotations

from services.gateway.clients import ServiceClients
from services.gateway.masking import mask_personal_data
from services.gateway.principal import Principal, Role
from services.gateway.problems import ProblemError
from services.gateway.schemas import MessageOut, MessagePage, QueueEntryState, TicketOut, TicketPage

# Routing states in which an entry's agent_id is an agent entitled to the ticket.
_AGENT_STATES = frozenset({QueueEntryState.OFFERED, QueueEntryState.ASSIGNED})


def ticket_not_found() -> ProblemError:
    return ProblemError(404, "ticket_not_found", "Ticket not found.")


async def readable_ticket(clients: ServiceClients, principal: Principal, ticket_id: str) -> TicketOut:
    """The ticket as stored, if the caller may see it; otherwise the same 404 as a missing ticket."""
    try:
        ticket = await clients.get_ticket(ticket_id)
    except ProblemError as exc:
        if exc.status_code == 404:
            raise ticket_not_found() from None
        raise
    if principal.role is Role.CUSTOMER and ticket.customer_id != principal.subject:
        raise ticket_not_found()
    if (
        principal.role is Role.AGENT
        and ticket.assignee_id != principal.subject
        and not await _routed_to(clients, ticket_id, principal.subject)
    ):
        raise ticket_not_found()
    return ticket


async def check_ticket_access(clients: ServiceClients, principal: Principal, ticket_id: str) -> None:
    """Raise the ticket's 404 unless the caller may act on it; supervisors and admins pass at no cost."""
    if principal.role in (Role.CUSTOMER, Role.AGENT):
        await readable_ticket(clients, principal, ticket_id)


async def _routed_to(clients: ServiceClients, ticket_id: str, agent_id: str) -> bool:
    try:
        entry = await clients.get_ticket_routing(ticket_id)
    except ProblemError as exc:
        if exc.status_code == 404:
            return False
        raise
    return entry.state in _AGENT_STATES and entry.agent_id == agent_id


def ticket_for(principal: Principal, ticket: TicketOut) -> TicketOut:
    if principal.role is not Role.AGENT:
        return ticket
    return ticket.model_copy(
        update={
            "subject": mask_personal_data(ticket.subject),
            "description": mask_personal_data(ticket.description),
        }
    )


def tickets_for(principal: Principal, page: TicketPage) -> TicketPage:
    if principal.role is not Role.AGENT:
        return page
    return page.model_copy(update={"tickets": [ticket_for(principal, ticket) for ticket in page.tickets]})


def message_for(principal: Principal, message: MessageOut) -> MessageOut:
    if principal.role is not Role.AGENT:
        return message
    return message.model_copy(update={"body": mask_personal_data(message.body)})


def messages_for(principal: Principal, page: MessagePage) -> MessagePage:
    if principal.role is not Role.AGENT:
        return page
    return page.model_copy(update={"messages": [message_for(principal, message) for message in page.messages]})
