"""Time bases for SLA clocks: calendar time (24/7) and business-hours calendars. Pure, no I/O.

A target on a business calendar is measured in open time: 4 h on a Monday-to-Friday 09:00-18:00 calendar
means 4 hours during which the calendar is open. Opening hours are wall-clock times of the calendar's zone,
converted to instants day by day, so DST transitions are exact: an opening interval that spans a transition
is as long as the real time that passed (a 00:00-24:00 day is 23 h on spring-forward, 25 h on fall-back).
A wall-clock time that does not exist (inside a spring-forward gap) is shifted forward by the length of the
gap (02:30 becomes 03:30, as java.time and the tz database's own tools do); an ambiguous one (fall-back) is
its first occurrence.
"""

from __future__ import annotations

import functools
import itertools
import re
import uuid
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from services.kit.errors import InvalidArgument

MINUTES_PER_DAY = 24 * 60
_HH_MM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
# Bounds the day-by-day walk; a valid calendar opens at least once a week, so this is never reached in practice.
_MAX_DAYS = 366 * 30
MAX_NAME = 200
MAX_HOLIDAYS = 1000


class TimeBase(Protocol):
    """How a clock counts time: ``add`` finds when a duration of counted time has passed, ``between`` measures."""

    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def between(self, start: datetime, end: datetime) -> timedelta: ...


class CalendarTime:
    """24/7: every second counts."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start + max(duration, timedelta(0))

    def between(self, start: datetime, end: datetime) -> timedelta:
        return max(end - start, timedelta(0))


CALENDAR_TIME = CalendarTime()


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Open from ``open_minute`` to ``close_minute`` (minutes after local midnight; 1440 = midnight after)."""

    weekday: int  # ISO: 1 = Monday … 7 = Sunday
    open_minute: int
    close_minute: int


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    name: str
    time_zone: str
    hours: tuple[OpeningHours, ...]
    holidays: tuple[date, ...]


@dataclass(frozen=True, slots=True)
class Calendar:
    id: uuid.UUID
    version: int
    spec: CalendarSpec


class BusinessHours:
    """Open time of one calendar: weekly hours in its zone, closed all day on holidays (local dates)."""

    def __init__(self, spec: CalendarSpec) -> None:
        self._zone = load_zone(spec.time_zone)
        by_day: dict[int, list[tuple[int, int]]] = {}
        for hours in spec.hours:
            by_day.setdefault(hours.weekday, []).append((hours.open_minute, hours.close_minute))
        self._hours = {day: sorted(spans) for day, spans in by_day.items()}
        self._holidays = frozenset(spec.holidays)
        if not any(close > open_ for spans in self._hours.values() for open_, close in spans):
            raise InvalidArgument("invalid_argument", "hours: the calendar is never open", field="hours")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        remaining = duration
        if remaining <= timedelta(0):
            return start
        for opens, closes in self._intervals_from(start):
            opens = max(opens, start)
            if closes <= opens:
                continue
            if closes - opens >= remaining:
                return opens + remaining
            remaining -= closes - opens
        raise ValueError("the calendar does not open often enough to count this duration")

    def between(self, start: datetime, end: datetime) -> timedelta:
        total = timedelta(0)
        if end <= start:
            return total
        for opens, closes in self._intervals_from(start):
            if opens >= end:
                break
            overlap = min(closes, end) - max(opens, start)
            if overlap > timedelta(0):
                total += overlap
        return total

    def _intervals_from(self, instant: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals, as UTC instants, of the local day containing ``instant`` and every day after it."""
        day = instant.astimezone(self._zone).date()
        for offset in range(_MAX_DAYS):
            current = day + timedelta(days=offset)
            if current in self._holidays:
                continue
            for open_minute, close_minute in self._hours.get(current.isoweekday(), ()):
                yield self._instant(current, open_minute), self._instant(current, close_minute)

    def _instant(self, day: date, minute: int) -> datetime:
        if minute >= MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self._zone)
        # fold=0: a time in a spring-forward gap is read with the offset before it, i.e. shifted past the gap.
        return local.astimezone(UTC)


def time_base(calendar: Calendar | None) -> TimeBase:
    return CALENDAR_TIME if calendar is None else BusinessHours(calendar.spec)


def time_bases(calendars: Sequence[Calendar]) -> Mapping[uuid.UUID, TimeBase]:
    return {c.id: BusinessHours(c.spec) for c in calendars}


# --- validation and parsing ----------------------------------------------------------------------------


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    # Only names of the tz database: ZoneInfo alone would also open odd files such as "zone.tab".
    if name in _known_zones():
        try:
            return zoneinfo.ZoneInfo(name)
        except (ValueError, OSError):
            pass
    raise InvalidArgument("unknown_time_zone", f"time_zone: {name[:64]!r} is not an IANA time zone", field="time_zone")


def parse_minute(text: str, field: str) -> int:
    match = _HH_MM.match(text)
    minute = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not 0 <= minute <= MINUTES_PER_DAY:
        raise InvalidArgument("invalid_argument", f"{field}: expected HH:MM between 00:00 and 24:00", field=field)
    return minute


def format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_holiday(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument("invalid_argument", f"holidays: {text!r} is not YYYY-MM-DD", field="holidays") from None


def check_calendar(spec: CalendarSpec) -> CalendarSpec:
    """The spec if it is valid (holidays sorted and unique), else InvalidArgument naming the field."""
    if not spec.name.strip() or len(spec.name) > MAX_NAME:
        raise InvalidArgument("invalid_argument", f"name: 1 to {MAX_NAME} characters", field="name")
    load_zone(spec.time_zone)
    if not spec.hours:
        raise InvalidArgument("invalid_argument", "hours: at least one opening interval", field="hours")
    by_day: dict[int, list[OpeningHours]] = {}
    for hours in spec.hours:
        if not 1 <= hours.weekday <= 7:
            raise InvalidArgument("invalid_argument", "hours.weekday: 1 (Monday) to 7 (Sunday)", field="hours")
        if not 0 <= hours.open_minute < hours.close_minute <= MINUTES_PER_DAY:
            raise InvalidArgument("invalid_argument", "hours: open must be before close on the same day", field="hours")
        by_day.setdefault(hours.weekday, []).append(hours)
    for spans in by_day.values():
        spans.sort(key=lambda h: h.open_minute)
        for before, after in itertools.pairwise(spans):
            if after.open_minute < before.close_minute:
                raise InvalidArgument("invalid_argument", "hours: intervals of one day overlap", field="hours")
    if len(spec.holidays) > MAX_HOLIDAYS:
        raise InvalidArgument("invalid_argument", f"holidays: at most {MAX_HOLIDAYS}", field="holidays")
    ordered = tuple(sorted(by_day.items()))
    return CalendarSpec(
        name=spec.name.strip(),
        time_zone=spec.time_zone,
        hours=tuple(h for _, spans in ordered for h in spans),
        holidays=tuple(sorted(set(spec.holidays))),
    )
