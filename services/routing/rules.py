"""Routing rules: which rule takes a ticket, which of its steps is in force, and what a valid rule is. Pure."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from services.routing.domain import (
    CATEGORIES,
    PRIORITIES,
    RoutingRule,
    RuleMatch,
    Step,
    TicketFacts,
    check_languages,
    check_name,
    check_proficiency,
    invalid,
    queue_for,
)

# When no rule takes a ticket: any available agent who speaks its language.
FALLBACK_STEPS = (Step(after=timedelta(0)),)
MAX_STEPS = 10


def matches(match: RuleMatch, ticket: TicketFacts) -> bool:
    return (
        _takes(match.categories, ticket.category)
        and _takes(match.languages, ticket.language)
        and _takes(match.priorities, ticket.priority)
        and _takes(match.customer_tiers, ticket.customer_tier)
    )


def _takes(allowed: Sequence[str], value: str) -> bool:
    return not allowed or value in allowed


def select_rule(rules: Iterable[RoutingRule], ticket: TicketFacts) -> RoutingRule | None:
    """The first matching rule by position (then id, so the choice is stable)."""
    return next((r for r in sorted(rules, key=lambda r: (r.position, r.id)) if matches(r.match, ticket)), None)


def route(rules: Iterable[RoutingRule], ticket: TicketFacts) -> tuple[str, tuple[Step, ...], RoutingRule | None]:
    """(queue, steps, rule) for a ticket: its rule's, or the category's queue with the fallback step."""
    rule = select_rule(rules, ticket)
    if rule is None:
        return queue_for(ticket.category), FALLBACK_STEPS, None
    return rule.queue, rule.steps, rule


def rule_for_queue(rules: Iterable[RoutingRule], queue: str, ticket: TicketFacts) -> RoutingRule | None:
    """For a transfer into ``queue``: the first rule of that queue the ticket matches, else its first rule."""
    mine = sorted((r for r in rules if r.queue == queue), key=lambda r: (r.position, r.id))
    return next((r for r in mine if matches(r.match, ticket)), mine[0] if mine else None)


def step_in_force(steps: Sequence[Step], routed_since: datetime, now: datetime) -> int:
    """The last step whose ``after`` has passed; step deadlines count from ``routed_since`` only."""
    age = now - routed_since
    current = 0
    for index, step in enumerate(steps):
        if step.after <= age:
            current = index
    return current


def next_relaxation(steps: Sequence[Step], step: int, routed_since: datetime) -> tuple[int, datetime] | None:
    """(index, due time) of the step after ``step``, or None at the last step."""
    if step + 1 >= len(steps):
        return None
    return step + 1, routed_since + steps[step + 1].after


def escalates(steps: Sequence[Step], old: int, new: int) -> bool:
    """Whether moving from step ``old`` to ``new`` enters a step that asks for a supervisor."""
    return any(steps[i].notify_supervisor for i in range(old + 1, min(new, len(steps) - 1) + 1))


def check_rule(rule: RoutingRule) -> RoutingRule:
    if not rule.name.strip() or len(rule.name) > 200:
        raise invalid("rule.name", "required, at most 200 characters")
    if rule.position < 0:
        raise invalid("rule.position", "must not be negative")
    check_name(rule.queue, "rule.queue")
    for category in rule.match.categories:
        if category not in CATEGORIES:
            raise invalid("rule.match.categories", f"unknown category {category!r}")
    for priority in rule.match.priorities:
        if priority not in PRIORITIES:
            raise invalid("rule.match.priorities", f"unknown priority {priority!r}")
    check_languages(rule.match.languages, "rule.match.languages")
    check_steps(rule.steps)
    return rule


def check_steps(steps: Sequence[Step]) -> None:
    if not steps:
        raise invalid("rule.steps", "at least one step")
    if len(steps) > MAX_STEPS:
        raise invalid("rule.steps", f"at most {MAX_STEPS}")
    if steps[0].after != timedelta(0):
        raise invalid("rule.steps.after", "the first step applies from the start (zero)")
    for before, after in itertools.pairwise(steps):
        if after.after <= before.after:
            raise invalid("rule.steps.after", "each step must start later than the one before")
    for step in steps:
        names = [r.skill for r in step.requirements]
        if len(set(names)) != len(names):
            raise invalid("rule.steps.requirements", "a skill is required twice in one step")
        for requirement in step.requirements:
            check_name(requirement.skill, "rule.steps.requirements.skill")
            check_proficiency(requirement.min_proficiency, "rule.steps.requirements.min_proficiency")
