"""Routing rules: which rule takes a ticket, when its steps relax, what a valid rule is; queue estimates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.routing import convert
from services.routing.domain import (
    AgentProfile,
    Queue,
    Requirement,
    RoutingRule,
    RuleMatch,
    Skill,
    TicketFacts,
    check_profile,
    check_queue,
)
from services.routing.domain import Step as S
from services.routing.matching import RoutingKey
from services.routing.rules import (
    FALLBACK_STEPS,
    check_rule,
    escalates,
    next_relaxation,
    route,
    rule_for_queue,
    select_rule,
    step_in_force,
)
from services.routing.stats import estimate_wait, queue_keys

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
PAYMENTS_STEPS = (
    S(timedelta(0), (Requirement("payments", 4),)),
    S(timedelta(seconds=60), (Requirement("payments", 2),)),
    S(timedelta(seconds=120), (), notify_supervisor=True),
)


def rule(
    name: str, position: int, match: RuleMatch, queue: str = "payments", steps: tuple[S, ...] = PAYMENTS_STEPS
) -> RoutingRule:
    return RoutingRule(id=uuid.uuid4(), name=name, position=position, match=match, queue=queue, steps=steps)


def ticket(**overrides: str) -> TicketFacts:
    fields = {"category": "payment_failed", "language": "zh", "priority": "urgent", "customer_tier": "standard"}
    fields.update(overrides)
    return TicketFacts(ticket_id=uuid.uuid4(), status="new", version=1, created_at=T0, **fields)


# --- which rule ------------------------------------------------------------------------------------------


def test_the_first_matching_rule_by_position_wins() -> None:
    vip = rule("vip", 5, RuleMatch(customer_tiers=("vip",)), queue="vip")
    payments = rule("payments", 10, RuleMatch(categories=("payment_failed", "transaction_query")))
    catch_all = rule("general", 1000, RuleMatch(), queue="general")
    rules = [catch_all, payments, vip]
    assert select_rule(rules, ticket()) == payments
    assert select_rule(rules, ticket(customer_tier="vip")) == vip
    assert select_rule(rules, ticket(category="complaint")) == catch_all


def test_every_listed_field_must_match() -> None:
    chinese_urgent = rule("zh urgent", 1, RuleMatch(languages=("zh",), priorities=("urgent",)))
    assert select_rule([chinese_urgent], ticket()) == chinese_urgent
    assert select_rule([chinese_urgent], ticket(language="en")) is None
    assert select_rule([chinese_urgent], ticket(priority="normal")) is None


def test_without_a_matching_rule_the_category_queue_and_any_speaker_of_the_language() -> None:
    queue, steps, chosen = route([], ticket(category="bank_card"))
    assert (queue, steps, chosen) == ("cards", FALLBACK_STEPS, None)


def test_a_transfer_into_a_queue_uses_that_queues_matching_rule() -> None:
    general_zh = rule("general zh", 1, RuleMatch(languages=("zh",)), queue="general")
    general = rule("general", 2, RuleMatch(), queue="general")
    assert rule_for_queue([general, general_zh], "general", ticket()) == general_zh
    assert rule_for_queue([general, general_zh], "general", ticket(language="en")) == general
    assert rule_for_queue([general], "cards", ticket()) is None


# --- steps relax over time -------------------------------------------------------------------------------


def test_a_step_applies_from_its_time_on_counted_from_the_start() -> None:
    assert step_in_force(PAYMENTS_STEPS, T0, T0) == 0
    assert step_in_force(PAYMENTS_STEPS, T0, T0 + timedelta(seconds=59.999)) == 0
    assert step_in_force(PAYMENTS_STEPS, T0, T0 + timedelta(seconds=60)) == 1
    assert step_in_force(PAYMENTS_STEPS, T0, T0 + timedelta(seconds=119)) == 1
    assert step_in_force(PAYMENTS_STEPS, T0, T0 + timedelta(hours=5)) == 2


def test_the_next_relaxation_is_due_at_the_next_steps_time() -> None:
    assert next_relaxation(PAYMENTS_STEPS, 0, T0) == (1, T0 + timedelta(seconds=60))
    assert next_relaxation(PAYMENTS_STEPS, 1, T0) == (2, T0 + timedelta(seconds=120))
    assert next_relaxation(PAYMENTS_STEPS, 2, T0) is None


def test_supervisors_are_told_when_a_notifying_step_is_entered_or_jumped_into() -> None:
    assert not escalates(PAYMENTS_STEPS, 0, 1)
    assert escalates(PAYMENTS_STEPS, 1, 2)
    assert escalates(PAYMENTS_STEPS, 0, 2), "a late ticket skipping steps still notifies"
    assert not escalates(PAYMENTS_STEPS, 2, 2)
    assert not escalates(PAYMENTS_STEPS, -1, 0)
    immediate = (S(timedelta(0), notify_supervisor=True),)
    assert escalates(immediate, -1, 0)


# --- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": " "}, "rule.name"),
        ({"position": -1}, "rule.position"),
        ({"queue": "Payments!"}, "rule.queue"),
        ({"match": RuleMatch(categories=("payments",))}, "rule.match.categories"),
        ({"match": RuleMatch(priorities=("asap",))}, "rule.match.priorities"),
        ({"steps": ()}, "rule.steps"),
        ({"steps": (S(timedelta(seconds=5)),)}, "rule.steps.after"),
        ({"steps": (S(timedelta(0)), S(timedelta(0)))}, "rule.steps.after"),
        ({"steps": (S(timedelta(0), (Requirement("payments", 6),)),)}, "rule.steps.requirements.min_proficiency"),
        ({"steps": (S(timedelta(0), (Requirement("x", 2), Requirement("x", 3))),)}, "rule.steps.requirements"),
    ],
)
def test_invalid_rules_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    base = rule("payments", 10, RuleMatch(categories=("payment_failed",)))
    broken = RoutingRule(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, **change})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as caught:
        check_rule(broken)
    assert caught.value.metadata["field"] == field


def test_agent_profiles_and_queues_are_validated() -> None:
    good = AgentProfile("Li Wei", (Skill("payments", 5),), ("zh", "en"), 3)
    assert check_profile(good) == good
    for bad in (
        AgentProfile("", (), ("zh",), 1),
        AgentProfile("x", (Skill("payments", 0),), ("zh",), 1),
        AgentProfile("x", (Skill("payments", 2), Skill("payments", 3)), ("zh",), 1),
        AgentProfile("x", (), ("chinese!",), 1),
        AgentProfile("x", (), ("zh",), 0),
    ):
        with pytest.raises(InvalidArgument):
            check_profile(bad)
    with pytest.raises(InvalidArgument):
        check_queue(Queue("payments", offer_timeout=timedelta(0)))


def test_a_rule_survives_the_round_trip_through_protobuf() -> None:
    original = rule("payments", 10, RuleMatch(categories=("payment_failed",), priorities=("urgent", "high")))
    assert convert.rule(convert.rule_message(original), original.id) == original


# --- estimates -------------------------------------------------------------------------------------------


def test_queue_agents_are_those_meeting_a_first_step_of_its_rules() -> None:
    rules = [rule("p", 1, RuleMatch()), rule("g", 2, RuleMatch(), queue="general", steps=FALLBACK_STEPS)]
    assert queue_keys(rules, "payments") == [RoutingKey("payments", 4, "")]
    assert queue_keys(rules, "general") == [RoutingKey("", 0, "")]
    assert queue_keys(rules, "unruled") == [RoutingKey("", 0, "")]


def test_the_estimated_wait() -> None:
    window = timedelta(minutes=15)
    free = estimate_wait(
        waiting=1, agents_available=2, taken_in_window=0, window=window, longest_wait=timedelta(0), mean_wait=None
    )
    assert free == timedelta(0)
    # 30 taken in 15 minutes: one every 30 s; 3 waiting and the newcomer: two minutes.
    paced = estimate_wait(
        waiting=3, agents_available=0, taken_in_window=30, window=window, longest_wait=timedelta(0), mean_wait=None
    )
    assert paced == timedelta(minutes=2)
    stalled = estimate_wait(
        waiting=2,
        agents_available=0,
        taken_in_window=0,
        window=window,
        longest_wait=timedelta(minutes=7),
        mean_wait=timedelta(minutes=3),
    )
    assert stalled == timedelta(minutes=7)
