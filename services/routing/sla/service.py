"""SLA use cases: ticket events move clocks, timers announce warnings and breaches, admins edit policies.

Ordering. Ticketing gives every change of a ticket the next version and one event, so versions are contiguous.
An event at or below the last applied version is a duplicate or stale and is ignored; one that skips ahead is
kept in ``sla_event_buffer`` until the missing versions arrive, then applied in order. If a version never
comes (its event was dead-lettered), the ``sla.gap`` timer applies what was buffered after ``GAP_WAIT``.

Locking. Everything about one ticket runs under its advisory lock. Timer handlers wait for it only briefly
(``TIMER_LOCK_WAIT_MS``): the scheduler already holds the timer's row lock, and an event handler holding the
ticket lock may be waiting for that row (to move or cancel the timer), a cycle a long wait would turn into a
deadlock. A ticket still busy makes the handler fail; the scheduler retries it a second later, by when the
event has usually moved or cancelled the timer.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from services.kit import idempotency, idempotency_store
from services.kit.bus.envelope import Envelope
from services.kit.bus.store import add_to_outbox
from services.kit.db import Connection
from services.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from services.kit.pagination import decode_token, encode_token, page_size
from services.routing import timers
from services.routing.queue_order import set_sla_due
from services.routing.sla import convert, domain, store
from services.routing.sla.calendar import BusinessHours, Calendar, CalendarSpec, check_calendar, time_bases
from services.routing.sla.domain import (
    Clock,
    ClockState,
    Fact,
    Metric,
    OtherChange,
    Policy,
    PolicySpec,
    Rules,
    TicketOpened,
)
from services.routing.sla.domain import TicketSla as TicketState
from services.routing.timers import Timer, TimerHandler

log = logging.getLogger(__name__)

# The policies and calendars, read when first needed: most ticket events move no clock.
RulesSource = Callable[[], Awaitable[Rules]]

WARNING_TIMER = "sla.warning"
BREACH_TIMER = "sla.breach"
GAP_TIMER = "sla.gap"
# How long an event that skipped a version waits for the missing one before it is applied anyway. Longer than
# the consumer's first few redelivery back-offs (0.5 s, 1 s, 2 s, 4 s), short enough not to hold clocks back.
GAP_WAIT = timedelta(seconds=10)
# How long a timer handler waits for a ticket an event is updating: most events commit well within it, and it
# is shorter than Postgres' deadlock_timeout (1 s), so a cycle with an event waiting on the timer's row ends here.
TIMER_LOCK_WAIT_MS = 250
# As ticketing's: the gateway's "<caller>:<Idempotency-Key>" with a key of its longest (255) fits.
MAX_REQUEST_ID = 300
# Scopes of the in-flight claims of the creating calls (see services.kit.idempotency_store).
POLICY_CLAIM_SCOPE = "sla_policy"
CALENDAR_CLAIM_SCOPE = "sla_calendar"
_Created = TypeVar("_Created", Policy, Calendar)


class TicketBusy(Exception):
    """The ticket is locked by an event being applied; the timer is retried shortly."""


# --- ticket events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """The ticket's clocks started with this event: their earliest deadline, known without asking the database."""

    earliest_deadline: datetime | None


async def handle_ticket_event(conn: Connection, event: Envelope, rules: RulesSource) -> Opened | None:
    """Apply one ticketing event to the ticket's clocks, inside the caller's (inbox) transaction; ``Opened``
    when it started them. ``rules`` is asked only by a change that moves clocks."""
    if not event.type.startswith(convert.TICKET_EVENT_PREFIX):
        return None
    try:
        fact = convert.fact(event)
    except convert.UnreadableEvent as exc:
        log.warning("sla ignores an unreadable ticket event", extra={"event_id": event.id, "error": str(exc)})
        return None
    if fact is None:
        return None
    ticket_id = fact.ticket_id
    await store.lock_ticket(conn, ticket_id)
    ticket, has_buffered = await store.ticket_and_backlog(conn, ticket_id)
    if ticket is not None and fact.version <= ticket.version:
        return None  # duplicate or stale
    in_order = (ticket is None and isinstance(fact, TicketOpened)) or (
        ticket is not None and fact.version == ticket.version + 1
    )
    if not in_order:
        buffered = await store.buffer_event(conn, ticket_id, fact.version, event)
        # Armed once per gap: later arrivals must not keep pushing the wait back.
        if buffered and ticket is not None and await store.buffered_count(conn, ticket_id) == 1:
            await _wait_for_gap(conn, ticket_id)
        return None
    opened = ticket is None
    ticket, deadline = await _apply(conn, ticket, fact, rules)
    if has_buffered:
        waiting = await _drain(conn, ticket, rules, skip_gaps=False)
        if waiting:
            await _wait_for_gap(conn, ticket_id)  # progress was made; the next gap gets its own wait
        elif waiting is not None:
            await timers.cancel(conn, kind=GAP_TIMER, key=str(ticket_id))
        return None  # later events moved the clocks too: the deadline is the database's
    return Opened(deadline) if opened else None


