"""SQL for what admins configure: routing rules and queues."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg

from services.kit.db import Connection
from services.routing.domain import Queue, RoutingRule, RuleMatch
from services.routing.store import steps_from_json, steps_to_json

# --- generation ------------------------------------------------------------------------------------------


async def generation(conn: Connection) -> uuid.UUID:
    """The current configuration's generation: a new random value after any change (migration 0007)."""
    value: uuid.UUID = await conn.fetchval("SELECT generation FROM config_generation")
    return value


# --- rules -----------------------------------------------------------------------------------------------


async def routing_config(conn: Connection) -> tuple[list[RoutingRule], dict[str, Queue]]:
    """Every rule (in evaluation order) and every queue, in one round trip: what routing a new ticket reads."""
    row = await conn.fetchrow(
        """
        SELECT
            (SELECT coalesce(json_agg(json_build_object(
                        'id', id, 'name', name, 'position', position, 'categories', match_categories,
                        'languages', match_languages, 'priorities', match_priorities, 'tiers', match_tiers,
                        'queue', queue, 'steps', steps, 'version', version) ORDER BY position, id), '[]')
             FROM routing_rules) AS rules,
            (SELECT coalesce(json_agg(json_build_object(
                        'name', name, 'direct', direct_assignment, 'timeout_s', extract(epoch FROM offer_timeout),
                        'requeue', requeue_on_offline, 'version', version)), '[]')
             FROM queues) AS queues
        """
    )
    assert row is not None
    found_rules = [
        RoutingRule(
            id=uuid.UUID(r["id"]),
            name=r["name"],
            position=r["position"],
            match=RuleMatch(
                categories=tuple(r["categories"]),
                languages=tuple(r["languages"]),
                priorities=tuple(r["priorities"]),
                customer_tiers=tuple(r["tiers"]),
            ),
            queue=r["queue"],
            steps=steps_from_json(json.dumps(r["steps"])),
            version=r["version"],
        )
        for r in json.loads(row["rules"])
    ]
    queues = {
        q["name"]: Queue(
            name=q["name"],
            direct_assignment=q["direct"],
            offer_timeout=timedelta(seconds=float(q["timeout_s"])),
            requeue_on_offline=q["requeue"],
            version=q["version"],
        )
        for q in json.loads(row["queues"])
    }
    return found_rules, queues


async def all_rules(conn: Connection) -> list[RoutingRule]:
    """Every rule in evaluation order (few: an admin edits them by hand)."""
    rows = await conn.fetch(
        """
        SELECT id, name, position, match_categories, match_languages, match_priorities, match_tiers, queue,
               steps, version
        FROM routing_rules ORDER BY position, id
        """
    )
    return [_rule(r) for r in rows]


async def list_rules(conn: Connection, *, after: tuple[int, uuid.UUID] | None, limit: int) -> list[RoutingRule]:
    rows = await conn.fetch(
        """
        SELECT id, name, position, match_categories, match_languages, match_priorities, match_tiers, queue,
               steps, version
        FROM routing_rules
        WHERE $1::int IS NULL OR (position, id) > ($1, $2::uuid)
        ORDER BY position, id
        LIMIT $3
        """,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_rule(r) for r in rows]


async def rule_by_request_id(conn: Connection, request_id: str) -> tuple[RoutingRule, str] | None:
    """The rule ``request_id`` created and the fingerprint of that request."""
    row = await conn.fetchrow(
        """
        SELECT id, name, position, match_categories, match_languages, match_priorities, match_tiers, queue,
               steps, version, request_fingerprint
        FROM routing_rules WHERE request_id = $1
        """,
        request_id,
    )
    return (_rule(row), row["request_fingerprint"]) if row else None


async def lock_rule(conn: Connection, rule_id: uuid.UUID) -> RoutingRule | None:
    row = await conn.fetchrow(
        """
        SELECT id, name, position, match_categories, match_languages, match_priorities, match_tiers, queue,
               steps, version
        FROM routing_rules WHERE id = $1 FOR UPDATE
        """,
        rule_id,
    )
    return _rule(row) if row else None


