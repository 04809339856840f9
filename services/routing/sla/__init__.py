"""SLA of the routing service: policies, per-ticket clocks, durable warning and breach timers, statistics.

What the routing core wires:
- ``handle_ticket_event(conn, event)`` for every ``support.ticketing.v1.ticket.*`` event, in its inbox transaction,
  before its own handling;
- ``earliest_deadline(conn, ticket_id)`` for the queue order (also when it queues a ticket: at ticket.created
  SLA runs first, when the queue entry does not exist yet);
- ``TIMER_HANDLERS`` merged into the handlers of its ``TimerScheduler``;
- ``register(server, runtime)`` and ``SERVICE_NAME`` for the gRPC server.
"""

from services.routing.sla.api import SERVICE_NAME, register
from services.routing.sla.service import TIMER_HANDLERS, earliest_deadline, handle_ticket_event

__all__ = ["SERVICE_NAME", "TIMER_HANDLERS", "earliest_deadline", "handle_ticket_event", "register"]
