"""Request-scoped access to what the app holds: settings and peer clients.

The dependencies are ``async`` although they never await: FastAPI runs plain functions in a thread pool,
a hand-off to another thread and back on every request.
"""

from __future__ import annotations

from fastapi import Request

from services.gateway.clients import ServiceClients
from services.gateway.settings import GatewaySettings


async def get_settings(request: Request) -> GatewaySettings:
    settings = request.app.state.settings
    if not isinstance(settings, GatewaySettings):
        raise TypeError("app.state.settings is not configured")
    return settings


async def get_clients(request: Request) -> ServiceClients:
    clients = getattr(request.app.state, "clients", None)
    if not isinstance(clients, ServiceClients):
        raise TypeError("app.state.clients is not open; is the lifespan running?")
    return clients
