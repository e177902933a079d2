"""Schedules: the parser's grammar and errors, and the UTC predicates honouring `timezone`."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxwrtd.core.fw_schedule import schedule_predicates
from schema.schedule import DAY_NAMES, Clock, Schedule, ScheduleError, parse_schedule

# ---------------------------------------------------------------- parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("weekdays", Schedule(days=(1, 2, 3, 4, 5))),
        ("weekends", Schedule(days=(0, 6))),
        ("Daily", Schedule(days=(0, 1, 2, 3, 4, 5, 6))),
        (
            "everyday 08:00-09:30",
            Schedule(days=tuple(range(7)), start=Clock(8, 0), end=Clock(9, 30)),
        ),
        ("fri-tue", Schedule(days=(0, 1, 2, 5, 6))),
        ("mon,Wednesday,thurs-fri", Schedule(days=(1, 3, 4, 5))),
        ("tues,thur", Schedule(days=(2, 4))),
        ("22:00-06:00", Schedule(start=Clock(22, 0), end=Clock(6, 0))),
        (
            "from 2026-01-01 until 2026-03-31",
            Schedule(from_date=dt.date(2026, 1, 1), until_date=dt.date(2026, 3, 31)),
        ),
        (
            "until 2026-12-31 weekdays 22:00-06:00",
            Schedule(
                until_date=dt.date(2026, 12, 31),
                days=(1, 2, 3, 4, 5),
                start=Clock(22, 0),
                end=Clock(6, 0),
            ),
        ),
    ],
)
def test_parse_schedule_accepts_the_grammar(text: str, expected: Schedule) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("from 2026-01-01 from 2026-02-01", "`from` given twice"),
        ("until 2026-01-01 until 2026-02-01", "`until` given twice"),
        ("from 2026-03-01 until 2026-02-01", "is after until"),
        ("mon 10:00-11:00 extra", "too many words"),
        ("10:00-11:00 mon", "must come after the days"),
        ("funday", "unknown day 'funday'"),
        ("mon,,tue", "empty item"),
        ("mon-", "needs a day on both sides"),
        ("24:00-01:00", "hour 24 is not in 0..23"),
        ("10:60-11:00", "minute 60 is not in 0..59"),
        ("10:00-10:00", "start equals end"),
        ("from 2026-13-01", "month 13 is not in 1..12"),
        ("from 2026-01-32", "day 32 is not in 1..31"),
        ("from 2026-02-30", "does not exist"),
        ("from tomorrow", "is not YYYY-MM-DD"),
        ("from", "needs a date"),
        ("10-11", "are not HH:MM-HH:MM"),
    ],
)
def test_parse_schedule_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        parse_schedule(text)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


# ---------------------------------------------------------------- predicates


def test_utc_schedule_renders_day_and_hour_predicates() -> None:
    preds = schedule_predicates(parse_schedule("mon,fri 08:00-17:00"), 0)
    assert preds == ['meta day { "Monday", "Friday" } meta hour "08:00"-"16:59:59"']


def test_crossing_midnight_is_split_so_monday_morning_is_not_in_a_weekday_night_window() -> None:
    preds = schedule_predicates(parse_schedule("weekdays 22:00-06:00"), 0)
    tue_sat = '"Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"'
    mon_fri = '"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"'
    assert preds == [
        f'meta day {{ {tue_sat} }} meta hour "00:00"-"05:59:59"',
        f'meta day {{ {mon_fri} }} meta hour "22:00"-"23:59:59"',
    ]


def test_timezone_offset_shifts_the_window_to_utc() -> None:
    # Europe/Berlin in winter is UTC+1: 08:00-17:00 local is 07:00-16:00 UTC
    assert schedule_predicates(parse_schedule("08:00-17:00"), 60) == [
        'meta hour "07:00"-"15:59:59"'
    ]
    # America/New_York in winter is UTC-5: Monday 21:00-23:00 local is Tuesday 02:00-04:00 UTC
    assert schedule_predicates(parse_schedule("mon 21:00-23:00"), -300) == [
        'meta day { "Tuesday" } meta hour "02:00"-"03:59:59"'
    ]


def test_whole_days_shifted_by_the_offset() -> None:
    assert schedule_predicates(parse_schedule("sat"), 120) == [
        'meta day { "Saturday" } meta hour "00:00"-"21:59:59"',
        'meta day { "Friday" } meta hour "22:00"-"23:59:59"',
    ]
    assert schedule_predicates(parse_schedule("daily"), 0) == [""]


def test_date_window_is_whole_local_days_in_utc() -> None:
    preds = schedule_predicates(parse_schedule("from 2026-01-01 until 2026-03-31"), 60)
    assert preds == ['meta time >= "2025-12-31 23:00:00" meta time <= "2026-03-31 22:59:59"']


def _evaluate(preds: list[str], utc_minute: int) -> bool:
    """Evaluate emitted predicates the way the kernel does, at a minute of the UTC week."""
    day, minute = divmod(utc_minute, 24 * 60)
    for pred in preds:
        days = re.search(r"meta day \{ (.*?) \}", pred)
        if days and DAY_NAMES[day] not in days.group(1):
            continue
        hours = re.search(r'meta hour "(\d\d):(\d\d)"-"(\d\d):(\d\d):(\d\d)"', pred)
        if hours:
            h1, m1, h2, m2, s2 = (int(g) for g in hours.groups())
            if not h1 * 3600 + m1 * 60 <= minute * 60 <= h2 * 3600 + m2 * 60 + s2:
                continue
        return True
    return False


def _in_local_window(s: Schedule, local_minute: int) -> bool:
    day, minute = divmod(local_minute % (7 * 1440), 1440)
    days = s.days if s.days is not None else tuple(range(7))
    if s.start is None or s.end is None:
        return day in days
    if s.crosses_midnight:
        return (day in days and minute >= s.start.minutes) or (
            (day - 1) % 7 in days and minute < s.end.minutes
        )
    return day in days and s.start.minutes <= minute < s.end.minutes


clocks = st.builds(Clock, st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=60, deadline=None)
@given(
    days=st.none() | st.sets(st.integers(0, 6), min_size=1).map(lambda d: tuple(sorted(d))),
    hours=st.none() | st.tuples(clocks, clocks).filter(lambda h: h[0] != h[1]),
    offset=st.integers(-12 * 60, 14 * 60).map(lambda m: m - m % 15),
)
def test_predicates_cover_exactly_the_local_window(
    days: tuple[int, ...] | None, hours: tuple[Clock, Clock] | None, offset: int
) -> None:
    if days is None and hours is None:
        days = (3,)
    s = Schedule(days=days, start=hours[0] if hours else None, end=hours[1] if hours else None)
    preds = schedule_predicates(s, offset)
    for utc_minute in range(0, 7 * 1440, 7):
        assert _evaluate(preds, utc_minute) == _in_local_window(s, utc_minute + offset), utc_minute
