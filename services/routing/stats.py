"""Live queue statistics: who counts as an agent of a queue, and the estimated wait. Pure.

Estimated wait for a customer joining a queue now (``estimate_wait``), from what the queue did recently:

- an eligible agent is free for the newcomer (more free agents than tickets waiting): zero;
- otherwise, with ``r`` = tickets of this queue that reached an agent in the last ``STATS_WINDOW`` divided by
  the window, the newcomer waits for the ``waiting + 1 - agents_available`` tickets ahead of it (and itself)
  to be taken at that rate: ``(waiting + 1 - agents_available) / r``;
- with no ticket taken in the window there is no rate to go on, and the honest figure is a lower bound: the
  longest current wait (someone has already waited that long), or the mean wait of the window if larger.

It ignores priority (an urgent ticket jumps ahead of this estimate) and is capped at a day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from services.routing.domain import RoutingRule
from services.routing.matching import RoutingKey, need_for

STATS_WINDOW = timedelta(minutes=15)
_CAP = timedelta(days=1)


def queue_keys(rules: Iterable[RoutingRule], queue: str) -> list[RoutingKey]:
    """What an agent must meet to take a new ticket of ``queue`` (its rules' first steps; any language)."""
    keys = sorted({need_for(r.steps[0], "").key for r in rules if r.queue == queue and r.steps})
    return keys or [RoutingKey("", 0, "")]


def estimate_wait(
    *,
    waiting: int,
    agents_available: int,
    taken_in_window: int,
    window: timedelta,
    longest_wait: timedelta,
    mean_wait: timedelta | None,
) -> timedelta:
    if agents_available > waiting:
        return timedelta(0)
    if taken_in_window > 0:
        per_ticket = window / taken_in_window
        return min(per_ticket * (waiting + 1 - agents_available), _CAP)
    return min(max(longest_wait, mean_wait or timedelta(0)), _CAP)
