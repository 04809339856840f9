"""Concurrent calls that arrive while a write is in flight are written together by the next one.

Each caller submits one item and awaits its own result. While fewer than ``concurrency`` writes run, a new item
starts one at once, so a lone request waits for nobody; under load the items queue behind the running writes
and each write takes everything queued (up to ``max_batch``): one statement and one commit for many callers
(ADR 0063). A write that fails is tried again item by item, so one bad item fails only its own caller.

Writes run in tasks of their own, outside any caller's context: a caller giving up (a deadline, a cancelled
RPC) stops waiting but never cancels a write that holds other callers' items. Each write is one span, linked
to the span of every caller whose item it holds.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext

from services.kit.metrics import COALESCED_BATCH, COALESCED_QUEUED

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    item: Item
    key: Hashable
    caller: SpanContext
    answer: asyncio.Future[Result]


class Coalescer(Generic[Item, Result]):
    """``write(items)`` answers one result per item, in order, or raises for all of them.

    ``key(item)``: items with the same key never share a write (the later one goes in the next), for writes
    where two such items in one statement would see each other. ``isolate(error)``: whether a failed write of
    several items is worth trying item by item (not when the database is down: every try would fail alike).
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        name: str,
        key: Callable[[Item], Hashable],
        max_batch: int = 128,
        concurrency: int = 4,
        isolate: Callable[[Exception], bool] = lambda _: True,
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")
        self._write = write
        self._name = name
        self._key = key
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._isolate = isolate
        self._queued: list[_Waiting[Item, Result]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self._tracer = trace.get_tracer("services.kit.coalesce")
        self._queued_gauge = COALESCED_QUEUED.labels(name)
        self._batch_sizes = COALESCED_BATCH.labels(name)

    async def submit(self, item: Item) -> Result:
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        caller = trace.get_current_span().get_span_context()
        self._queued.append(_Waiting(item, self._key(item), caller, answer))
        self._queued_gauge.set(len(self._queued))
        if len(self._writers) < self._concurrency:
            # An empty context: the write belongs to no single caller's trace or deadline.
            writer = asyncio.create_task(self._drain(), name=f"{self._name}-writer", context=contextvars.Context())
            self._writers.add(writer)
            # For a writer cancelled before it ever ran (shutdown); one that ran leaves the count itself.
            writer.add_done_callback(self._writers.discard)
        return await answer

    @property
    def queued(self) -> int:
        """Items waiting for a write to take them."""
        return len(self._queued)

    async def wait_idle(self) -> None:
        """Until every write started so far has finished (shutdown, tests)."""
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    async def _drain(self) -> None:
        try:
            while batch := self._take():
                await self._write_batch(batch)
        finally:
            # Out of the count the moment it stops taking items, not when its task's callbacks run: an item
            # queued in between would find every writer slot taken by writers that will never take it.
            task = asyncio.current_task()
            if task is not None:
                self._writers.discard(task)

    def _take(self) -> list[_Waiting[Item, Result]]:
        """The oldest queued items, up to ``max_batch``, no two with one key; callers that gave up are dropped."""
        taken: list[_Waiting[Item, Result]] = []
        left: list[_Waiting[Item, Result]] = []
        keys: set[Hashable] = set()
        for waiting in self._queued:
            if waiting.answer.done():
                continue
            if len(taken) < self._max_batch and waiting.key not in keys:
                taken.append(waiting)
                keys.add(waiting.key)
            else:
                left.append(waiting)
        self._queued = left
        self._queued_gauge.set(len(left))
        return taken

    async def _write_batch(self, batch: list[_Waiting[Item, Result]]) -> None:
        links = [Link(w.caller) for w in batch if w.caller.is_valid]
        self._batch_sizes.observe(len(batch))
        with self._tracer.start_as_current_span(
            self._name, links=links, attributes={"batch.size": len(batch)}, record_exception=False
        ):
            try:
                results = await self._write([w.item for w in batch])
            except Exception as exc:
                if len(batch) == 1 or not self._isolate(exc):
                    for waiting in batch:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                    return
                for waiting in batch:
                    await self._write_batch([waiting])
                return
            except BaseException:  # the writer itself is cancelled (shutdown): its callers are too
                for waiting in batch:
                    waiting.answer.cancel()
                raise
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.answer.done():  # else the caller gave up
                waiting.answer.set_result(result)
