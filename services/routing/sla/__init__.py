"""SLA of the routing service: policies, per-ticket clocks, durable warning and breach timers, statistics.

What the routing core wires:
- ``handle_ticket_event(conn, event, rules)`` for every ``support.ticketing.v1.ticket.*`` event, in its inbox
  transaction, before its own handling (``rules`` is awaited for the policies only if the event needs them);
  it returns ``Opened`` (with the earliest deadline) when the event started the ticket's clocks, before routing
  has queued it; ``open_tickets(conn, events, rules)`` does the same for many ``ticket.created`` events applied
  together, by event id;
- ``earliest_deadline(conn, ticket_id)`` for the queue order otherwise;
- ``TIMER_HANDLERS`` merged into the handlers of its ``TimerScheduler``;
- ``register(server, runtime)`` and ``SERVICE_NAME`` for the gRPC server.
"""

from services.routing.sla.api import SERVICE_NAME, register
from services.routing.sla.service import TIMER_HANDLERS, Opened, earliest_deadline, handle_ticket_event, open_tickets

__all__ = [
    "SERVICE_NAME",
    "TIMER_HANDLERS",
    "Opened",
    "earliest_deadline",
    "handle_ticket_event",
    "open_tickets",
    "register",
]