async def open_tickets(conn: Connection, events: Sequence[Envelope], rules: RulesSource) -> dict[str, Opened | None]:
    """``handle_ticket_event`` for ``ticket.created`` events of distinct tickets, applied together: the usual case
    (a ticket SLA knows nothing of yet) is written for all of them in a few statements; any other goes through
    ``handle_ticket_event``. What that would return, by event id."""
    opening: dict[str, TicketOpened] = {}
    alone: list[Envelope] = []
    for event in events:
        try:
            fact = convert.fact(event)
        except convert.UnreadableEvent:
            fact = None
        if isinstance(fact, TicketOpened):
            opening[event.id] = fact
        else:
            alone.append(event)
    await store.lock_tickets(conn, {f.ticket_id for f in opening.values()})
    known = await store.known_tickets(conn, [f.ticket_id for f in opening.values()]) if opening else set()
    alone += [e for e in events if e.id in opening and opening[e.id].ticket_id in known]
    result = {e.id: await handle_ticket_event(conn, e, rules) for e in alone}
    fresh = {event_id: f for event_id, f in opening.items() if f.ticket_id not in known}
    if not fresh:
        return result
    ruleset = await rules()
    outcomes = {event_id: domain.open_ticket(f, queue_for(f.category), ruleset) for event_id, f in fresh.items()}
    await store.save_tickets(conn, [o.ticket for o in outcomes.values()])
    await _store_clocks(conn, [c for o in outcomes.values() for c in o.changed.values()], ruleset)
    announced = [convert.breached_event(c) for o in outcomes.values() for c in o.breached]
    announced += [convert.fulfilled_event(c) for o in outcomes.values() for c in o.fulfilled]
    if announced:
        await add_to_outbox(conn, announced)
    for event_id, outcome in outcomes.items():
        running = [c.deadline for c in outcome.changed.values() if c.state is ClockState.RUNNING]
        result[event_id] = Opened(min(running, default=None))
    return result


async def earliest_deadline(conn: Connection, ticket_id: uuid.UUID) -> datetime | None:
    """The earliest deadline among the ticket's running clocks (breached ones included), None if none runs."""
    return await store.earliest_deadline(conn, ticket_id)


async def _apply(
    conn: Connection, ticket: TicketState | None, fact: Fact, source: RulesSource
) -> tuple[TicketState, datetime | None]:
    """Apply the fact; for a ticket that opens, also the earliest deadline of the clocks it started."""
    if ticket is not None and isinstance(fact, OtherChange | TicketOpened):
        ticket = dataclasses.replace(ticket, version=fact.version)
        await store.save_ticket(conn, ticket)
        return ticket, None
    rules = await source()
    if ticket is None:
        assert isinstance(fact, TicketOpened)
        outcome = domain.open_ticket(fact, queue_for(fact.category), rules)
    else:
        outcome = domain.apply(ticket, await store.latest_clocks(conn, fact.ticket_id), fact, rules)
    await store.save_ticket(conn, outcome.ticket)
    deadline = await _save(conn, outcome.changed.values(), rules, queued=ticket is not None)
    events = [convert.breached_event(c) for c in outcome.breached]
    events += [convert.fulfilled_event(c) for c in outcome.fulfilled]
    if events:
        await add_to_outbox(conn, events)
    return outcome.ticket, deadline


async def _drain(conn: Connection, ticket: TicketState, rules: RulesSource, *, skip_gaps: bool) -> bool | None:
    """Apply buffered events that now follow in order (all of them, in version order, when ``skip_gaps``).

    None if nothing was buffered, else whether some events still wait behind a missing version.
    """
    buffered = await store.buffered_events(conn, ticket.ticket_id)
    if not buffered:
        return None
    for version, event in buffered:
        if version <= ticket.version:
            continue
        if version != ticket.version + 1 and not skip_gaps:
            break
        try:
            fact = convert.fact(event)
        except convert.UnreadableEvent:
            fact = None
        ticket, _ = await _apply(conn, ticket, fact or OtherChange(ticket.ticket_id, version, event.time), rules)
    await store.drop_buffered(conn, ticket.ticket_id, ticket.version)
    return any(version > ticket.version for version, _ in buffered)


