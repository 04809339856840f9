"""What admins configure, cached per process and checked against the database's generation on every use.

Every ticket event reads the routing rules, the queues, the SLA policies and their calendars. They change a
few times a day, so a replica keeps one copy and reads only ``config_generation`` (one indexed row) in the
event's transaction; a different generation means a change committed since, and the copy is loaded again.
Generations are random, never reused, so entries from different databases (tests run several) cannot be
confused, and the few kept are the generations in use right now.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass

from services.kit.db import Connection
from services.routing import config_store
from services.routing.domain import Queue, RoutingRule
from services.routing.sla import store as sla_store
from services.routing.sla.calendar import time_bases
from services.routing.sla.domain import Rules

# One per database this process talks to, and the one before a change while its readers finish.
_KEPT = 4


@dataclass(frozen=True)
class Config:
    generation: uuid.UUID
    rules: list[RoutingRule]
    queues: dict[str, Queue]
    sla: Rules


class ConfigCache:
    def __init__(self, kept: int = _KEPT) -> None:
        self._kept = kept
        self._entries: OrderedDict[uuid.UUID, Config] = OrderedDict()

    async def current(self, conn: Connection) -> Config:
        """The configuration as of this transaction: one round trip when cached, four after a change."""
        generation = await config_store.generation(conn)
        config = self._entries.get(generation)
        if config is None:
            # Read after the generation: at least as new as what that generation names. A change committed in
            # between gives the next reader another generation, which loads again.
            config = await _load(conn, generation)
            self._entries[generation] = config
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(generation)
        return config


async def _load(conn: Connection, generation: uuid.UUID) -> Config:
    rules, queues = await config_store.routing_config(conn)
    policies = await sla_store.all_policies(conn)
    calendars = await sla_store.all_calendars(conn)
    return Config(generation, rules, queues, Rules(policies=policies, time_bases=time_bases(calendars)))


_process_cache = ConfigCache()


async def current(conn: Connection) -> Config:
    """The configuration as of this transaction, from this process's cache."""
    return await _process_cache.current(conn)


class OnDemand:
    """This transaction's configuration, read when first asked for (most events need none), then kept."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._config: Config | None = None

    async def get(self) -> Config:
        if self._config is None:
            self._config = await current(self._conn)
        return self._config

    async def sla_rules(self) -> Rules:
        return (await self.get()).sla
