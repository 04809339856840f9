"""Routing's metrics: queues, agents, offers, SLA outcomes and time to first response (timers: ``timer_metrics``).

Counters are counted from the events the outbox relay got acknowledged (``on_published``): each fact once,
after its transaction committed, off the request path. Gauges are read from routing's tables on a slow timer
(``samplers``). Labels are queues and skills (admin-defined, a handful each), metrics, priorities, presences
and timer kinds.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from prometheus_client import Counter, Gauge, Histogram

from services.kit.bus.envelope import Envelope
from services.kit.metrics import Sample
from services.routing import convert, metrics_store
from services.routing.sla import convert as sla_convert

PRESENCES = ("available", "away", "offline")
SLA_METRICS = ("first_response", "next_response", "resolution")
CLOCK_STATUSES = ("on_track", "at_risk", "breached")

QUEUE_WAITING = Gauge("supportdesk_queue_waiting_tickets", "Tickets waiting for an agent, by queue.", ["queue"])
QUEUE_LONGEST_WAIT = Gauge(
    "supportdesk_queue_longest_wait_seconds", "How long the oldest waiting ticket has waited, by queue.", ["queue"]
)
SKILL_WAITING = Gauge(
    "supportdesk_skill_waiting_tickets",
    "Tickets waiting for an agent whose current routing step requires the skill, by skill.",
    ["skill"],
)
SKILL_LONGEST_WAIT = Gauge(
    "supportdesk_skill_longest_wait_seconds",
    "How long the oldest waiting ticket requiring the skill has waited, by skill.",
    ["skill"],
)
QUEUE_GAUGES = (QUEUE_WAITING, QUEUE_LONGEST_WAIT)
SKILL_GAUGES = (SKILL_WAITING, SKILL_LONGEST_WAIT)
AGENTS = Gauge("supportdesk_agents", "Agents by presence, over every queue.", ["presence"])
SLA_RUNNING = Gauge(
    "supportdesk_sla_running_clocks",
    "Running SLA clocks by metric and status: on_track, at_risk (past 80 % of the target), breached.",
    ["metric", "status"],
)
OFFERS = Counter(
    "supportdesk_offers_total",
    "Offers by queue and outcome: created, accepted, declined, expired, withdrawn.",
    ["queue", "outcome"],
)
SLA_WARNINGS = Counter(
    "supportdesk_sla_warnings_total", "SLA warnings (a share of the target elapsed).", ["metric", "percent"]
)
SLA_BREACHES = Counter("supportdesk_sla_breaches_total", "SLA clocks that passed their deadline.", ["metric", "queue"])
SLA_MET = Counter(
    "supportdesk_sla_met_total",
    "SLA clocks fulfilled within their target; attainment = met / (met + breaches).",
    ["metric", "queue"],
)
FIRST_RESPONSE = Histogram(
    "supportdesk_first_response_seconds",
    "Time from a ticket's creation to the first human response, less paused time, by queue and priority.",
    ["queue", "priority"],
    buckets=(15, 30, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1800, 3600, 7200),
)


def on_published(event: Envelope) -> None:
    offer = convert.offer_outcome(event.type, event.data)
    if offer is not None:
        OFFERS.labels(*offer).inc()
        return
    fact = sla_convert.sla_fact(event.type, event.data)
    if fact is None:
        return
    if event.type == sla_convert.SLA_WARNING:
        SLA_WARNINGS.labels(fact.metric, str(fact.percent)).inc()
    elif event.type == sla_convert.SLA_BREACHED:
        SLA_BREACHES.labels(fact.metric, fact.queue).inc()
    else:
        if not fact.breached:
            SLA_MET.labels(fact.metric, fact.queue).inc()
        if fact.metric == "first_response" and fact.elapsed is not None:
            FIRST_RESPONSE.labels(fact.queue, fact.priority).observe(max(fact.elapsed.total_seconds(), 0.0))


def samplers(pool: asyncpg.Pool) -> list[tuple[str, Sample]]:
    known_queues: set[str] = set()
    known_skills: set[str] = set()

    async def gauges() -> None:
        async with pool.acquire() as conn:
            depths = await metrics_store.queue_depths(conn)
            skills = await metrics_store.skill_depths(conn)
            presence = await metrics_store.agents_by_presence(conn)
            clocks = await metrics_store.running_clocks(conn)
        _set_by_name(((d.queue, d.waiting, d.longest_wait_s) for d in depths), known_queues, QUEUE_GAUGES)
        _set_by_name(((d.skill, d.waiting, d.longest_wait_s) for d in skills), known_skills, SKILL_GAUGES)
        for name in PRESENCES:
            AGENTS.labels(name).set(presence.get(name, 0))
        for metric in SLA_METRICS:
            for status in CLOCK_STATUSES:
                SLA_RUNNING.labels(metric, status).set(clocks.get((metric, status), 0))

    return [("routing-gauges", gauges)]


def _set_by_name(depths: Iterable[tuple[str, int, float]], known: set[str], gauges: tuple[Gauge, Gauge]) -> None:
    """Waiting count and longest wait per queue (or skill); one no longer there stops reporting instead of
    freezing at its last value."""
    waiting, longest = gauges
    rows = list(depths)
    seen = {name for name, _, _ in rows}
    for gone in known - seen:
        waiting.remove(gone)
        longest.remove(gone)
    known.clear()
    known.update(seen)
    for name, count, age in rows:
        waiting.labels(name).set(count)
        longest.labels(name).set(age)
