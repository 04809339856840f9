"""Who may touch routing and SLA configuration, and the header creating POSTs share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from services.gateway.principal import Role

# Admins write configuration; supervisors read it, with the statistics, to run the floor.
ADMINS = (Role.ADMIN,)
READERS = (Role.SUPERVISOR, Role.ADMIN)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying with the same key answers 200 with what the first call created.",
    ),
]
