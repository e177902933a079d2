"""A rule's `schedule`, in the operator's `timezone`, turned into nft predicates evaluated in UTC.

The kernel evaluates `meta day`/`meta hour`/`meta time` in UTC, and the nft adapter pins its process
to UTC so literals are not shifted a second time. So the window is converted here, with the UTC
offset of `timezone` that the shell looked up for the current instant (a fact, so this stays pure;
the shell recompiles when the offset changes at a DST switch). Invariants:
- a window that crosses midnight, or is moved across midnight by the offset, is split per day, so
  `mon 22:00-02:00` also matches Tuesday 01:00 and never Monday 01:00;
- each predicate is one `meta day` + `meta hour` pair; a rule becomes one nft rule per predicate.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from schema.schedule import DAY_NAMES, Schedule

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


def schedule_predicates(schedule: Schedule, utc_offset_minutes: int) -> list[str]:
    """nft match prefixes, one per rule to emit; together they cover exactly the window."""
    dates = _date_window(schedule, utc_offset_minutes)
    if schedule.days is None and schedule.start is None:
        return [dates]
    groups = _utc_day_segments(schedule, utc_offset_minutes)
    out = []
    for (start, end), days in sorted(groups.items()):
        parts = [dates] if dates else []
        if len(days) < 7:
            names = ", ".join(f'"{DAY_NAMES[d]}"' for d in sorted(days))
            parts.append(f"meta day {{ {names} }}")
        if (start, end) != (0, MINUTES_PER_DAY):
            parts.append(f'meta hour "{_clock(start)}"-"{_clock(end, inclusive_end=True)}"')
        out.append(" ".join(parts))
    return out


def _date_window(schedule: Schedule, offset: int) -> str:
    """`from`/`until` are whole local days; nft compares UTC wall time."""
    parts = []
    shift = dt.timedelta(minutes=offset)
    if schedule.from_date is not None:
        start = dt.datetime.combine(schedule.from_date, dt.time(0, 0)) - shift
        parts.append(f'meta time >= "{start:%Y-%m-%d %H:%M:%S}"')
    if schedule.until_date is not None:
        end = dt.datetime.combine(schedule.until_date, dt.time(23, 59, 59)) - shift
        parts.append(f'meta time <= "{end:%Y-%m-%d %H:%M:%S}"')
    return " ".join(parts)


def _local_week_intervals(schedule: Schedule) -> list[tuple[int, int]]:
    """Half-open minute intervals in the local week (Sunday 00:00 = 0); may end past it."""
    days = schedule.days if schedule.days is not None else tuple(range(7))
    out = []
    for day in days:
        base = day * MINUTES_PER_DAY
        if schedule.start is None or schedule.end is None:
            out.append((base, base + MINUTES_PER_DAY))
        elif schedule.crosses_midnight:
            out.append(
                (base + schedule.start.minutes, base + MINUTES_PER_DAY + schedule.end.minutes)
            )
        else:
            out.append((base + schedule.start.minutes, base + schedule.end.minutes))
    return out


def _utc_day_segments(schedule: Schedule, offset: int) -> dict[tuple[int, int], set[int]]:
    """Shift to UTC, cut at UTC midnights, merge touching pieces, group days by identical window."""
    per_day: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for start, end in _local_week_intervals(schedule):
        lo = start - offset
        hi = end - offset
        while lo < hi:
            day, minute = divmod(lo, MINUTES_PER_DAY)
            piece_end = min(hi - day * MINUTES_PER_DAY, MINUTES_PER_DAY)
            per_day[day % 7].append((minute, piece_end))
            lo = day * MINUTES_PER_DAY + piece_end
    groups: dict[tuple[int, int], set[int]] = defaultdict(set)
    for day, pieces in per_day.items():
        for window in _merge(pieces):
            groups[window].add(day)
    return groups


def _merge(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _clock(minute: int, *, inclusive_end: bool = False) -> str:
    # nft's hour range is inclusive at both ends; a window ending at 06:00 ends at 05:59:59
    if inclusive_end:
        seconds = minute * 60 - 1
        return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{minute // 60:02d}:{minute % 60:02d}"


__all__ = ["schedule_predicates"]