async def _wait_for_gap(conn: Connection, ticket_id: uuid.UUID) -> None:
    now = await store.db_now(conn)
    await timers.arm(conn, kind=GAP_TIMER, key=str(ticket_id), due_at=now + GAP_WAIT, payload={})


async def load_rules(conn: Connection) -> Rules:
    """Policies and every calendar's time base, read now (the consumer has them cached; timers are rare)."""
    policies = await store.all_policies(conn)
    return Rules(policies=policies, time_bases=time_bases(await store.all_calendars(conn)))


async def _save(conn: Connection, clocks: Iterable[Clock], rules: Rules, *, queued: bool) -> datetime | None:
    """Store changed clocks and move their timers. ``queued``: the ticket is in routing's queue, which is told
    its earliest running deadline; else (it opens now, routing queues it next) that deadline is returned."""
    changed = list(clocks)
    if not changed:
        return None
    await _store_clocks(conn, changed, rules)
    if not queued:
        # Every clock of a ticket that opens is in ``changed``.
        return min((c.deadline for c in changed if c.state is ClockState.RUNNING), default=None)
    ticket_id = changed[0].ticket_id
    await set_sla_due(conn, ticket_id, await store.earliest_deadline(conn, ticket_id))
    return None


async def _store_clocks(conn: Connection, changed: Sequence[Clock], rules: Rules) -> None:
    """Store changed clocks and move their timers: three round trips for any number of clocks."""
    await store.save_clocks(conn, changed)
    armings: list[timers.Arming] = []
    cancels: list[tuple[str, str]] = []
    for clock in changed:
        _sync_timers(clock, rules, armings, cancels)
    await timers.arm_all(conn, armings)
    await timers.cancel_all(conn, cancels)


def _sync_timers(clock: Clock, rules: Rules, armings: list[timers.Arming], cancels: list[tuple[str, str]]) -> None:
    """Add the timers a clock needs now (moving them if armed) to ``armings``, and the others to ``cancels``
    (a no-op for a timer that already fired)."""
    due = {d.percent: d.at for d in domain.due_timers(clock, rules.time_base(clock.calendar_id))}
    for percent in clock.warning_percents:
        key = warning_key(clock.ticket_id, clock.metric, clock.cycle, percent)
        if percent in due:
            armings.append(timers.Arming(WARNING_TIMER, key, due[percent], _payload(clock, percent)))
        else:
            cancels.append((WARNING_TIMER, key))
    key = breach_key(clock.ticket_id, clock.metric, clock.cycle)
    if None in due:
        armings.append(timers.Arming(BREACH_TIMER, key, due[None], _payload(clock, None)))
    else:
        cancels.append((BREACH_TIMER, key))


def breach_key(ticket_id: uuid.UUID, metric: Metric, cycle: int) -> str:
    # Every key starts with the ticket id, so one ticket's timers sort together.
    return f"{ticket_id}:{metric.value}:{cycle}"


def warning_key(ticket_id: uuid.UUID, metric: Metric, cycle: int, percent: int) -> str:
    return f"{ticket_id}:{metric.value}:{cycle}:{percent}"


def _payload(clock: Clock, percent: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"ticket_id": str(clock.ticket_id), "metric": clock.metric.value, "cycle": clock.cycle}
    if percent is not None:
        payload["percent"] = percent
    return payload


def queue_for(category: str) -> str:
    """The routing queue of a category, from the routing core when it offers ``queue_for``; else empty."""
    try:
        module = importlib.import_module("services.routing.domain")
    except ImportError:
        return ""
    mapping: Callable[[str], object] | None = getattr(module, "queue_for", None)
    return str(mapping(category)) if callable(mapping) else ""


# --- timers --------------------------------------------------------------------------------------------


async def _clock_of(conn: Connection, timer: Timer) -> Clock | None:
    ticket_id = uuid.UUID(str(timer.payload["ticket_id"]))
    await _lock_briefly(conn, ticket_id)
    return await store.get_clock(conn, ticket_id, Metric(timer.payload["metric"]), int(timer.payload["cycle"]))


async def on_warning(conn: Connection, timer: Timer) -> None:
    clock = await _clock_of(conn, timer)
    warned = domain.warn(clock, int(timer.payload["percent"])) if clock else None
    if warned is None:
        return  # stopped, paused, breached or announced since it was armed
    clock, percents = warned
    await store.save_clocks(conn, [clock])
    await add_to_outbox(conn, [convert.warning_event(clock, p) for p in percents])


