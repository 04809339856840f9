"""Samplers for the bus gauges: outbox backlog, dead letters (Postgres) and consumer lag (JetStream)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from nats.js import JetStreamContext

from services.kit import metrics
from services.kit.bus import store
from services.kit.bus.streams import ConsumerSpec


def bus_samplers(
    pool: asyncpg.Pool, js: JetStreamContext, service: str, consumers: Sequence[ConsumerSpec]
) -> list[tuple[str, metrics.Sample]]:
    durables = [spec.durable for spec in consumers]

    async def outbox() -> None:
        async with pool.acquire() as conn:
            backlog = await store.outbox_backlog(conn)
            dead = await store.unreplayed_dead_letters(conn)
        metrics.OUTBOX_UNPUBLISHED.labels(service).set(backlog.unpublished)
        metrics.OUTBOX_OLDEST_AGE.labels(service).set(backlog.oldest_age_s)
        for durable in {*durables, *dead}:
            metrics.DEAD_LETTERS_STORED.labels(durable).set(dead.get(durable, 0))

    async def consumer_lag() -> None:
        # One request per consumer, a few per service; the server answers from memory.
        for spec in consumers:
            info = await js.consumer_info(spec.stream.name, spec.durable)
            metrics.CONSUMER_PENDING.labels(spec.durable).set(info.num_pending or 0)
            metrics.CONSUMER_ACK_PENDING.labels(spec.durable).set(info.num_ack_pending or 0)

    return [(f"{service}-outbox", outbox), (f"{service}-consumer-lag", consumer_lag)]
