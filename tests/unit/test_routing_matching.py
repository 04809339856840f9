"""Who may take which ticket, and in what order."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.routing.domain import Agent, EntryState, Presence, QueueEntry, Requirement, Skill, Step
from services.routing.matching import (
    Need,
    RoutingKey,
    agent_order,
    best_agent,
    best_ticket,
    eligible,
    need_for,
    need_of,
    probe_keys,
    ticket_order,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
PAYMENTS_4 = Step(after=timedelta(0), requirements=(Requirement("payments", 4),))


def agent(
    agent_id: str,
    skills: dict[str, int] | None = None,
    *,
    languages: tuple[str, ...] = ("zh", "en"),
    active: int = 0,
    capacity: int = 3,
    last: datetime | None = None,
    presence: Presence = Presence.AVAILABLE,
) -> Agent:
    return Agent(
        id=agent_id,
        display_name=agent_id,
        skills=tuple(Skill(n, p) for n, p in (skills or {"payments": 4}).items()),
        languages=languages,
        capacity=capacity,
        presence=presence,
        active=active,
        last_assigned_at=last,
        presence_changed_at=NOW,
        version=1,
    )


def entry(
    *,
    priority: str = "normal",
    created: datetime = NOW,
    sla_due: datetime | None = None,
    steps: tuple[Step, ...] = (PAYMENTS_4,),
    step: int = 0,
    language: str = "zh",
    state: EntryState = EntryState.WAITING,
    last_agent: str | None = None,
) -> QueueEntry:
    return QueueEntry(
        ticket_id=uuid.uuid4(),
        queue="payments",
        priority=priority,
        state=state,
        ticket_version=1,
        ticket_created_at=created,
        enqueued_at=created,
        steps=steps,
        step=step,
        routed_since=created,
        waiting_since=created,
        language=language,
        sla_due_at=sla_due,
        last_agent_id=last_agent,
    )


# --- eligibility -----------------------------------------------------------------------------------------


def test_a_step_needs_the_skill_at_its_level_and_the_tickets_language() -> None:
    need = need_for(PAYMENTS_4, "zh")
    assert eligible(agent("a", {"payments": 4}), need)
    assert eligible(agent("a", {"payments": 5}), need)
    assert not eligible(agent("a", {"payments": 3}), need)
    assert not eligible(agent("a", {"cards": 5}), need)
    assert not eligible(agent("a", {"payments": 5}, languages=("en",)), need)


def test_any_agent_drops_the_language_and_an_empty_step_needs_only_the_language() -> None:
    anyone = need_for(Step(after=timedelta(0), any_agent=True), "zh")
    speaker = need_for(Step(after=timedelta(0)), "zh")
    english = agent("en", {}, languages=("en",))
    assert anyone.key == RoutingKey("", 0, "")
    assert eligible(english, anyone)
    assert speaker.key == RoutingKey("", 0, "zh")
    assert not eligible(english, speaker)
    assert eligible(agent("zh", {}, languages=("zh",)), speaker)


def test_a_ticket_without_a_language_needs_none() -> None:
    assert need_for(PAYMENTS_4, "").key == RoutingKey("payments", 4, "")
    assert eligible(agent("a", {"payments": 4}, languages=()), need_for(PAYMENTS_4, ""))


def test_every_requirement_of_a_step_must_hold() -> None:
    step = Step(after=timedelta(0), requirements=(Requirement("payments", 3), Requirement("cards", 2)))
    need = need_for(step, "zh")
    assert need == Need(RoutingKey("payments", 3, "zh"), {"cards": 2})
    assert eligible(agent("a", {"payments": 3, "cards": 2}), need)
    assert not eligible(agent("a", {"payments": 5, "cards": 1}), need)
    assert not eligible(agent("a", {"payments": 5}), need)


def test_the_entry_needs_what_its_step_in_force_requires() -> None:
    relaxed = (PAYMENTS_4, Step(after=timedelta(seconds=60), requirements=(Requirement("payments", 2),)))
    assert need_of(entry(steps=relaxed, step=0)).key.level == 4
    assert need_of(entry(steps=relaxed, step=1)).key.level == 2


def test_probe_keys_are_exactly_the_keys_an_agent_can_take() -> None:
    rng = random.Random(3)
    skills = ("payments", "cards")
    for _ in range(200):
        someone = agent(
            "a",
            {s: rng.randint(1, 5) for s in skills if rng.random() < 0.7},
            languages=tuple(lang for lang in ("zh", "en") if rng.random() < 0.6),
        )
        probes = set(probe_keys(someone))
        for skill, level, language in itertools.product(("", *skills), range(6), ("", "zh", "en")):
            if (skill == "") != (level == 0):
                continue
            key = RoutingKey(skill, level, language)
            assert (key in probes) == eligible(someone, Need(key)), key


# --- order of agents -------------------------------------------------------------------------------------


def test_agents_with_fewer_active_tickets_come_first() -> None:
    need = need_for(PAYMENTS_4, "zh")
    busy = agent("busy", {"payments": 5}, active=1)
    free = agent("free", {"payments": 4}, active=0, last=NOW)
    assert best_agent([busy, free], need) == free


def test_then_the_longest_idle_with_never_assigned_first() -> None:
    need = need_for(PAYMENTS_4, "zh")
    recent = agent("recent", last=NOW)
    earlier = agent("earlier", last=NOW - timedelta(hours=1))
    never = agent("never", last=None)
    assert best_agent([recent, earlier, never], need) == never
    assert best_agent([recent, earlier], need) == earlier


def test_then_the_highest_proficiency_then_the_id() -> None:
    need = need_for(PAYMENTS_4, "zh")
    four, five, other_five = agent("b", {"payments": 4}), agent("c", {"payments": 5}), agent("a", {"payments": 5})
    assert best_agent([four, five], need) == five
    assert best_agent([five, other_five], need) == other_five
    assert agent_order(five, need) < agent_order(four, need)


def test_only_available_agents_with_room_and_not_excluded_receive_work() -> None:
    need = need_for(PAYMENTS_4, "zh")
    full = agent("full", active=3, capacity=3)
    away = agent("away", presence=Presence.AWAY)
    offline = agent("offline", presence=Presence.OFFLINE)
    unskilled = agent("unskilled", {"payments": 1})
    declined = agent("declined")
    assert best_agent([full, away, offline, unskilled, declined], need, exclude=["declined"]) is None
    assert best_agent([full, away, offline, unskilled, declined], need) == declined


# --- order of tickets ------------------------------------------------------------------------------------


def test_urgent_tickets_come_before_older_ones_of_lower_priority() -> None:
    someone = agent("a")
    old_normal = entry(priority="normal", created=NOW - timedelta(hours=1))
    new_urgent = entry(priority="urgent", created=NOW)
    high = entry(priority="high", created=NOW - timedelta(minutes=5))
    assert best_ticket([old_normal, new_urgent, high], someone) == new_urgent
    assert sorted([old_normal, new_urgent, high], key=ticket_order) == [new_urgent, high, old_normal]


def test_among_equal_priorities_the_earliest_sla_deadline_then_none_last() -> None:
    someone = agent("a")
    no_clock = entry(created=NOW - timedelta(hours=1))
    later = entry(created=NOW, sla_due=NOW + timedelta(minutes=5))
    sooner = entry(created=NOW, sla_due=NOW + timedelta(minutes=2))
    assert sorted([no_clock, later, sooner], key=ticket_order) == [sooner, later, no_clock]
    assert best_ticket([no_clock, later], someone) == later


def test_then_the_oldest_ticket() -> None:
    older, newer = entry(created=NOW - timedelta(minutes=1)), entry(created=NOW)
    assert best_ticket([newer, older], agent("a")) == older


def test_an_agent_gets_only_waiting_tickets_it_may_take_and_not_the_one_it_let_go() -> None:
    someone = agent("a", {"payments": 4}, languages=("en",))
    chinese = entry(language="zh")
    offered = entry(language="en", state=EntryState.OFFERED)
    declined = entry(language="en", last_agent="a")
    expert_only = entry(language="en", steps=(Step(after=timedelta(0), requirements=(Requirement("payments", 5),)),))
    assert best_ticket([chinese, offered, declined, expert_only], someone) is None
    fine = entry(language="en", created=NOW + timedelta(hours=1))
    assert best_ticket([chinese, offered, declined, expert_only, fine], someone) == fine
