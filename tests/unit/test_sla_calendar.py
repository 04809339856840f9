"""Business-hours arithmetic: nights, weekends, holidays, time zones and DST transitions."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest

from services.kit.errors import InvalidArgument
from services.routing.sla.calendar import (
    CALENDAR_TIME,
    BusinessHours,
    CalendarSpec,
    OpeningHours,
    check_calendar,
    parse_holiday,
    parse_minute,
)

pytestmark = pytest.mark.unit

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)


def hours(days: range, open_: str, close: str) -> tuple[OpeningHours, ...]:
    return tuple(OpeningHours(d, parse_minute(open_, "open"), parse_minute(close, "close")) for d in days)


def calendar(zone: str, opening: tuple[OpeningHours, ...], holidays: tuple[date, ...] = ()) -> BusinessHours:
    return BusinessHours(CalendarSpec(name="test", time_zone=zone, hours=opening, holidays=holidays))


WEEKDAYS_NY = calendar("America/New_York", hours(range(1, 6), "09:00", "18:00"))
ALWAYS_NY = calendar("America/New_York", hours(range(1, 8), "00:00", "24:00"))


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def test_calendar_time_counts_every_second() -> None:
    start = datetime(2026, 3, 7, 12, tzinfo=UTC)
    assert CALENDAR_TIME.add(start, 90 * H) == start + 90 * H
    assert CALENDAR_TIME.between(start, start + 3 * H) == 3 * H
    assert CALENDAR_TIME.between(start + H, start) == timedelta(0)


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (ny(2026, 6, 3, 10), 4 * H, ny(2026, 6, 3, 14)),  # inside one day
        (ny(2026, 6, 3, 7), H, ny(2026, 6, 3, 10)),  # before opening: counts from 09:00
        (ny(2026, 6, 3, 17), 2 * H, ny(2026, 6, 4, 10)),  # across the night
        (ny(2026, 6, 5, 16), 4 * H, ny(2026, 6, 8, 11)),  # Friday 16:00 + 4 h: across the weekend
        (ny(2026, 6, 6, 12), H, ny(2026, 6, 8, 10)),  # starting on Saturday
        (ny(2026, 6, 3, 18), timedelta(0), ny(2026, 6, 3, 18)),
        (ny(2026, 6, 3, 9), 9 * H, ny(2026, 6, 3, 18)),  # exactly one business day ends at closing
    ],
)
def test_business_hours_add(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert WEEKDAYS_NY.add(start, duration) == expected
    assert WEEKDAYS_NY.between(start, expected) == duration


def test_a_holiday_is_closed_all_day() -> None:
    # Monday 2026-06-08 is a holiday: Friday 16:00 + 4 h ends Tuesday 11:00.
    cal = calendar("America/New_York", hours(range(1, 6), "09:00", "18:00"), (date(2026, 6, 8),))
    assert cal.add(ny(2026, 6, 5, 16), 4 * H) == ny(2026, 6, 9, 11)
    assert cal.between(ny(2026, 6, 5, 0), ny(2026, 6, 10, 0)) == 9 * H + 9 * H  # Friday and Tuesday


def test_national_day_week_in_shanghai() -> None:
    golden_week = tuple(date(2026, 10, d) for d in range(1, 8))
    cal = calendar("Asia/Shanghai", hours(range(1, 6), "09:00", "18:00"), golden_week)
    start = datetime(2026, 9, 30, 17, tzinfo=SHANGHAI)  # Wednesday: one hour left before the holidays
    deadline = cal.add(start, 4 * H)
    assert deadline == datetime(2026, 10, 8, 12, tzinfo=SHANGHAI)
    assert deadline == datetime(2026, 10, 8, 4, tzinfo=UTC)


def test_several_intervals_a_day_skip_the_lunch_break() -> None:
    opening = hours(range(1, 6), "09:00", "12:00") + hours(range(1, 6), "13:00", "18:00")
    cal = calendar("Asia/Shanghai", opening)
    start = datetime(2026, 6, 3, 11, tzinfo=SHANGHAI)
    assert cal.add(start, 2 * H) == datetime(2026, 6, 3, 14, tzinfo=SHANGHAI)
    assert cal.between(start, datetime(2026, 6, 3, 14, tzinfo=SHANGHAI)) == 2 * H


def test_weekday_hours_keep_their_local_time_across_the_spring_forward_weekend() -> None:
    # Friday 09:00 is 14:00 UTC (EST); Monday after DST starts, 09:00 is 13:00 UTC (EDT).
    deadline = WEEKDAYS_NY.add(ny(2026, 3, 6, 17), 2 * H)
    assert deadline == ny(2026, 3, 9, 10)
    assert deadline.astimezone(UTC) == datetime(2026, 3, 9, 14, tzinfo=UTC)


def test_spring_forward_day_is_23_hours_long() -> None:
    # 2026-03-08: New York clocks jump from 02:00 to 03:00.
    day_start, next_day = ny(2026, 3, 8, 0), ny(2026, 3, 9, 0)
    assert ALWAYS_NY.between(day_start, next_day) == 23 * H
    # 24 hours of open time from Saturday noon end at 13:00 local on Sunday, not 12:00.
    assert ALWAYS_NY.add(ny(2026, 3, 7, 12), 24 * H) == ny(2026, 3, 8, 13)


def test_fall_back_day_is_25_hours_long() -> None:
    # 2026-11-01: New York clocks go back from 02:00 to 01:00.
    assert ALWAYS_NY.between(ny(2026, 11, 1, 0), ny(2026, 11, 2, 0)) == 25 * H
    assert ALWAYS_NY.add(ny(2026, 10, 31, 12), 24 * H) == ny(2026, 11, 1, 11)


def test_opening_hours_inside_the_transition_count_real_time() -> None:
    # Open 01:00-04:00 on Sundays. Spring forward: 02:00-03:00 never happens, so 2 real hours.
    night = calendar("America/New_York", hours(range(7, 8), "01:00", "04:00"))
    assert night.between(ny(2026, 3, 8, 0), ny(2026, 3, 8, 5)) == 2 * H
    # Fall back: 01:00-02:00 happens twice, so 4 real hours.
    assert night.between(ny(2026, 11, 1, 0), ny(2026, 11, 1, 5)) == 4 * H


def test_an_opening_time_inside_the_gap_is_shifted_by_the_gap() -> None:
    cal = calendar("America/New_York", hours(range(7, 8), "02:30", "05:00"))
    # 02:30 does not exist on 2026-03-08: the calendar opens at 03:30 EDT (07:30 UTC), 1.5 h that day.
    assert cal.between(ny(2026, 3, 8, 0), ny(2026, 3, 8, 6)) == 1.5 * H
    assert cal.add(ny(2026, 3, 8, 0), timedelta(minutes=1)) == datetime(2026, 3, 8, 7, 31, tzinfo=UTC)


def test_between_is_the_inverse_of_add() -> None:
    cal = calendar("America/New_York", hours(range(1, 6), "08:30", "12:00") + hours(range(1, 6), "13:00", "17:45"))
    start = ny(2026, 2, 27, 7, 13)
    for minutes in range(0, 60 * 24 * 12, 97):  # ~12 days of open time, across the March DST change
        duration = timedelta(minutes=minutes)
        assert cal.between(start, cal.add(start, duration)) == duration


def test_validation_codes() -> None:
    good = CalendarSpec(
        name=" Support ",
        time_zone="Asia/Shanghai",
        hours=hours(range(1, 6), "09:00", "24:00"),
        holidays=(date(2026, 10, 2), date(2026, 10, 1), date(2026, 10, 1)),
    )
    checked = check_calendar(good)
    assert checked.name == "Support"
    assert checked.holidays == (date(2026, 10, 1), date(2026, 10, 2))

    with pytest.raises(InvalidArgument) as unknown:
        check_calendar(CalendarSpec("x", "Mars/Olympus_Mons", good.hours, ()))
    assert unknown.value.code == "unknown_time_zone"
    with pytest.raises(InvalidArgument) as table:
        check_calendar(CalendarSpec("x", "zone.tab", good.hours, ()))
    assert table.value.code == "unknown_time_zone"

    overlapping = hours(range(1, 2), "09:00", "12:00") + hours(range(1, 2), "11:00", "13:00")
    backwards = hours(range(1, 2), "18:00", "09:00")
    for bad in (overlapping, backwards, (), (OpeningHours(8, 0, 60),)):
        with pytest.raises(InvalidArgument) as error:
            check_calendar(CalendarSpec("x", "UTC", bad, ()))
        assert error.value.code == "invalid_argument"

    for text in ("24:01", "25:00", "9:00", "09:60", ""):
        with pytest.raises(InvalidArgument):
            parse_minute(text, "open")
    assert parse_minute("24:00", "close") == 24 * 60
    for text in ("2026-13-01", "2026-2-1", "tomorrow"):
        with pytest.raises(InvalidArgument):
            parse_holiday(text)
