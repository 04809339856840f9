"""Routing use cases behind the gRPC API: each runs in one transaction, retried if Postgres picks it as the
victim of a deadlock or a serialization failure (rare: locks are always taken entry, offer, agent)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from services.kit import idempotency, idempotency_store
from services.kit.db import Connection
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.pagination import decode_token, encode_token, page_size
from services.routing import agent_store, agents, config_store, offer_store, offers, rules, stats, store, tickets
from services.routing.domain import (
    Agent,
    AgentCounts,
    AgentProfile,
    Offer,
    OfferState,
    Presence,
    Queue,
    QueueEntry,
    QueueStats,
    RoutingRule,
    check_queue,
)

T = TypeVar("T")
# Scope of CreateRule's in-flight claim (see services.kit.idempotency_store).
RULE_CLAIM_SCOPE = "routing_rule"
Clock = Callable[[], datetime]
_RETRIED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_ATTEMPTS = 3


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _uuid(value: str, code: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(code, f"{what} {value!r} does not exist") from None


def _cursor(token: str, read: Callable[[dict[str, Any]], T]) -> T | None:
    """The keyset position in a page token of ours, None for the first page."""
    cursor = decode_token(token)
    if cursor is None:
        return None
    try:
        return read(cursor)
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument(
            "invalid_page_token", "page_token: not a token from a previous page", field="page_token"
        ) from None


def _after(cursor: dict[str, Any]) -> str:
    return str(cursor["after"])


def rule_key(rule_id: str) -> uuid.UUID:
    return _uuid(rule_id, "rule_not_found", "routing rule")


class RoutingService:
    def __init__(self, pool: asyncpg.Pool, *, clock: Clock = _utcnow) -> None:
        self._pool = pool
        self._clock = clock

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn, conn.transaction():
                    return await work(conn)
            except _RETRIED:
                if attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn:
            return await work(conn)

    # --- tickets -----------------------------------------------------------------------------------------

    async def ticket_routing(self, ticket_id: str) -> QueueEntry:
        key = _uuid(ticket_id, "ticket_not_routed", "routed ticket")
        entry = await self._read(lambda conn: store.get_entry(conn, key))
        if entry is None:
            raise NotFound("ticket_not_routed", f"ticket {ticket_id!r} is not in routing")
        return entry

    async def transfer(self, ticket_id: str, *, to_agent: str, to_queue: str, by: str, reason: str) -> QueueEntry:
        key = _uuid(ticket_id, "ticket_not_routed", "routed ticket")
        return await self._run(
            lambda conn: tickets.transfer(
                conn, key, to_agent=to_agent, to_queue=to_queue, by=by, reason=reason[:500], now=self._clock()
            )
        )

    async def queue_stats(self, requested_size: int, token: str) -> tuple[list[QueueStats], str]:
        size = page_size(requested_size)
        after = _cursor(token, _after)
        now = self._clock()

        async def read(conn: Connection) -> list[QueueStats]:
            counts = await store.queue_counts(conn, after=after, limit=size, since=now - stats.STATS_WINDOW)
            all_rules = await config_store.all_rules(conn)
            result = []
            for c in counts:
                available = await store.agents_open_for(conn, stats.queue_keys(all_rules, c.queue))
                longest = max(now - c.oldest_waiting, timedelta(0)) if c.oldest_waiting else timedelta(0)
                result.append(
                    QueueStats(
                        queue=c.queue,
                        waiting=c.waiting,
                        longest_wait=longest,
                        agents_available=available,
                        agents_busy=c.agents_busy,
                        offers_outstanding=c.offers_outstanding,
                        estimated_wait=stats.estimate_wait(
                            waiting=c.waiting,
                            agents_available=available,
                            taken_in_window=c.assigned_recently,
                            window=stats.STATS_WINDOW,
                            longest_wait=longest,
                            mean_wait=c.mean_recent_wait,
                        ),
                    )
                )
            return result

        result = await self._read(read)
        return result, encode_token({"after": result[-1].queue}) if len(result) == size else ""

    # --- agents ------------------------------------------------------------------------------------------

    async def create_agent(self, agent_id: str, profile: AgentProfile, *, request_id: str = "") -> tuple[Agent, bool]:
        return await self._run(
            lambda conn: agents.create(conn, agent_id, profile, self._clock(), request_id=request_id)
        )

    async def get_agent(self, agent_id: str) -> Agent:
        return await self._read(lambda conn: agents.get(conn, agent_id))

    async def list_agents(
        self, presences: Sequence[Presence], skill: str, requested_size: int, token: str
    ) -> tuple[list[Agent], str]:
        size = page_size(requested_size)
        after = _cursor(token, _after)
        found = await self._read(
            lambda conn: agent_store.list_agents(conn, presences=presences, skill=skill, after=after, limit=size)
        )
        return found, encode_token({"after": found[-1].id}) if len(found) == size else ""

    async def count_agents(self) -> AgentCounts:
        return await self._read(agent_store.count_agents)

    async def update_agent(self, agent_id: str, profile: AgentProfile, expected_version: int) -> Agent:
        return await self._run(lambda conn: agents.update(conn, agent_id, profile, expected_version, self._clock()))

    async def set_presence(self, agent_id: str, presence: Presence) -> Agent:
        return await self._run(lambda conn: agents.set_presence(conn, agent_id, presence, self._clock()))

    # --- offers ------------------------------------------------------------------------------------------

    async def list_offers(
        self, agent_id: str, states: Sequence[OfferState], requested_size: int, token: str
    ) -> tuple[list[Offer], str]:
        size = page_size(requested_size)
        before = _cursor(token, lambda c: (datetime.fromisoformat(c["t"]), uuid.UUID(c["id"])))
        found = await self._read(
            lambda conn: offer_store.list_offers(conn, agent_id=agent_id, states=states, before=before, limit=size)
        )
        last = found[-1] if len(found) == size else None
        return found, encode_token({"t": last.created_at.isoformat(), "id": str(last.id)}) if last else ""

    async def accept_offer(self, offer_id: str, agent_id: str) -> Offer:
        key = _uuid(offer_id, "offer_not_found", "offer")
        return await self._run(lambda conn: offers.accept(conn, key, agent_id, self._clock()))

    async def decline_offer(self, offer_id: str, agent_id: str, reason: str) -> Offer:
        key = _uuid(offer_id, "offer_not_found", "offer")
        return await self._run(lambda conn: offers.decline(conn, key, agent_id, reason, self._clock()))

    # --- rules and queues --------------------------------------------------------------------------------

    async def list_rules(self, requested_size: int, token: str) -> tuple[list[RoutingRule], str]:
        size = page_size(requested_size)
        after_rule = _cursor(token, lambda c: (int(c["p"]), uuid.UUID(c["id"])))
        found = await self._read(lambda conn: config_store.list_rules(conn, after=after_rule, limit=size))
        last = found[-1] if len(found) == size else None
        return found, encode_token({"p": last.position, "id": str(last.id)}) if last else ""

    async def create_rule(self, request_id: str, rule: RoutingRule) -> tuple[RoutingRule, bool]:
        """Create; a retry with the same request_id returns the original and ``created=False``, another body
        under it is ``idempotency_key_reused``, and while the first is being served ``idempotency_key_in_flight``.
        """
        rules.check_rule(rule)
        fingerprint = idempotency.fingerprint(rule, exclude=("id", "version"))

        async def replay(conn: Connection) -> RoutingRule | None:
            earlier = await config_store.rule_by_request_id(conn, request_id)
            if earlier is None:
                return None
            idempotency.check_replay(earlier[1], fingerprint, "a routing rule")
            return earlier[0]

        async def work(conn: Connection) -> tuple[RoutingRule, bool]:
            if request_id:
                if not await idempotency_store.claim(conn, RULE_CLAIM_SCOPE, request_id):
                    raise idempotency.key_in_flight()
                existing = await replay(conn)
                if existing is not None:
                    return existing, False
            await config_store.ensure_queue(conn, rule.queue)
            if await config_store.insert_rule(conn, rule, request_id or None, fingerprint):
                return await self._rule(conn, rule.id), True
            existing = await replay(conn)
            if existing is None:  # the conflicting insert rolled back after all; safe to retry
                raise asyncpg.SerializationError("concurrent create with the same request_id")
            return existing, False

        return await self._run(work)

    async def update_rule(self, rule: RoutingRule) -> RoutingRule:
        rules.check_rule(rule)

        async def work(conn: Connection) -> RoutingRule:
            current = await config_store.lock_rule(conn, rule.id)
            if current is None:
                raise NotFound("rule_not_found", f"routing rule {rule.id} does not exist")
            if rule.version and rule.version != current.version:
                raise FailedPrecondition(
                    "version_conflict",
                    f"the rule is at version {current.version}, not {rule.version}; reload and retry",
                    current_version=str(current.version),
                )
            await config_store.ensure_queue(conn, rule.queue)
            await config_store.update_rule(conn, rule)
            return await self._rule(conn, rule.id)

        return await self._run(work)

    async def delete_rule(self, rule_id: str) -> None:
        key = rule_key(rule_id)
        if not await self._run(lambda conn: config_store.delete_rule(conn, key)):
            raise NotFound("rule_not_found", f"routing rule {rule_id!r} does not exist")

    @staticmethod
    async def _rule(conn: Connection, rule_id: uuid.UUID) -> RoutingRule:
        found = await config_store.lock_rule(conn, rule_id)
        assert found is not None
        return found

    async def list_queues(self, requested_size: int, token: str) -> tuple[list[Queue], str]:
        size = page_size(requested_size)
        after = _cursor(token, _after)
        found = await self._read(lambda conn: config_store.list_queues(conn, after=after, limit=size))
        return found, encode_token({"after": found[-1].name}) if len(found) == size else ""

    async def update_queue(self, queue: Queue) -> Queue:
        check_queue(queue)
        saved = await self._run(lambda conn: config_store.upsert_queue(conn, queue))
        if saved is None:
            raise FailedPrecondition(
                "version_conflict", f"queue {queue.name!r} is not at version {queue.version}; reload and retry"
            )
        return saved
