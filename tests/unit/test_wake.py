"""Background loops that sleep until woken must still stop when cancelled at the moment they are woken."""

from __future__ import annotations

import asyncio

import pytest

from services.kit.db import wait_for_wake

pytestmark = pytest.mark.unit


async def test_a_cancellation_racing_a_wake_up_stops_the_loop() -> None:
    wake = asyncio.Event()
    passes = 0

    async def loop() -> None:
        nonlocal passes
        while True:
            wake.clear()
            passes += 1
            await wait_for_wake(wake, 10)

    for _ in range(50):
        task = asyncio.create_task(loop())
        for _ in range(3):  # a few turns of the loop: the task is now waiting on the event
            await asyncio.sleep(0)
        assert passes == 1
        wake.set()
        task.cancel()  # in the same tick as the wake-up
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 1)
        passes = 0


async def test_it_returns_on_the_wake_up_or_at_the_timeout() -> None:
    wake = asyncio.Event()
    asyncio.get_running_loop().call_soon(wake.set)
    await asyncio.wait_for(wait_for_wake(wake, 30), 5)
    await asyncio.wait_for(wait_for_wake(asyncio.Event(), 0.01), 5)
