"""Publishing a batch of messages to JetStream and awaiting their PubAcks together.

``JetStreamContext.publish`` is a request per message: a reply inbox, a response future, a timer for its
timeout and a parsed PubAck object each time, about three times the CPU of the publish itself (0.14 ms against
0.05 ms per message, measured in ADR 0063). Here every message of a batch names a reply subject under one
inbox, one subscription receives all the PubAcks, and the batch has one deadline. What JetStream promises is
unchanged: a message counts as stored only once its PubAck says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js import JetStreamContext


class NotStored(Exception):
    """JetStream answered the publish with an error (no stream for the subject, a full stream, ...)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    data: bytes
    headers: Mapping[str, str]


class BatchPublisher:
    def __init__(self, js: JetStreamContext) -> None:
        # nats-py keeps the connection of a JetStreamContext only as ``_nc``; the publisher needs the
        # connection's plain publish and subscribe.
        self._nc: NatsClient = js._nc
        self._inbox = ""
        self._subscription: Subscription | None = None
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[None]] = {}

    async def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> list[BaseException | None]:
        """Publish ``messages``; for each, None once JetStream stored it, else why not (``NotStored``, a
        ``TimeoutError`` when no PubAck came within ``timeout_s`` of the batch's start, or the connection's error
        when it could not send). Never raises for the bus being down."""
        loop = asyncio.get_running_loop()
        pending: list[tuple[str, asyncio.Future[None]]] = []
        unsent: NatsError | None = None
        try:
            async with asyncio.timeout(timeout_s):
                await self._subscribe()
                for message in messages:
                    token = str(next(self._tokens))
                    answer: asyncio.Future[None] = loop.create_future()
                    self._waiting[token] = answer
                    pending.append((token, answer))
                    await self._nc.publish(
                        message.subject, message.data, reply=f"{self._inbox}.{token}", headers=dict(message.headers)
                    )
                await asyncio.gather(*(answer for _, answer in pending), return_exceptions=True)
        except TimeoutError:
            pass
        except NatsError as exc:  # the connection is closed or its buffer is full: what is unanswered failed
            unsent = exc
        finally:
            for token, _ in pending:
                self._waiting.pop(token, None)
        outcomes = [_outcome(answer) if unsent is None or answer.done() else unsent for _, answer in pending]
        return outcomes + [unsent or TimeoutError("not sent")] * (len(messages) - len(pending))

    async def close(self) -> None:
        """Drop the reply subscription; a connection already closed has dropped it."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(NatsError):
                await subscription.unsubscribe()

    async def _subscribe(self) -> None:
        if self._subscription is None:
            self._inbox = self._nc.new_inbox()
            self._subscription = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_reply)

    async def _on_reply(self, msg: Msg) -> None:
        answer = self._waiting.pop(msg.subject.rpartition(".")[2], None)
        if answer is None or answer.done():  # late, after the batch gave up on it
            return
        problem = _problem(msg)
        if problem is None:
            answer.set_result(None)
        else:
            answer.set_exception(NotStored(problem))


def _outcome(answer: asyncio.Future[None]) -> BaseException | None:
    if not answer.done() or answer.cancelled():
        return TimeoutError("no PubAck")
    return answer.exception()


def _problem(msg: Msg) -> str | None:
    """None for a PubAck (a duplicate included: the message is stored), else what went wrong."""
    status = (msg.headers or {}).get("Status")
    if status:  # no responders (no stream takes the subject), or another status without a body
        return f"status {status} {(msg.headers or {}).get('Description', '')}".strip()
    if b'"error"' not in msg.data:  # the common case, answered without parsing
        return None
    error = json.loads(msg.data).get("error")
    if not error:
        return None
    return f"{error.get('code', '')} {error.get('description', 'unknown error')}".strip()
