"""The gateway's side of live pushes: one NATS subscription per replica to notify's
``notification.created`` events, fanned out to the connected sockets of each recipient.

Every gateway replica receives every event (a core subscription, not a shared consumer), so a user's socket
gets its pushes whichever replica holds it. What a socket misses while disconnected it replays from notify's
inbox on reconnect (``last_event_id``), so the live path can stay best-effort and fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from support.notify.v1 import events_pb2

from services.gateway import mapping

log = logging.getLogger(__name__)

SUBJECT = "support.notify.v1.notification.created"
_RETRY_S = 1.0


def frame(notification: Any) -> dict[str, Any]:
    """What a socket receives: the notification, with its id as the event id to resume after."""
    out = mapping.notification_out(notification)
    return {"event_id": out.id, "type": "notification.created", "data": out.model_dump(mode="json")}


class StreamHub:
    def __init__(self, nats_url: str | None, *, queue_size: int) -> None:
        self._url = nats_url
        self._queue_size = queue_size
        self._listeners: dict[str, set[asyncio.Queue[dict[str, Any] | None]]] = defaultdict(set)
        self._nc: NatsClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def start(self) -> None:
        if self._url is not None:
            self._task = asyncio.create_task(self._connect(self._url), name="stream-hub-connect")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()

    async def _connect(self, url: str) -> None:
        """Connect, retrying until NATS answers; the gateway serves REST meanwhile."""
        while True:
            try:
                nc = await nats.connect(
                    servers=[url],
                    name="gateway-stream",
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                )
            except Exception as exc:
                log.warning("live stream cannot reach NATS; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(_RETRY_S)
                continue
            await nc.subscribe(SUBJECT, cb=self._on_message)
            self._nc = nc
            return

    async def _on_message(self, msg: Msg) -> None:
        try:
            notification = events_pb2.NotificationCreated.FromString(msg.data).notification
        except Exception:
            log.warning("undecodable notification event dropped", extra={"subject": msg.subject})
            return
        queues = self._listeners.get(notification.user_id)
        if not queues:
            return
        pushed = frame(notification)
        for queue in list(queues):
            try:
                queue.put_nowait(pushed)
            except asyncio.QueueFull:
                # A socket too slow to keep up is closed; it resumes from its last event id.
                _overflow(queue)

    @contextlib.contextmanager
    def listen(self, recipients: Sequence[str]) -> Iterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue of frames for these recipients while the block runs; ``None`` in it means "fell behind"."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self._queue_size)
        for r in recipients:
            self._listeners[r].add(queue)
        try:
            yield queue
        finally:
            for r in recipients:
                self._listeners[r].discard(queue)
                if not self._listeners[r]:
                    del self._listeners[r]


def _overflow(queue: asyncio.Queue[dict[str, Any] | None]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait(None)
