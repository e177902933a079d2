"""The `schedule` string of a firewall rule, parsed into a typed window.

Grammar (case-insensitive, whitespace-separated):
    schedule := [from DATE] [until DATE] (days hours | days | hours)?
    DATE     := YYYY-MM-DD                 (a real calendar date)
    days     := daily | everyday | all | weekdays | weekends | item ("," item)*
    item     := day | day "-" day          (ranges may wrap: fri-tue)
    hours    := HH:MM "-" HH:MM            (may cross midnight; start != end)
At least one part must be present. Days use nft's numbering: Sunday = 0 .. Saturday = 6.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

import msgspec


class ScheduleError(ValueError):
    """The schedule string does not follow the grammar; the message says where and why."""


class Clock(msgspec.Struct, frozen=True):
    """A wall-clock time of day."""

    hour: int
    minute: int

    def __str__(self) -> str:
        return f"{self.hour:02d}:{self.minute:02d}"

    @property
    def minutes(self) -> int:
        return self.hour * 60 + self.minute


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed schedule. `days` is a sorted tuple of 0..6 (Sunday = 0); None means every day.

    `start`/`end` bound the hour window (end may be earlier than start: the window crosses
    midnight). `from_date`/`until_date` bound the calendar window, both inclusive.
    """

    from_date: dt.date | None = None
    until_date: dt.date | None = None
    days: tuple[int, ...] | None = None
    start: Clock | None = None
    end: Clock | None = None

    @property
    def crosses_midnight(self) -> bool:
        return (
            self.start is not None
            and self.end is not None
            and self.end.minutes < self.start.minutes
        )


DAY_NAMES: Final = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

_DAY_ALIASES: Final[dict[str, int]] = {
    "sun": 0,
    "sunday": 0,
    "mon": 1,
    "monday": 1,
    "tue": 2,
    "tues": 2,
    "tuesday": 2,
    "wed": 3,
    "wednesday": 3,
    "thu": 4,
    "thur": 4,
    "thurs": 4,
    "thursday": 4,
    "fri": 5,
    "friday": 5,
    "sat": 6,
    "saturday": 6,
}
_DAY_SETS: Final[dict[str, tuple[int, ...]]] = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "all": tuple(range(7)),
    "weekdays": (1, 2, 3, 4, 5),
    "weekends": (0, 6),
}
_DATE_RE: Final = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_HOURS_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule string; raise ScheduleError naming the offending token."""
    tokens = text.split()
    if not tokens:
        raise ScheduleError("schedule is empty")
    from_date: dt.date | None = None
    until_date: dt.date | None = None
    while len(tokens) >= 2 and tokens[0].lower() in ("from", "until"):
        keyword, value = tokens[0].lower(), tokens[1]
        if keyword == "from":
            if from_date is not None:
                raise ScheduleError("`from` given twice")
            from_date = _parse_date(keyword, value)
        else:
            if until_date is not None:
                raise ScheduleError("`until` given twice")
            until_date = _parse_date(keyword, value)
        tokens = tokens[2:]
    if tokens and tokens[0].lower() in ("from", "until"):
        raise ScheduleError(f"`{tokens[0]}` needs a date (YYYY-MM-DD) after it")
    if from_date and until_date and from_date > until_date:
        raise ScheduleError(
            f"from {from_date} is after until {until_date}: the rule would never match"
        )
    if len(tokens) > 2:
        raise ScheduleError(
            f"too many words after the date window: {' '.join(tokens)!r} "
            "(expected `<days> <hours>`, `<days>` or `<hours>`)"
        )
    days: tuple[int, ...] | None = None
    hours: tuple[Clock, Clock] | None = None
    if len(tokens) == 2:
        if _looks_like_hours(tokens[0]):
            raise ScheduleError(f"hours {tokens[0]!r} must come after the days, not before")
        days = _parse_days(tokens[0])
        hours = _parse_hours(tokens[1])
    elif len(tokens) == 1:
        if _looks_like_hours(tokens[0]):
            hours = _parse_hours(tokens[0])
        else:
            days = _parse_days(tokens[0])
    return Schedule(
        from_date=from_date,
        until_date=until_date,
        days=days,
        start=hours[0] if hours else None,
        end=hours[1] if hours else None,
    )


def _looks_like_hours(token: str) -> bool:
    return token[:1].isdigit()


def _parse_date(keyword: str, token: str) -> dt.date:
    m = _DATE_RE.match(token)
    if not m:
        raise ScheduleError(f"{keyword} date {token!r} is not YYYY-MM-DD")
    year, month, day = (int(g) for g in m.groups())
    if not 1 <= month <= 12:
        raise ScheduleError(f"{keyword} date {token!r}: month {month} is not in 1..12")
    if not 1 <= day <= 31:
        raise ScheduleError(f"{keyword} date {token!r}: day {day} is not in 1..31")
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise ScheduleError(f"{keyword} date {token!r} does not exist: {exc}") from None


def _day(name: str, item: str) -> int:
    number = _DAY_ALIASES.get(name.lower())
    if number is None:
        raise ScheduleError(
            f"unknown day {name!r} in {item!r} (use mon, tue, wed, thu, fri, sat, sun)"
        )
    return number


def _parse_days(token: str) -> tuple[int, ...]:
    named = _DAY_SETS.get(token.lower())
    if named is not None:
        return named
    chosen: set[int] = set()
    for item in token.split(","):
        if not item:
            raise ScheduleError(f"empty item in day list {token!r}")
        if "-" in item:
            first, _, last = item.partition("-")
            if not first or not last:
                raise ScheduleError(f"day range {item!r} needs a day on both sides of '-'")
            start, stop = _day(first, item), _day(last, item)
            span = (stop - start) % 7  # wrap-around: fri-tue = fri, sat, sun, mon, tue
            chosen.update((start + i) % 7 for i in range(span + 1))
        else:
            chosen.add(_day(item, item))
    return tuple(sorted(chosen))


def _parse_hours(token: str) -> tuple[Clock, Clock]:
    m = _HOURS_RE.match(token)
    if not m:
        raise ScheduleError(f"hours {token!r} are not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    for hour, minute in ((h1, m1), (h2, m2)):
        if hour > 23:
            raise ScheduleError(f"hours {token!r}: hour {hour} is not in 0..23")
        if minute > 59:
            raise ScheduleError(f"hours {token!r}: minute {minute} is not in 0..59")
    start, end = Clock(h1, m1), Clock(h2, m2)
    if start == end:
        raise ScheduleError(f"hours {token!r}: start equals end, the window is empty")
    return start, end


__all__ = ["DAY_NAMES", "Clock", "Schedule", "ScheduleError", "parse_schedule"]
