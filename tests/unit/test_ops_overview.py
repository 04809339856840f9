"""The ops overview folds routing's figures: queues ordered by need, SLA per queue and over every queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.gateway.ops_overview import overview
from services.gateway.schemas import QueueStatsOut
from services.gateway.schemas_config import SlaMetric, SlaStatsOut
from services.gateway.schemas_ops import OpsAgentsOut

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AGENTS = OpsAgentsOut(available=2, busy=1, away=1, offline=3)


def queue(name: str, waiting: int, longest: float, available: int = 0, busy: int = 0) -> QueueStatsOut:
    return QueueStatsOut(
        queue=name,
        waiting=waiting,
        longest_wait_seconds=longest,
        agents_available=available,
        agents_busy=busy,
        offers_outstanding=0,
        estimated_wait_seconds=0,
    )


def stats(queue: str, metric: SlaMetric, met: int, breached: int, at_risk: int, policy: str = "p") -> SlaStatsOut:
    return SlaStatsOut(
        policy_id=policy,
        queue=queue,
        metric=metric,
        completed=met + breached,
        met=met,
        breached=breached,
        attainment_percent=0,
        at_risk=at_risk,
        p50_seconds=None,
        p90_seconds=None,
        p99_seconds=None,
    )


def test_queues_most_in_need_come_first_and_totals_add_up() -> None:
    result = overview(
        now=NOW,
        window=timedelta(hours=24),
        queues=[queue("cards", 1, 30, 2), queue("payments", 4, 200, busy=3), queue("general", 0, 0, 1)],
        sla=[],
        agents=AGENTS,
    )
    assert [q.queue for q in result.queues] == ["payments", "cards", "general"]
    assert (result.waiting, result.longest_wait_seconds, result.agents_available, result.agents_busy) == (5, 200, 3, 3)
    assert result.sla == []
    assert result.agents == AGENTS  # each agent once, from routing, not summed over queues
    assert result.sla_window_seconds == 86400


def test_sla_is_folded_over_policies_per_queue_then_over_every_queue() -> None:
    first = SlaMetric.FIRST_RESPONSE
    result = overview(
        now=NOW,
        window=timedelta(hours=1),
        queues=[],
        agents=AGENTS,
        sla=[
            stats("payments", first, met=8, breached=1, at_risk=2, policy="urgent"),
            stats("payments", first, met=1, breached=0, at_risk=0, policy="default"),
            stats("cards", first, met=0, breached=2, at_risk=1),
            stats("cards", SlaMetric.RESOLUTION, met=0, breached=0, at_risk=0),
        ],
    )
    rows = [(r.queue, r.metric, r.met, r.breached, r.at_risk, r.attainment_percent) for r in result.sla]
    assert rows == [
        (None, first, 9, 3, 3, 75.0),
        (None, SlaMetric.RESOLUTION, 0, 0, 0, 100.0),
        ("cards", first, 0, 2, 1, 0.0),
        ("cards", SlaMetric.RESOLUTION, 0, 0, 0, 100.0),
        ("payments", first, 9, 1, 2, 90.0),
    ]
