"""Versioned SQL migrations, one Postgres schema per service.

Files named ``NNNN_name.sql`` are applied in order and recorded in ``<schema>.schema_migrations``, all in
one transaction: a failing file leaves the schema as it was. The bus tables (outbox, inbox, dead letters)
come first in every schema.
An advisory lock serialises concurrent migrators (several replicas, or a migrate job racing a service).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from services.kit.db import Connection

log = logging.getLogger(__name__)

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
BUS_MIGRATIONS = "services.kit"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # e.g. "kit/0001_bus" or "ticketing/0001_tickets"
    sql: str


def load_migrations(package: str, prefix: str) -> list[Migration]:
    """The ``migrations/`` folder of a package, in file-name order."""
    folder: Traversable = resources.files(package) / "migrations"
    files = sorted((f for f in folder.iterdir() if _MIGRATION_FILE.match(f.name)), key=lambda f: f.name)
    return [Migration(version=f"{prefix}/{f.name.removesuffix('.sql')}", sql=f.read_text("utf-8")) for f in files]


async def migrate(conn: Connection, schema: str, service_package: str) -> list[str]:
    """Bring ``schema`` up to date with the bus migrations and the service's own; return what was applied."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    migrations = [
        *load_migrations(BUS_MIGRATIONS, "kit"),
        *load_migrations(service_package, schema),
    ]
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('supportdesk.migrate.' || $1))", schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
                version    text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():  # a savepoint, so SET LOCAL ends with the file
                await conn.execute(f"SET LOCAL search_path TO {schema}")
                await conn.execute(migration.sql)
                await conn.execute(f"INSERT INTO {schema}.schema_migrations (version) VALUES ($1)", migration.version)
            applied.append(migration.version)
            log.info("migration applied", extra={"schema": schema, "version": migration.version})
    return applied


async def pending_migrations(conn: Connection, schema: str, service_package: str) -> list[str]:
    """Versions not yet applied; a service refuses to start against an out-of-date schema."""
    known = [m.version for m in [*load_migrations(BUS_MIGRATIONS, "kit"), *load_migrations(service_package, schema)]]
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{schema}.schema_migrations")
    if not exists:
        return known
    done = {r["version"] for r in await conn.fetch(f"SELECT version FROM {schema}.schema_migrations")}
    return [v for v in known if v not in done]
