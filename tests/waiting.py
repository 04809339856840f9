"""Waiting on conditions with a deadline, never for a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 15.0,  # noqa: ASYNC109 - the deadline is the point of this helper
    what: str = "condition",
) -> None:
    """Return as soon as ``check()`` is true; fail if it is still false at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)