async def on_breach(conn: Connection, timer: Timer) -> None:
    clock = await _clock_of(conn, timer)
    breached = domain.breach(clock, await store.db_now(conn)) if clock else None
    if breached is None:
        return
    clock, percents = breached
    await store.save_clocks(conn, [clock])
    await add_to_outbox(conn, [*(convert.warning_event(clock, p) for p in percents), convert.breached_event(clock)])
    await set_sla_due(conn, clock.ticket_id, await store.earliest_deadline(conn, clock.ticket_id))


async def on_gap(conn: Connection, timer: Timer) -> None:
    """A missing ticket version did not arrive in time: apply what was buffered after it, in order."""
    ticket_id = uuid.UUID(timer.key)
    await _lock_briefly(conn, ticket_id)
    ticket = await store.get_ticket(conn, ticket_id)
    if ticket is None:
        return  # ticket.created itself is missing: nothing can be applied before it
    log.warning("sla applies ticket events past a missing version", extra={"ticket_id": str(ticket_id)})
    await _drain(conn, ticket, lambda: load_rules(conn), skip_gaps=True)


async def _lock_briefly(conn: Connection, ticket_id: uuid.UUID) -> None:
    if not await store.try_lock_ticket(conn, ticket_id, wait_ms=TIMER_LOCK_WAIT_MS):
        raise TicketBusy(f"ticket {ticket_id} is being updated")


TIMER_HANDLERS: Mapping[str, TimerHandler] = {
    WARNING_TIMER: on_warning,
    BREACH_TIMER: on_breach,
    GAP_TIMER: on_gap,
}


