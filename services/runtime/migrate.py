"""Applies every service's migrations: what ``supportdesk migrate`` and ``supportdesk up`` run first."""

from __future__ import annotations

import asyncpg

from services.kit.migrations import migrate

# (schema, package holding migrations/) per service that owns tables.
SERVICE_SCHEMAS = (
    ("ticketing", "services.ticketing"),
    ("routing", "services.routing"),
    ("notify", "services.notify"),
)


async def migrate_all(database_url: str) -> dict[str, list[str]]:
    """Bring each service schema up to date; return the versions applied per schema."""
    conn = await asyncpg.connect(database_url)
    try:
        return {schema: await migrate(conn, schema, package) for schema, package in SERVICE_SCHEMAS}
    finally:
        await conn.close()
