"""Calls arriving while a write is in flight share the next write; each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.kit.coalesce import Coalescer
from tests.waiting import eventually

pytestmark = pytest.mark.unit


async def until(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, what=what)


class Bad(ValueError):
    pass


class Writes:
    """Records each write; a write waits for ``gate`` and fails when it holds a negative item."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if any(item < 0 for item in items):
            raise Bad(f"cannot write {min(items)}")
        return [item * 10 for item in items]


async def test_a_lone_call_is_written_at_once_and_alone() -> None:
    writes = Writes()
    coalescer = Coalescer(writes, name="write", key=lambda item: item)
    assert await coalescer.submit(7) == 70
    assert writes.batches == [[7]]


async def test_a_call_right_after_the_writers_finish_starts_a_write_of_its_own() -> None:
    writes = Writes()
    coalescer = Coalescer(writes, name="write", key=lambda item: item, concurrency=1)
    assert await coalescer.submit(1) == 10
    # The writer has taken its last item, but its task's done-callbacks have not run yet.
    async with asyncio.timeout(5):
        assert await coalescer.submit(2) == 20
    assert writes.batches == [[1], [2]]


async def test_calls_arriving_during_a_write_share_the_next_one() -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write", key=lambda item: item, concurrency=1)
    first = asyncio.create_task(coalescer.submit(1))
    await until(lambda: writes.batches == [[1]], what="the first write started")
    rest = [asyncio.create_task(coalescer.submit(n)) for n in range(2, 7)]
    await until(lambda: coalescer.queued == 5, what="five calls queued behind the write")
    writes.gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60]
    assert writes.batches == [[1], [2, 3, 4, 5, 6]]


async def test_up_to_concurrency_writes_run_at_once_and_batches_are_capped() -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write", key=lambda item: item, concurrency=2, max_batch=3)
    calls = [asyncio.create_task(coalescer.submit(n)) for n in range(1, 9)]
    await until(lambda: len(writes.batches) == 2, what="two writes started")
    writes.gate.set()
    assert await asyncio.gather(*calls) == [n * 10 for n in range(1, 9)]
    assert writes.batches == [[1, 2, 3], [4, 5, 6], [7, 8]], "two writes at once, three items each at most"


async def test_two_calls_with_one_key_never_share_a_write() -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write", key=lambda item: item % 10, concurrency=1)
    first = asyncio.create_task(coalescer.submit(100))
    await until(lambda: len(writes.batches) == 1, what="the first write started")
    same_key = [asyncio.create_task(coalescer.submit(n)) for n in (1, 11, 2, 21)]
    await until(lambda: coalescer.queued == 4, what="four calls queued")
    writes.gate.set()
    assert await asyncio.gather(first, *same_key) == [1000, 10, 110, 20, 210]
    assert writes.batches == [[100], [1, 2], [11], [21]]


async def test_a_failed_write_is_tried_item_by_item_so_only_the_bad_caller_fails() -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write", key=lambda item: item, concurrency=1)
    first = asyncio.create_task(coalescer.submit(1))
    await until(lambda: len(writes.batches) == 1, what="the first write started")
    rest = [asyncio.create_task(coalescer.submit(n)) for n in (2, -3, 4)]
    await until(lambda: coalescer.queued == 3, what="three calls queued")
    writes.gate.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert outcomes[:2] == [10, 20]
    assert outcomes[3] == 40
    assert isinstance(outcomes[2], Bad)
    assert writes.batches == [[1], [2, -3, 4], [2], [-3], [4]]


async def test_a_failure_not_worth_isolating_fails_every_caller_of_that_write_once() -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write", key=lambda item: item, concurrency=1, isolate=lambda _: False)
    first = asyncio.create_task(coalescer.submit(1))
    await until(lambda: len(writes.batches) == 1, what="the first write started")
    rest = [asyncio.create_task(coalescer.submit(n)) for n in (-2, 3)]
    await until(lambda: coalescer.queued == 2, what="two calls queued")
    writes.gate.set()
    outcomes = await asyncio.gather(first, *rest, return_exceptions=True)
    assert outcomes[0] == 10
    assert all(isinstance(outcome, Bad) for outcome in outcomes[1:])
    assert writes.batches == [[1], [-2, 3]]


async def test_a_caller_giving_up_never_cancels_the_write_holding_others() -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write", key=lambda item: item, concurrency=1)
    first = asyncio.create_task(coalescer.submit(1))
    await until(lambda: len(writes.batches) == 1, what="the first write started")
    quitter, stayer = asyncio.create_task(coalescer.submit(2)), asyncio.create_task(coalescer.submit(3))
    await until(lambda: coalescer.queued == 2, what="two calls queued")
    quitter.cancel()
    first.cancel()  # its write is under way and goes on
    writes.gate.set()
    assert await stayer == 30
    assert writes.batches == [[1], [3]], "the call that gave up before its write started is not written"
    await coalescer.wait_idle()
    assert quitter.cancelled()
    assert first.cancelled()


async def test_each_write_is_a_span_linked_to_every_caller(spans: InMemorySpanExporter) -> None:
    writes = Writes()
    writes.gate.clear()
    coalescer = Coalescer(writes, name="write things", key=lambda item: item, concurrency=1)
    tracer = trace.get_tracer("test")
    callers: list[int] = []

    async def call(n: int) -> int:
        with tracer.start_as_current_span(f"caller {n}") as span:
            callers.append(span.get_span_context().span_id)
            return await coalescer.submit(n)

    first = asyncio.create_task(call(1))
    await until(lambda: len(writes.batches) == 1, what="the first write started")
    rest = [asyncio.create_task(call(n)) for n in (2, 3)]
    await until(lambda: coalescer.queued == 2, what="two calls queued")
    writes.gate.set()
    await asyncio.gather(first, *rest)
    written = [s for s in spans.get_finished_spans() if s.name == "write things"]
    assert [s.attributes["batch.size"] for s in written if s.attributes] == [1, 2]
    assert [[link.context.span_id for link in s.links] for s in written] == [callers[:1], callers[1:]]
    assert all(s.parent is None for s in written), "a write belongs to no single caller's trace"


def test_sizes_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Coalescer(Writes(), name="write", key=lambda item: item, max_batch=0)