# --- queries and administration ------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SlaAdmin:
    """Policies, calendars, a ticket's clocks and attainment statistics, for the gRPC edge."""

    def __init__(self, pool: asyncpg.Pool, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._pool = pool
        self._clock = clock

    async def ticket_clocks(self, ticket_id: str) -> list[Clock]:
        key = _uuid(ticket_id, "ticket_id")
        async with self._pool.acquire() as conn:
            return await store.ticket_clocks(conn, key)

    async def stats(
        self, policy_id: str, queue: str, start: datetime | None, end: datetime | None
    ) -> list[domain.SlaStats]:
        policy = _uuid(policy_id, "policy_id") if policy_id else None
        now = self._clock()
        end = end or now
        if start is not None and start >= end:
            raise InvalidArgument("invalid_argument", "start_time: must be before end_time", field="start_time")
        async with self._pool.acquire() as conn:
            return await store.stats(conn, start=start, end=end, policy_id=policy, queue=queue, now=now)

    # policies

    async def list_policies(self, requested_size: int, token: str) -> tuple[list[Policy], str]:
        size = page_size(requested_size)
        cursor = decode_token(token)
        after = (int(cursor["p"]), datetime.fromisoformat(cursor["t"]), uuid.UUID(cursor["id"])) if cursor else None
        async with self._pool.acquire() as conn:
            policies = await store.list_policies(conn, after=after, limit=size)
            last = await store.policy_order_key(conn, policies[-1].id) if len(policies) == size else None
        next_token = encode_token({"p": last[0], "t": last[1].isoformat(), "id": str(last[2])}) if last else ""
        return policies, next_token

    async def create_policy(self, request_id: str, spec: PolicySpec) -> tuple[Policy, bool]:
        """Create; a retry with the same request_id returns the original and ``created=False``, another body
        under it is ``idempotency_key_reused``, and while the first is being served ``idempotency_key_in_flight``.
        """
        _check_request_id(request_id)
        spec = domain.check_policy(spec)
        # The policy as asked for: a position "at the end" is filled in below and must not make a retry differ.
        fingerprint = idempotency.fingerprint(spec)
        async with self._pool.acquire() as conn, conn.transaction():
            await _claim(conn, POLICY_CLAIM_SCOPE, request_id)
            earlier = await store.policy_by_request_id(conn, request_id)
            if earlier is not None:
                return _replayed(earlier, fingerprint, "an SLA policy"), False
            await _check_calendar_exists(conn, spec.calendar_id)
            if spec.position <= 0:
                spec = dataclasses.replace(spec, position=await store.next_position(conn))
            inserted = await store.insert_policy(conn, Policy(uuid.uuid4(), 1, spec), request_id, fingerprint)
            if inserted is None:  # a concurrent create with the same request_id won
                earlier = await store.policy_by_request_id(conn, request_id)
                if earlier is None:
                    raise asyncpg.SerializationError("concurrent create with the same request_id")
                return _replayed(earlier, fingerprint, "an SLA policy"), False
        return inserted, True

    async def update_policy(self, policy_id: str, expected_version: int, spec: PolicySpec) -> Policy:
        key = _policy_key(policy_id)
        spec = domain.check_policy(spec)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await store.get_policy(conn, key, for_update=True)
            if current is None:
                raise _policy_not_found(policy_id)
            _check_version(expected_version, current.version)
            await _check_calendar_exists(conn, spec.calendar_id)
            if spec.position <= 0:
                spec = dataclasses.replace(spec, position=current.spec.position)
            updated = Policy(key, current.version + 1, spec)
            await store.update_policy(conn, updated)
        return updated

    async def delete_policy(self, policy_id: str) -> None:
        key = _policy_key(policy_id)
        async with self._pool.acquire() as conn:
            if not await store.delete_policy(conn, key):
                raise _policy_not_found(policy_id)

    # calendars

    async def list_calendars(self, requested_size: int, token: str) -> tuple[list[Calendar], str]:
        size = page_size(requested_size)
        cursor = decode_token(token)
        async with self._pool.acquire() as conn:
            calendars = await store.list_calendars(conn, after=uuid.UUID(cursor["id"]) if cursor else None, limit=size)
        return calendars, encode_token({"id": str(calendars[-1].id)}) if len(calendars) == size else ""

    async def create_calendar(self, request_id: str, spec: CalendarSpec) -> tuple[Calendar, bool]:
        """Create, idempotent on ``request_id`` exactly as ``create_policy``."""
        _check_request_id(request_id)
        spec = _checked_calendar(spec)
        fingerprint = idempotency.fingerprint(spec)
        async with self._pool.acquire() as conn, conn.transaction():
            await _claim(conn, CALENDAR_CLAIM_SCOPE, request_id)
            earlier = await store.calendar_by_request_id(conn, request_id)
            if earlier is not None:
                return _replayed(earlier, fingerprint, "a calendar"), False
            inserted = await store.insert_calendar(conn, Calendar(uuid.uuid4(), 1, spec), request_id, fingerprint)
            if inserted is None:
                earlier = await store.calendar_by_request_id(conn, request_id)
                if earlier is None:
                    raise asyncpg.SerializationError("concurrent create with the same request_id")
                return _replayed(earlier, fingerprint, "a calendar"), False
        return inserted, True

    async def update_calendar(self, calendar_id: str, expected_version: int, spec: CalendarSpec) -> Calendar:
        key = convert.calendar_ref(calendar_id)
        if key is None:
            raise InvalidArgument("invalid_argument", "calendar.id: required", field="calendar.id")
        spec = _checked_calendar(spec)
        async with self._pool.acquire() as conn, conn.transaction():
            current = await store.get_calendar(conn, key, for_update=True)
            if current is None:
                raise NotFound("calendar_not_found", f"calendar {calendar_id!r} does not exist")
            _check_version(expected_version, current.version)
            # Running clocks keep the deadlines already computed; the new hours apply from their next change.
            updated = Calendar(key, current.version + 1, spec)
            await store.update_calendar(conn, updated)
        return updated


async def _claim(conn: Connection, scope: str, request_id: str) -> None:
    if not await idempotency_store.claim(conn, scope, request_id):
        raise idempotency.key_in_flight()


def _replayed(earlier: tuple[_Created, str], fingerprint: str, what: str) -> _Created:
    """The object an earlier call with this request_id created, if it asked for the same."""
    created, stored = earlier
    idempotency.check_replay(stored, fingerprint, what)
    return created


def _checked_calendar(spec: CalendarSpec) -> CalendarSpec:
    spec = check_calendar(spec)
    BusinessHours(spec)  # refuses a calendar that never opens
    return spec


async def _check_calendar_exists(conn: Connection, calendar_id: uuid.UUID | None) -> None:
    if calendar_id is not None and await store.get_calendar(conn, calendar_id) is None:
        raise NotFound("calendar_not_found", f"calendar {calendar_id} does not exist", field="calendar_id")


def _check_request_id(request_id: str) -> None:
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        raise InvalidArgument("invalid_argument", f"request_id: 1 to {MAX_REQUEST_ID} characters", field="request_id")


def _check_version(expected: int, current: int) -> None:
    if expected and expected != current:
        raise FailedPrecondition(
            "version_conflict",
            f"the current version is {current}, not {expected}; reload and retry",
            current_version=str(current),
        )


def _policy_key(policy_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(policy_id)
    except ValueError:
        raise _policy_not_found(policy_id) from None


def _policy_not_found(policy_id: str) -> NotFound:
    return NotFound("policy_not_found", f"SLA policy {policy_id[:64]!r} does not exist")


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument("invalid_argument", f"{field}: not a valid id", field=field) from None
