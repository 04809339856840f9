"""The asyncpg pool of one service, bound to its own schema."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.kit.wake import WakingConnection

# What stores accept: a plain connection or one borrowed from the pool.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

# Failures that mean "Postgres is down or unreachable", as opposed to a bad query.
DB_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    TimeoutError,
)


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (one more round trip per use of a connection). asyncpg still rolls
    back an open transaction and drops listeners first; our code keeps no other session state: settings and
    advisory locks are transaction-scoped (``set_config(..., true)``, ``pg_advisory_xact_lock``)."""


async def create_pool(dsn: str, *, schema: str, application: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        reset=_keep_session,
        # Commits wake this process's relay and timer scheduler (services.kit.wake).
        connection_class=WakingConnection,
        # A service sees only its own tables unless it names another schema on purpose.
        server_settings={"search_path": schema, "application_name": application},
        command_timeout=30,
    )
    assert pool is not None
    return pool


async def wait_for_wake(wake: asyncio.Event, timeout_s: float) -> None:
    """Return when ``wake`` is set or after ``timeout_s``, whichever comes first.

    Not ``asyncio.wait_for(wake.wait(), ...)``: on Python 3.11 it swallows a cancellation that races the
    event being set, and the cancelled loop then runs on, so the task never stops.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout_s, 0.0)):
            await wake.wait()
