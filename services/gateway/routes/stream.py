"""``/v1/stream``: a WebSocket of the caller's live events (offers, assignments, messages, SLA warnings,
security alerts), each a JSON text frame ``{"event_id", "type", "data"}``.

Authenticate with the same JWT as the REST API: ``?access_token=<JWT>``, or the subprotocols
``bearer, <JWT>`` (the server then answers with ``bearer``). After a reconnect, ``?last_event_id=<event_id>``
first replays what was missed, oldest first (frames already seen may come again; drop them by id).
A bad or missing token is refused at the handshake (HTTP 403). Close codes: 1013 when the stream is unavailable
or the client fell behind (reconnect with ``last_event_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from services.gateway.auth import TokenVerifier
from services.gateway.clients import ServiceClients
from services.gateway.mapping import audiences_of
from services.gateway.principal import Principal
from services.gateway.problems import ProblemError
from services.gateway.stream import StreamHub

router = APIRouter()

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
REPLAY_PAGE = 100


def _token(websocket: WebSocket, access_token: str | None) -> tuple[str | None, str | None]:
    """The token and the subprotocol to answer with."""
    if access_token:
        return access_token, None
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if len(offered) == 2 and offered[0].lower() == "bearer":
        return offered[1], offered[0]
    return None, None


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket, access_token: str | None = None, last_event_id: str | None = None) -> None:
    verifier: TokenVerifier = websocket.app.state.verifier
    hub: StreamHub = websocket.app.state.stream_hub
    clients: ServiceClients = websocket.app.state.clients
    token, subprotocol = _token(websocket, access_token)
    try:
        principal = await verifier.verify(token or "")
    except ProblemError:
        # Closing before accepting refuses the upgrade itself (HTTP 403): nothing is streamed to an unknown caller.
        await websocket.close(code=POLICY_VIOLATION, reason="invalid or missing token")
        return
    await websocket.accept(subprotocol=subprotocol)
    if not hub.available:
        await websocket.close(code=TRY_AGAIN_LATER, reason="live stream unavailable")
        return
    with hub.listen([principal.subject, *audiences_of(principal)]) as queue:
        replayed: set[str] = set()
        if last_event_id:
            try:
                await _replay(websocket, clients, principal, last_event_id[:64], replayed)
            except ProblemError:
                await websocket.close(code=TRY_AGAIN_LATER, reason="notify unavailable; retry")
                return
        await _pump(websocket, queue, replayed)


async def _replay(
    websocket: WebSocket, clients: ServiceClients, principal: Principal, after: str, replayed: set[str]
) -> None:
    """Send what was missed after ``after``, page by page, oldest first."""
    while True:
        page = await clients.replay_notifications(principal, after, limit=REPLAY_PAGE)
        fresh = [item for item in page if item.id not in replayed]
        for item in fresh:
            replayed.add(item.id)
            await websocket.send_text(
                _dump({"event_id": item.id, "type": "notification.created", "data": item.model_dump(mode="json")})
            )
        if len(page) < REPLAY_PAGE or not fresh:
            return
        after = fresh[-1].id


async def _pump(websocket: WebSocket, queue: asyncio.Queue[dict[str, Any] | None], replayed: set[str]) -> None:
    """Send frames until the client leaves or falls behind; what the client sends is ignored."""
    reader = asyncio.create_task(_drain(websocket))
    try:
        while True:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                getter.cancel()
                return
            pushed = getter.result()
            if pushed is None:
                await websocket.close(code=TRY_AGAIN_LATER, reason="fell behind; reconnect with last_event_id")
                return
            if pushed["event_id"] in replayed:
                continue
            await websocket.send_text(_dump(pushed))
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await reader


async def _drain(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
