"""SLA policies and clocks: matching, starts and stops, pauses and credit, warnings, breaches, reopen."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.routing.sla import domain
from services.routing.sla.calendar import CALENDAR_TIME, BusinessHours, CalendarSpec, OpeningHours
from services.routing.sla.domain import (
    Author,
    Clock,
    ClockState,
    Escalation,
    MessagePosted,
    Metric,
    Outcome,
    Policy,
    PolicyMatch,
    PolicySpec,
    PriorityChanged,
    Rules,
    SlaStats,
    StatusChanged,
    TicketOpened,
    TicketSla,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 6, 3, 8, 0, tzinfo=UTC)  # a Wednesday
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
TICKET = uuid.UUID("00000000-0000-4000-8000-00000000000a")
CALENDAR_ID = uuid.UUID("00000000-0000-4000-8000-0000000000ca")


def policy(name: str, position: int, match: PolicyMatch, **targets: timedelta) -> Policy:
    return Policy(
        id=uuid.uuid5(uuid.NAMESPACE_URL, name),
        version=1,
        spec=PolicySpec(
            name=name,
            position=position,
            match=match,
            targets={Metric(m): t for m, t in targets.items()},
            escalation=Escalation(raise_priority=name != "urgent", notify_supervisor=True),
        ),
    )


URGENT = policy(
    "urgent", 10, PolicyMatch(priorities=("urgent",)), first_response=2 * MIN, resolution=4 * H, next_response=5 * MIN
)
DEFAULT = policy("default", 100, PolicyMatch(), first_response=5 * MIN, next_response=10 * MIN, resolution=24 * H)
RULES = Rules(policies=(URGENT, DEFAULT), time_bases={})


class Ticket:
    """Feeds facts in version order and keeps the latest clocks, as the service does with its tables."""

    def __init__(self, priority: str = "normal", rules: Rules = RULES, status: str = "new") -> None:
        self.rules = rules
        self.clocks: dict[tuple[Metric, int], Clock] = {}
        self.last: Outcome = domain.open_ticket(
            TicketOpened(TICKET, 1, T0, "payment_failed", priority, "standard", status), "payments", rules
        )
        self.state: TicketSla = self.last.ticket
        self.clocks.update(self.last.changed)

    def current(self) -> Mapping[Metric, Clock]:
        latest: dict[Metric, Clock] = {}
        for (metric, _), clock in sorted(self.clocks.items(), key=lambda kv: kv[0][1]):
            latest[metric] = clock
        return latest

    def clock(self, metric: Metric, cycle: int = 1) -> Clock:
        return self.clocks[(metric, cycle)]

    def apply(self, make: type, **fields: object) -> Outcome:
        fact = make(ticket_id=TICKET, version=self.state.version + 1, **fields)
        self.last = domain.apply(self.state, self.current(), fact, self.rules)
        self.state = self.last.ticket
        self.clocks.update(self.last.changed)
        return self.last

    def message(self, author: Author, at: datetime) -> Outcome:
        return self.apply(MessagePosted, at=at, author=author)

    def status(self, from_status: str, to_status: str, at: datetime) -> Outcome:
        return self.apply(StatusChanged, at=at, from_status=from_status, to_status=to_status)


# --- policies ------------------------------------------------------------------------------------------


def test_the_first_matching_policy_by_position_wins() -> None:
    vip = policy("vip", 5, PolicyMatch(customer_tiers=("vip",), categories=("complaint",)), first_response=MIN)
    policies = [vip, URGENT, DEFAULT]
    assert domain.first_match(policies, "urgent", "complaint", "vip") == vip
    assert domain.first_match(policies, "urgent", "complaint", "standard") == URGENT
    assert domain.first_match(policies, "normal", "complaint", "vip") == vip
    assert domain.first_match(policies, "low", "other", "standard") == DEFAULT
    assert domain.first_match([URGENT], "low", "other", "standard") is None


def test_a_policy_without_a_target_for_a_metric_starts_no_clock_for_it() -> None:
    only_first = policy("only-first", 1, PolicyMatch(), first_response=5 * MIN)
    ticket = Ticket(rules=Rules(policies=(only_first, DEFAULT), time_bases={}))
    assert set(ticket.clocks) == {(Metric.FIRST_RESPONSE, 1)}


def test_policy_validation() -> None:
    spec = DEFAULT.spec
    checked = domain.check_policy(
        PolicySpec(
            name=" Default ",
            position=1,
            match=PolicyMatch(priorities=("urgent", "low", "urgent"), categories=("b", "a")),
            targets={Metric.RESOLUTION: H, Metric.FIRST_RESPONSE: MIN},
            warning_percents=(80, 50, 80),
        )
    )
    assert checked.name == "Default"
    assert checked.match.priorities == ("low", "urgent")
    assert checked.match.categories == ("a", "b")
    assert list(checked.targets) == [Metric.FIRST_RESPONSE, Metric.RESOLUTION]
    assert checked.warning_percents == (50, 80)
    bad_specs = [
        PolicySpec(name="", position=1, match=spec.match, targets=spec.targets),
        PolicySpec(name="x", position=1, match=spec.match, targets={}),
        PolicySpec(name="x", position=1, match=spec.match, targets={Metric.RESOLUTION: timedelta(0)}),
        PolicySpec(name="x", position=1, match=spec.match, targets={Metric.RESOLUTION: timedelta(days=400)}),
        PolicySpec(name="x", position=1, match=spec.match, targets=spec.targets, warning_percents=(100,)),
        PolicySpec(name="x", position=1, match=PolicyMatch(priorities=("asap",)), targets=spec.targets),
        PolicySpec(name="x", position=1, match=PolicyMatch(categories=("Payment Failed",)), targets=spec.targets),
    ]
    for bad in bad_specs:
        with pytest.raises(InvalidArgument) as error:
            domain.check_policy(bad)
        assert error.value.code == "invalid_argument"


# --- starting and fulfilling ---------------------------------------------------------------------------


def test_creation_starts_first_response_and_resolution_with_the_matching_targets() -> None:
    normal, urgent = Ticket("normal"), Ticket("urgent")
    assert normal.clock(Metric.FIRST_RESPONSE).deadline == T0 + 5 * MIN
    assert normal.clock(Metric.RESOLUTION).deadline == T0 + 24 * H
    assert urgent.clock(Metric.FIRST_RESPONSE).deadline == T0 + 2 * MIN
    assert urgent.clock(Metric.RESOLUTION).deadline == T0 + 4 * H
    first = urgent.clock(Metric.FIRST_RESPONSE)
    assert first.state is ClockState.RUNNING
    assert (first.policy_id, first.queue, first.priority) == (URGENT.id, "payments", "urgent")
    assert (Metric.NEXT_RESPONSE, 1) not in urgent.clocks


def test_the_first_public_staff_reply_fulfils_first_response() -> None:
    ticket = Ticket()
    assert ticket.message(Author.CUSTOMER, T0 + MIN).fulfilled == []
    assert ticket.message(Author.SYSTEM, T0 + 2 * MIN).fulfilled == []
    outcome = ticket.message(Author.STAFF, T0 + 3 * MIN)
    assert [c.key for c in outcome.fulfilled] == [(Metric.FIRST_RESPONSE, 1)]
    clock = ticket.clock(Metric.FIRST_RESPONSE)
    assert (clock.state, clock.stopped_at, clock.breached) == (ClockState.FULFILLED, T0 + 3 * MIN, False)
    # The customer's message before the first reply started no next-response clock.
    assert (Metric.NEXT_RESPONSE, 1) not in ticket.clocks


def test_next_response_starts_at_the_oldest_unanswered_customer_message() -> None:
    ticket = Ticket()
    ticket.message(Author.STAFF, T0 + MIN)
    ticket.message(Author.CUSTOMER, T0 + 10 * MIN)
    ticket.message(Author.CUSTOMER, T0 + 12 * MIN)  # still the first one that waits
    clock = ticket.clock(Metric.NEXT_RESPONSE)
    assert (clock.started_at, clock.deadline) == (T0 + 10 * MIN, T0 + 20 * MIN)
    outcome = ticket.message(Author.STAFF, T0 + 15 * MIN)
    assert [c.key for c in outcome.fulfilled] == [(Metric.NEXT_RESPONSE, 1)]
    ticket.message(Author.CUSTOMER, T0 + 30 * MIN)
    second = ticket.clock(Metric.NEXT_RESPONSE, 2)
    assert (second.state, second.started_at) == (ClockState.RUNNING, T0 + 30 * MIN)


def test_a_reply_after_the_deadline_fulfils_late_and_reports_the_breach() -> None:
    ticket = Ticket()
    outcome = ticket.message(Author.STAFF, T0 + 7 * MIN)
    late = ticket.clock(Metric.FIRST_RESPONSE)
    assert late.state is ClockState.FULFILLED
    assert late.breached_at == T0 + 5 * MIN
    assert [c.key for c in outcome.breached] == [late.key]


def test_a_clock_already_breached_is_fulfilled_once_with_breached_set() -> None:
    ticket = Ticket()
    first = ticket.clock(Metric.FIRST_RESPONSE)
    result = domain.breach(first, T0 + 5 * MIN)
    assert result is not None
    breached, owed = result
    assert breached.breached
    assert owed == (50, 80)  # warnings whose timers had not fired go out first
    assert domain.breach(breached, T0 + 6 * MIN) is None  # never twice
    ticket.clocks[first.key] = breached
    outcome = ticket.message(Author.STAFF, T0 + 9 * MIN)
    assert outcome.breached == []  # already announced
    assert [(c.state, c.breached) for c in outcome.fulfilled] == [(ClockState.FULFILLED, True)]


# --- pauses --------------------------------------------------------------------------------------------


def test_pending_pauses_every_running_clock_and_credits_the_paused_time() -> None:
    ticket = Ticket()
    ticket.status("new", "pending", T0 + 2 * MIN)
    paused = ticket.clock(Metric.FIRST_RESPONSE)
    assert (paused.state, paused.pause_reason) == (ClockState.PAUSED, "pending")
    assert ticket.clock(Metric.RESOLUTION).state is ClockState.PAUSED
    assert domain.due_timers(paused, CALENDAR_TIME) == []

    ticket.status("pending", "open", T0 + 32 * MIN)
    resumed = ticket.clock(Metric.FIRST_RESPONSE)
    assert resumed.state is ClockState.RUNNING
    assert resumed.paused_total == 30 * MIN
    assert resumed.deadline == T0 + 35 * MIN  # 5 min target + 30 min paused
    assert ticket.clock(Metric.RESOLUTION).deadline == T0 + 24 * H + 30 * MIN
    assert resumed.pause_reason == ""


def test_pauses_add_up_and_on_hold_does_not_pause() -> None:
    ticket = Ticket()
    ticket.status("new", "on_hold", T0 + MIN)
    assert ticket.clock(Metric.FIRST_RESPONSE).state is ClockState.RUNNING
    ticket.status("on_hold", "pending", T0 + 2 * MIN)
    ticket.status("pending", "open", T0 + 4 * MIN)
    ticket.status("open", "pending", T0 + 5 * MIN)
    ticket.status("pending", "on_hold", T0 + 10 * MIN)
    clock = ticket.clock(Metric.FIRST_RESPONSE)
    assert clock.paused_total == 7 * MIN
    assert clock.deadline == T0 + 12 * MIN


def test_a_clock_that_starts_while_pending_starts_paused() -> None:
    ticket = Ticket()
    ticket.message(Author.STAFF, T0 + MIN)
    ticket.status("open", "pending", T0 + 2 * MIN)
    # The customer answers: the message comes first, then ticketing reopens the ticket.
    ticket.message(Author.CUSTOMER, T0 + 10 * MIN)
    assert ticket.clock(Metric.NEXT_RESPONSE).state is ClockState.PAUSED
    ticket.status("pending", "open", T0 + 10 * MIN)
    clock = ticket.clock(Metric.NEXT_RESPONSE)
    assert (clock.state, clock.deadline) == (ClockState.RUNNING, T0 + 20 * MIN)


def test_resolving_while_pending_fulfils_resolution_with_the_pause_credited() -> None:
    ticket = Ticket()
    ticket.status("new", "pending", T0 + H)
    outcome = ticket.status("pending", "resolved", T0 + 30 * H)
    resolution = ticket.clock(Metric.RESOLUTION)
    assert [c.key for c in outcome.fulfilled] == [resolution.key]
    assert not resolution.breached  # 1 h of running time of a 24 h target
    assert resolution.paused_total == 29 * H
    assert ticket.clock(Metric.FIRST_RESPONSE).state is ClockState.CANCELLED


def test_a_clock_paused_after_its_deadline_has_breached() -> None:
    ticket = Ticket()
    outcome = ticket.status("new", "pending", T0 + 6 * MIN)
    assert [c.key for c in outcome.breached] == [(Metric.FIRST_RESPONSE, 1)]
    ticket.status("pending", "open", T0 + 60 * MIN)
    clock = ticket.clock(Metric.FIRST_RESPONSE)
    assert clock.breached
    assert domain.due_timers(clock, CALENDAR_TIME) == []


# --- business calendars --------------------------------------------------------------------------------


def business_rules() -> Rules:
    spec = CalendarSpec(
        name="weekdays",
        time_zone="America/New_York",
        hours=tuple(OpeningHours(d, 9 * 60, 18 * 60) for d in range(1, 6)),
        holidays=(),
    )
    on_calendar = policy("business", 1, PolicyMatch(), first_response=4 * H, resolution=16 * H)
    on_calendar = Policy(on_calendar.id, 1, dataclasses.replace(on_calendar.spec, calendar_id=CALENDAR_ID))
    return Rules(policies=(on_calendar,), time_bases={CALENDAR_ID: BusinessHours(spec)})


def test_a_business_target_counts_business_hours_and_credits_only_business_time_paused() -> None:
    friday_4pm = datetime(2026, 6, 5, 20, 0, tzinfo=UTC)  # 16:00 in New York (EDT)
    rules = business_rules()
    outcome = domain.open_ticket(
        TicketOpened(TICKET, 1, friday_4pm, "other", "normal", "standard", "new"), "general", rules
    )
    clock = outcome.changed[(Metric.FIRST_RESPONSE, 1)]
    assert clock.deadline == datetime(2026, 6, 8, 15, 0, tzinfo=UTC)  # Monday 11:00 New York
    # Warnings at 50 % and 80 %: 2 and 3.2 business hours after the start.
    due = {d.percent: d.at for d in domain.due_timers(clock, rules.time_base(CALENDAR_ID))}
    assert due == {
        50: datetime(2026, 6, 5, 22, 0, tzinfo=UTC),  # Friday 18:00: closing time
        80: datetime(2026, 6, 8, 14, 12, tzinfo=UTC),  # Monday 10:12
        None: clock.deadline,
    }
    # Pending from Friday 17:00 to Monday 10:00 local: 1 h Friday + 1 h Monday of business time credited.
    state = outcome.ticket
    step = domain.apply(
        state, {Metric.FIRST_RESPONSE: clock}, StatusChanged(TICKET, 2, friday_4pm + H, "new", "pending"), rules
    )
    paused = step.changed[(Metric.FIRST_RESPONSE, 1)]
    step = domain.apply(
        step.ticket,
        {Metric.FIRST_RESPONSE: paused},
        StatusChanged(TICKET, 3, datetime(2026, 6, 8, 14, 0, tzinfo=UTC), "pending", "open"),
        rules,
    )
    resumed = step.changed[(Metric.FIRST_RESPONSE, 1)]
    assert resumed.paused_total == 65 * H  # wall clock, recorded
    assert resumed.deadline == datetime(2026, 6, 8, 17, 0, tzinfo=UTC)  # 2 business hours later: Monday 13:00


# --- warnings and breach timers ------------------------------------------------------------------------


def test_warning_timers_at_50_and_80_percent_and_the_breach_at_the_deadline() -> None:
    clock = Ticket().clock(Metric.FIRST_RESPONSE)
    assert domain.due_timers(clock, CALENDAR_TIME) == [
        domain.Due(50, T0 + 150 * timedelta(seconds=1)),
        domain.Due(80, T0 + 240 * timedelta(seconds=1)),
        domain.Due(None, T0 + 5 * MIN),
    ]
    result = domain.warn(clock, 50)
    assert result is not None
    warned, announced = result
    assert (warned.warned, announced) == ((50,), (50,))
    assert domain.warn(warned, 50) is None  # once
    assert domain.warn(warned, 60) is None  # not one of the policy's
    assert [d.percent for d in domain.due_timers(warned, CALENDAR_TIME)] == [80, None]
    breach = domain.breach(warned, T0 + 5 * MIN)
    assert breach is not None
    breached, owed = breach
    assert owed == (80,)
    assert domain.warn(breached, 80) is None  # announced with the breach, never after it
    assert domain.due_timers(breached, CALENDAR_TIME) == []


def test_a_warning_whose_timer_fires_late_is_announced_before_the_later_one() -> None:
    clock = Ticket().clock(Metric.FIRST_RESPONSE)
    result = domain.warn(clock, 80)  # the 50 % timer was retried and has not fired yet
    assert result is not None
    warned, announced = result
    assert announced == (50, 80)
    assert domain.warn(warned, 50) is None


def test_warnings_move_with_the_pause() -> None:
    ticket = Ticket()
    ticket.status("new", "pending", T0 + MIN)
    ticket.status("pending", "open", T0 + 11 * MIN)
    due = domain.due_timers(ticket.clock(Metric.FIRST_RESPONSE), CALENDAR_TIME)
    assert [d.at for d in due] == [T0 + 12.5 * MIN, T0 + 14 * MIN, T0 + 15 * MIN]


def test_no_timers_for_stopped_clocks() -> None:
    ticket = Ticket()
    ticket.message(Author.STAFF, T0 + MIN)
    assert domain.due_timers(ticket.clock(Metric.FIRST_RESPONSE), CALENDAR_TIME) == []


# --- resolution, reopen, priority ----------------------------------------------------------------------


def test_resolution_is_fulfilled_on_resolve_and_a_reopen_starts_a_new_clock() -> None:
    ticket = Ticket()
    ticket.message(Author.STAFF, T0 + MIN)
    outcome = ticket.status("open", "resolved", T0 + 2 * H)
    assert [c.key for c in outcome.fulfilled] == [(Metric.RESOLUTION, 1)]
    ticket.message(Author.CUSTOMER, T0 + 5 * H)  # the customer writes back: the reply comes before the reopen
    ticket.status("resolved", "open", T0 + 5 * H)
    reopened = ticket.clock(Metric.RESOLUTION, 2)
    assert (reopened.state, reopened.started_at, reopened.deadline) == (
        ClockState.RUNNING,
        T0 + 5 * H,
        T0 + 29 * H,
    )
    assert ticket.clock(Metric.RESOLUTION, 1).state is ClockState.FULFILLED
    assert ticket.clock(Metric.NEXT_RESPONSE).started_at == T0 + 5 * H


def test_closing_cancels_whatever_still_runs() -> None:
    ticket = Ticket()
    ticket.status("new", "resolved", T0 + MIN)
    ticket.status("resolved", "closed", T0 + 2 * MIN)
    assert all(not c.active for c in ticket.clocks.values())


def test_a_priority_change_applies_the_policy_that_now_matches() -> None:
    ticket = Ticket("normal")
    first = ticket.clock(Metric.FIRST_RESPONSE)
    warned = domain.warn(first, 50)
    assert warned is not None
    ticket.clocks[first.key] = warned[0]
    ticket.apply(PriorityChanged, at=T0 + MIN, priority="urgent")
    raised = ticket.clock(Metric.FIRST_RESPONSE)
    assert (raised.policy_id, raised.target, raised.deadline) == (URGENT.id, 2 * MIN, T0 + 2 * MIN)
    assert raised.priority == "urgent"
    assert raised.warned == (50,)  # not announced twice
    assert ticket.clock(Metric.RESOLUTION).deadline == T0 + 4 * H


def test_a_breached_clock_keeps_its_target_when_the_priority_rises() -> None:
    ticket = Ticket("normal")
    first = ticket.clock(Metric.FIRST_RESPONSE)
    breached = domain.breach(first, T0 + 5 * MIN)
    assert breached is not None
    ticket.clocks[first.key] = breached[0]
    ticket.apply(PriorityChanged, at=T0 + 6 * MIN, priority="high")
    kept = ticket.clock(Metric.FIRST_RESPONSE)
    assert (kept.target, kept.deadline, kept.priority) == (5 * MIN, T0 + 5 * MIN, "high")


def test_attainment_is_100_when_nothing_completed() -> None:
    def stats(completed: int, met: int) -> SlaStats:
        return SlaStats(None, "", Metric.FIRST_RESPONSE, completed, met, completed - met, 0, None, None, None)

    assert stats(0, 0).attainment_percent == 100.0
    assert stats(4, 3).attainment_percent == 75.0
