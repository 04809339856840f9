"""The ops overview, assembled from routing's queue statistics and SLA figures. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from services.gateway.schemas import QueueStatsOut
from services.gateway.schemas_config import SlaMetric, SlaStatsOut
from services.gateway.schemas_ops import OpsAgentsOut, OpsOverviewOut, OpsSlaOut


def overview(
    *,
    now: datetime,
    window: timedelta,
    queues: Sequence[QueueStatsOut],
    sla: Iterable[SlaStatsOut],
    agents: OpsAgentsOut,
) -> OpsOverviewOut:
    return OpsOverviewOut(
        generated_at=now,
        sla_window_seconds=int(window.total_seconds()),
        queues=sorted(queues, key=lambda q: (-q.waiting, -q.longest_wait_seconds, q.queue)),
        sla=sla_rows(sla),
        waiting=sum(q.waiting for q in queues),
        longest_wait_seconds=max((q.longest_wait_seconds for q in queues), default=0.0),
        agents_available=sum(q.agents_available for q in queues),
        agents_busy=sum(q.agents_busy for q in queues),
        agents=agents,
    )


def sla_rows(stats: Iterable[SlaStatsOut]) -> list[OpsSlaOut]:
    """Policies folded together: per (queue, metric), then per metric over every queue (``queue`` null)."""
    sums: dict[tuple[str | None, SlaMetric], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for s in stats:
        for key in ((s.queue or "", s.metric), (None, s.metric)):
            row = sums[key]
            row[0] += s.completed
            row[1] += s.met
            row[2] += s.breached
            row[3] += s.at_risk
    return [
        OpsSlaOut(
            queue=queue,
            metric=metric,
            completed=completed,
            met=met,
            breached=breached,
            at_risk=at_risk,
            attainment_percent=round(100.0 * met / completed, 2) if completed else 100.0,
        )
        for (queue, metric), (completed, met, breached, at_risk) in sorted(
            sums.items(), key=lambda item: (item[0][0] is not None, item[0][0] or "", item[0][1])
        )
    ]
