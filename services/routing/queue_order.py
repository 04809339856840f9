"""The one place SLA clocks touch the queue: a ticket's earliest running deadline orders it among equals."""

from __future__ import annotations

import uuid
from datetime import datetime

from services.kit.db import Connection


async def set_sla_due(conn: Connection, ticket_id: uuid.UUID, due_at: datetime | None) -> None:
    """Record the ticket's earliest running SLA deadline (None: no clock running); no-op if not queued yet."""
    await conn.execute("UPDATE queue_entries SET sla_due_at = $2 WHERE ticket_id = $1", ticket_id, due_at)
