"""The ops page (``/ops``) and the live overview it polls (``/v1/ops/overview``, supervisors and admins).

The page itself holds no data and is served to anyone; it asks for a supervisor token once, keeps it in the
tab's sessionStorage and sends it as a bearer token, so the token never travels in a URL (see ADR 0031).
It is self-contained: its script and stylesheet come from the gateway, charts are drawn as inline SVG.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.gateway import mapping_config
from services.gateway.auth import require_roles
from services.gateway.clients import ServiceClients
from services.gateway.deps import get_clients
from services.gateway.openapi import problem_responses
from services.gateway.ops_overview import overview
from services.gateway.principal import Principal, Role
from services.gateway.schemas import MAX_PAGE_SIZE, QueueStatsOut
from services.gateway.schemas_ops import OpsOverviewOut

router = APIRouter(tags=["ops"])

SLA_WINDOW = timedelta(hours=24)
# More queues than this is not a page a person reads; the figures stay right, the list is cut.
_MAX_QUEUE_PAGES = 10
_ASSETS = resources.files("services.gateway") / "ops"
# Only the gateway's own script, style and API; no inline code, no other origin, no framing.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get(
    "/v1/ops/overview",
    summary="Live state for the ops page: queues, waits, agents, SLA at risk and breached",
    responses=problem_responses(401, 403, 503),
)
async def ops_overview(
    _principal: Annotated[Principal, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
    clients: Annotated[ServiceClients, Depends(get_clients)],
) -> OpsOverviewOut:
    now = datetime.now(UTC)
    request = mapping_config.sla_stats_request(policy_id=None, queue=None, start=now - SLA_WINDOW, end=None)
    queues, sla, agents = await asyncio.gather(_all_queues(clients), clients.sla_stats(request), clients.count_agents())
    return overview(now=now, window=SLA_WINDOW, queues=queues, sla=sla.stats, agents=agents)


async def _all_queues(clients: ServiceClients) -> list[QueueStatsOut]:
    queues: list[QueueStatsOut] = []
    token: str | None = None
    for _ in range(_MAX_QUEUE_PAGES):
        page = await clients.list_queue_stats(page_size=MAX_PAGE_SIZE, page_token=token)
        queues += page.queues
        token = page.next_page_token
        if not token:
            break
    return queues


@functools.cache
def _read(name: str) -> bytes:
    return (_ASSETS / name).read_bytes()


def _asset(name: str, media_type: str) -> Response:
    return Response(_read(name), media_type=media_type, headers=_HEADERS)


@router.get("/ops", include_in_schema=False)
async def ops_page() -> Response:
    return _asset("index.html", "text/html; charset=utf-8")


@router.get("/ops/ops.js", include_in_schema=False)
async def ops_script() -> Response:
    return _asset("ops.js", "text/javascript; charset=utf-8")


@router.get("/ops/ops.css", include_in_schema=False)
async def ops_style() -> Response:
    return _asset("ops.css", "text/css; charset=utf-8")
