"""Response body of the ops overview: the live state a supervisor watches."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.gateway.schemas import QueueStatsOut
from services.gateway.schemas_config import SlaMetric


class OpsSlaOut(BaseModel):
    queue: str | None = Field(description="Null: every queue together.")
    metric: SlaMetric
    completed: int = Field(description="Clocks that ended (met or breached) among those started in the window.")
    met: int
    breached: int = Field(description="Clocks that passed their deadline, still running or not.")
    at_risk: int = Field(description="Running clocks past 80 % of their target, not yet breached.")
    attainment_percent: float = Field(description="met / completed × 100; 100 when nothing completed.")


class OpsAgentsOut(BaseModel):
    """Every agent once, whatever their queues: the four add up to all agents."""

    available: int = Field(description="Available with free capacity: can be offered work now.")
    busy: int = Field(description="Available, at capacity.")
    away: int
    offline: int


class OpsOverviewOut(BaseModel):
    generated_at: datetime
    sla_window_seconds: int = Field(description="SLA figures cover clocks started this long ago or later.")
    queues: list[QueueStatsOut]
    sla: list[OpsSlaOut] = Field(description="Per queue and metric, then per metric over every queue.")
    waiting: int = Field(description="Tickets waiting in every queue.")
    longest_wait_seconds: float
    agents_available: int = Field(description="Sum over queues: an agent of two queues counts twice.")
    agents_busy: int
    agents: OpsAgentsOut = Field(description="Agents by presence over every queue, each agent once.")
