"""A durable pull consumer's messages through one long-lived inbox, with the next pull request already open.

nats-py's ``fetch`` asks for messages only when it is called and then waits for them: at low load each message
costs two pull requests (a no-wait probe, then a waiting one), and nothing is on its way while a batch is being
handled. ``PullAhead`` keeps pull requests open for up to one batch beyond what it has handed out, tops them up
when half is used, and takes what has already arrived, so a steady trickle costs one pull request per half batch
and the next event is usually here before it is wanted (ADR 0066). It speaks JetStream's pull protocol over
a plain subscription: requests to ``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``, messages and status
messages back on the inbox.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import Header, StatusCode

log = logging.getLogger(__name__)

# The server's count, on a status message, of the messages a pull request will no longer deliver.
_PENDING_MESSAGES = "Nats-Pending-Messages"
_NANOS = 1_000_000_000


class PullAhead:
    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        durable: str,
        *,
        batch: int,
        expires_s: float = 30.0,
        heartbeat_s: float = 5.0,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if heartbeat_s * 2 > expires_s:
            raise ValueError("the heartbeat must come at least twice in a pull request's life")
        # nats-py keeps the context's connection and API prefix (which names a JetStream domain, if any) private;
        # the pull protocol needs both.
        self._nc = js._nc
        self._batch = batch
        self._expires_s = expires_s
        self._heartbeat_s = heartbeat_s
        self._next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = self._nc.new_inbox()
        self._sub: Subscription | None = None
        self._arrived: collections.deque[Msg] = collections.deque()
        self._wake = asyncio.Event()
        # Messages asked for in open pull requests and not yet delivered.
        self._requested = 0
        self._last_heard = time.monotonic()
        self._reconnects = 0
        self._failure: str | None = None

    async def __aenter__(self) -> PullAhead:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        self._reconnects = self._nc.stats["reconnects"]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def next_batch(self, most: int | None = None) -> list[Msg]:
        """The messages that have arrived, at most ``most`` (and a batch), waiting for the first as long as it
        takes; a pull request for what comes next is open before this returns."""
        while not self._arrived:
            if self._failure is not None:
                raise RuntimeError(self._failure)
            self._forget_lost_requests()
            await self._top_up()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat_s):
                    await self._wake.wait()
        taken = [self._arrived.popleft() for _ in range(min(most or self._batch, self._batch, len(self._arrived)))]
        await self._top_up()
        return taken

    def _forget_lost_requests(self) -> None:
        """Open requests die with a reconnect or a restarted server, silently: after a reconnect, or once not even
        a heartbeat has come for two of its intervals, ask again."""
        reconnects = self._nc.stats["reconnects"]
        silent = time.monotonic() - self._last_heard > 2 * self._heartbeat_s
        if self._requested and (reconnects != self._reconnects or silent):
            self._requested = 0
        self._reconnects = reconnects

    async def _top_up(self) -> None:
        """Keep up to a batch asked for or waiting here; ask again once half of it is used."""
        wanted = self._batch - self._requested - len(self._arrived)
        if wanted < max(1, self._batch // 2) and self._requested:
            return
        if wanted <= 0 or not self._nc.is_connected:
            return
        request = {
            "batch": wanted,
            "expires": int(self._expires_s * _NANOS),
            "idle_heartbeat": int(self._heartbeat_s * _NANOS),
        }
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._inbox)
        self._requested += wanted
        self._last_heard = time.monotonic()

    async def _on_message(self, msg: Msg) -> None:
        self._last_heard = time.monotonic()
        headers = msg.headers or {}
        status = headers.get(Header.STATUS)
        if not status:
            self._requested = max(self._requested - 1, 0)
            self._arrived.append(msg)
            self._wake.set()
            return
        if status == StatusCode.CONTROL_MESSAGE:  # an idle heartbeat: the requests are alive
            return
        # 408 (a request expired) and 409 (e.g. the consumer's leader changed) end a request: what it will not
        # deliver is no longer asked for. Without the count, nothing is trusted to be still open.
        pending = headers.get(_PENDING_MESSAGES, "")
        self._requested = max(self._requested - int(pending), 0) if pending.isdigit() else 0
        description = headers.get(Header.DESCRIPTION, "")
        if status == StatusCode.REQUEST_TIMEOUT:
            self._wake.set()  # ask again now; anything else is asked again after a heartbeat's wait, never in a spin
        elif status == StatusCode.CONFLICT and "deleted" in description.lower():
            self._failure = f"the consumer was deleted: {description}"
            self._wake.set()
        elif status != StatusCode.CONFLICT:
            log.warning("unexpected pull status", extra={"status": status, "description": description})