async def insert_rule(conn: Connection, rule: RoutingRule, request_id: str | None, fingerprint: str = "") -> bool:
    """False if a rule was already created under ``request_id``."""
    inserted = await conn.fetchval(
        """
        INSERT INTO routing_rules (id, name, position, match_categories, match_languages, match_priorities,
                                   match_tiers, queue, steps, version, request_id, request_fingerprint)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, 1, $10, $11)
        ON CONFLICT (request_id) DO NOTHING
        RETURNING true
        """,
        *_rule_args(rule),
        request_id,
        fingerprint,
    )
    return bool(inserted)


async def update_rule(conn: Connection, rule: RoutingRule) -> None:
    await conn.execute(
        """
        UPDATE routing_rules SET name = $2, position = $3, match_categories = $4, match_languages = $5,
            match_priorities = $6, match_tiers = $7, queue = $8, steps = $9::jsonb, version = version + 1,
            updated_at = now()
        WHERE id = $1
        """,
        *_rule_args(rule),
    )


async def delete_rule(conn: Connection, rule_id: uuid.UUID) -> bool:
    status = await conn.execute("DELETE FROM routing_rules WHERE id = $1", rule_id)
    return bool(status != "DELETE 0")


def _rule_args(rule: RoutingRule) -> tuple[object, ...]:
    return (
        rule.id,
        rule.name,
        rule.position,
        list(rule.match.categories),
        list(rule.match.languages),
        list(rule.match.priorities),
        list(rule.match.customer_tiers),
        rule.queue,
        steps_to_json(rule.steps),
    )


def _rule(row: asyncpg.Record) -> RoutingRule:
    return RoutingRule(
        id=row["id"],
        name=row["name"],
        position=row["position"],
        match=RuleMatch(
            categories=tuple(row["match_categories"]),
            languages=tuple(row["match_languages"]),
            priorities=tuple(row["match_priorities"]),
            customer_tiers=tuple(row["match_tiers"]),
        ),
        queue=row["queue"],
        steps=steps_from_json(row["steps"]),
        version=row["version"],
    )


# --- queues ----------------------------------------------------------------------------------------------


async def get_queue(conn: Connection, name: str) -> Queue | None:
    row = await conn.fetchrow(
        "SELECT name, direct_assignment, offer_timeout, requeue_on_offline, version FROM queues WHERE name = $1",
        name,
    )
    return _queue(row) if row else None


async def ensure_queue(conn: Connection, name: str) -> None:
    """Create the queue with default settings if it does not exist (a rule may name a new queue)."""
    await conn.execute("INSERT INTO queues (name) VALUES ($1) ON CONFLICT DO NOTHING", name)


async def list_queues(conn: Connection, *, after: str | None, limit: int) -> list[Queue]:
    rows = await conn.fetch(
        """
        SELECT name, direct_assignment, offer_timeout, requeue_on_offline, version FROM queues
        WHERE $1::text IS NULL OR name > $1
        ORDER BY name
        LIMIT $2
        """,
        after,
        limit,
    )
    return [_queue(r) for r in rows]


async def upsert_queue(conn: Connection, queue: Queue) -> Queue | None:
    """Create or replace; None if ``queue.version`` is set and is not the stored one."""
    row = await conn.fetchrow(
        """
        INSERT INTO queues (name, direct_assignment, offer_timeout, requeue_on_offline)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (name) DO UPDATE SET
            direct_assignment = EXCLUDED.direct_assignment, offer_timeout = EXCLUDED.offer_timeout,
            requeue_on_offline = EXCLUDED.requeue_on_offline, version = queues.version + 1, updated_at = now()
        WHERE $5 = 0 OR queues.version = $5
        RETURNING name, direct_assignment, offer_timeout, requeue_on_offline, version
        """,
        queue.name,
        queue.direct_assignment,
        queue.offer_timeout,
        queue.requeue_on_offline,
        queue.version,
    )
    return _queue(row) if row else None


def _queue(row: asyncpg.Record) -> Queue:
    timeout: timedelta = row["offer_timeout"]
    return Queue(
        name=row["name"],
        direct_assignment=row["direct_assignment"],
        offer_timeout=timeout,
        requeue_on_offline=row["requeue_on_offline"],
        version=row["version"],
    )
