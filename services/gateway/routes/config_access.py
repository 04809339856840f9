"""Who may touch routing and SLA configuration."""

from __future__ import annotations

from services.gateway.principal import Role

# Admins write configuration; supervisors read it, with the statistics, to run the floor.
ADMINS = (Role.ADMIN,)
READERS = (Role.SUPERVISOR, Role.ADMIN)
