"""Who may take which ticket, and in what order. Pure.

The store runs the same decisions as two indexed queries; the reference pickers here say what those queries
must return, and tests hold the queries to them.

- A ticket at a step *needs* every skill the step requires, at the required level or above, and an agent
  speaking its language unless the step says ``any_agent``.
- Waiting tickets go in order of priority (urgent first), then earliest SLA deadline (none last), then age.
- Among eligible agents: fewest active tickets, then longest idle (never assigned first), then highest
  proficiency in the step's first required skill.

For the indexes a step's needs are split into a *key* (the first required skill, its level and the language,
'' meaning none) and the further requirements. An agent can take the tickets under every key it satisfies:
each of its skills at each level up to its proficiency, or no skill, in each of its languages, or none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.routing.domain import PRIORITY_RANK, Agent, EntryState, QueueEntry, Step

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, order=True)
class RoutingKey:
    skill: str
    level: int
    language: str


@dataclass(frozen=True, slots=True)
class Need:
    key: RoutingKey
    # Further skills required by the step: skill -> minimum proficiency.
    extra: Mapping[str, int] = field(default_factory=dict)


def need_for(step: Step, language: str) -> Need:
    language = "" if step.any_agent else language
    if not step.requirements:
        return Need(RoutingKey("", 0, language))
    first, *rest = step.requirements
    return Need(RoutingKey(first.skill, first.min_proficiency, language), {r.skill: r.min_proficiency for r in rest})


def need_of(entry: QueueEntry) -> Need:
    return need_for(entry.current_step, entry.language)


def eligible(agent: Agent, need: Need) -> bool:
    """Skills and language only; whether the agent takes work now (presence, capacity) is separate."""
    key = need.key
    if key.language and key.language not in agent.languages:
        return False
    if key.skill and agent.proficiency(key.skill) < key.level:
        return False
    return all(agent.proficiency(skill) >= level for skill, level in need.extra.items())


def agent_order(agent: Agent, need: Need) -> tuple[int, bool, datetime, int, str]:
    last = agent.last_assigned_at
    return (agent.active, last is not None, last or _EPOCH, -agent.proficiency(need.key.skill), agent.id)


def ticket_order(entry: QueueEntry) -> tuple[int, bool, datetime, datetime, str]:
    due = entry.sla_due_at
    return (-PRIORITY_RANK[entry.priority], due is None, due or _EPOCH, entry.ticket_created_at, str(entry.ticket_id))


def probe_keys(agent: Agent) -> list[RoutingKey]:
    """Every key under which a waiting ticket may sit that this agent can take."""
    languages = ["", *agent.languages]
    skills = [("", 0)] + [(s.name, level) for s in agent.skills for level in range(1, s.proficiency + 1)]
    return [RoutingKey(skill, level, language) for skill, level in skills for language in languages]


def best_agent(agents: Iterable[Agent], need: Need, exclude: Iterable[str] = ()) -> Agent | None:
    """The agent a ticket with ``need`` is offered to, or None."""
    skip = set(exclude)
    fit = [a for a in agents if a.takes_work and a.id not in skip and eligible(a, need)]
    return min(fit, key=lambda a: agent_order(a, need), default=None)


def best_ticket(entries: Iterable[QueueEntry], agent: Agent) -> QueueEntry | None:
    """The waiting ticket ``agent`` is offered next, or None; the agent's own last let-go is skipped."""
    fit = [
        e
        for e in entries
        if e.state is EntryState.WAITING and e.last_agent_id != agent.id and eligible(agent, need_of(e))
    ]
    return min(fit, key=ticket_order, default=None)
