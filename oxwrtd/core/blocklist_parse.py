"""Blocklists, the pure side: turn a downloaded list body into prefixes, and say when to fetch next.

Owns the list format and the refresh schedule. Invariants:
- every entry is a canonical prefix (`a.b.c.d/p` or `x::/p`, host bits zeroed), v4 and v6, each
  once, in first-seen order; a bad line is never fatal: it is counted and a few are quoted;
- a list holds at most `max_entries` prefixes: more is an error, never a silent truncation;
- a list is fetched again `refresh_seconds` (at least 60 s) after a success; after failures the
  retry delay doubles from 30 s, capped at the refresh interval; the last good entries are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv6Network
from typing import Final

import msgspec

MAX_ENTRIES: Final = (
    1_000_000  # a 100,000-prefix interval set costs ~1.5 s to write (PERFORMANCE.md)
)
MIN_REFRESH_SECONDS: Final = 60  # the reference's effective minimum
FIRST_RETRY_SECONDS: Final = 30.0  # then 60, 120, ... up to the refresh interval
REJECTED_EXAMPLES: Final = 5
_EXAMPLE_CHARS: Final = 80


class BlocklistParseError(ValueError):
    """The body cannot be used at all (too many entries, not text)."""


class Rejected(msgspec.Struct, frozen=True):
    """Lines that were not comments and not an address or prefix."""

    count: int = 0
    examples: tuple[str, ...] = ()  # `line N: text`, the first REJECTED_EXAMPLES of them


class Parsed(msgspec.Struct, frozen=True):
    entries: tuple[str, ...]
    rejected: Rejected


def parse_body(body: bytes, *, max_entries: int = MAX_ENTRIES) -> Parsed:
    """Parse a list: `#` and `;` start comments, the first whitespace-separated token of a line
    is the entry (`addr` or `addr/prefix`, either family), anything else on the line is ignored."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BlocklistParseError(
            f"the list is not UTF-8 text (byte {exc.start} is {body[exc.start]:#04x})"
        ) from None
    seen: dict[str, None] = {}
    rejected = 0
    examples: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        token = _first_token(line)
        if not token:
            continue
        entry = canonical(token)
        if entry is None:
            rejected += 1
            if len(examples) < REJECTED_EXAMPLES:
                examples.append(f"line {number}: {line.strip()[:_EXAMPLE_CHARS]}")
            continue
        if entry not in seen:
            seen[entry] = None
            if len(seen) > max_entries:
                raise BlocklistParseError(
                    f"the list has more than {max_entries:,} entries (limit reached at line "
                    f"{number}); use a smaller list or one that aggregates prefixes"
                )
    return Parsed(tuple(seen), Rejected(rejected, tuple(examples)))


def _first_token(line: str) -> str:
    """The first whitespace-separated token, cut at a comment mark (which ends the line)."""
    parts = line.split(None, 1)
    if not parts:
        return ""
    token = parts[0]
    for mark in ("#", ";"):
        cut = token.find(mark)
        if cut >= 0:
            token = token[:cut]
    return token


def canonical(token: str) -> str | None:
    """`token` as a prefix with its host bits zeroed (a bare address is a /32 or /128), or None."""
    if ":" in token:
        if "%" in token:  # a scope (`fe80::1%eth0`) names a link, not a source to drop
            return None
        try:
            return str(IPv6Network(token, strict=False))
        except ValueError:
            return None
    return _v4_prefix(token)


_OCTET: Final = r"(0|[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])"
# leading zeros are refused, as `ipaddress` does: `010.0.0.1` is octal to some tools
_V4: Final = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/(3[0-2]|[12]?[0-9]))?")


def _v4_prefix(token: str) -> str | None:
    """One regex match, not `ipaddress` (~8 us an entry, seconds for a large list)."""
    m = _V4.fullmatch(token)
    if m is None:
        return None
    a, b, c, d, prefix_text = m.groups()
    if prefix_text is None:
        return token + "/32"
    prefix = int(prefix_text)
    value = int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)
    value &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/{prefix}"


# ---------------------------------------------------------------- schedule and status


class ListStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One list's refresh state; `entries` count the prefixes currently installed for it."""

    name: str
    url: str
    refresh_seconds: float
    due: float  # next fetch attempt, seconds since the epoch
    entries: int = 0
    rejected: Rejected = Rejected()
    fetches: int = 0  # successful fetches
    failures: int = 0  # failed fetches, all time
    consecutive_failures: int = 0
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None


def refresh_interval(refresh_seconds: int) -> float:
    return float(max(MIN_REFRESH_SECONDS, refresh_seconds))


def new_list(name: str, url: str, refresh_seconds: int, now: float) -> ListStatus:
    """A list just configured: due now, nothing installed."""
    return ListStatus(
        name=name, url=url, refresh_seconds=refresh_interval(refresh_seconds), due=now
    )


def reconfigured(status: ListStatus, refresh_seconds: int, now: float) -> ListStatus:
    """Same name and url, another interval: a healthy list's next fetch moves with it; a list
    retrying after failures keeps its retry time (capped by the new interval)."""
    interval = refresh_interval(refresh_seconds)
    if interval == status.refresh_seconds:
        return status
    if status.consecutive_failures == 0 and status.last_success is not None:
        due = max(now, status.last_success + interval)
    else:
        due = min(status.due, now + interval)
    return msgspec.structs.replace(status, refresh_seconds=interval, due=due)


def succeeded(status: ListStatus, now: float, parsed: Parsed) -> ListStatus:
    return msgspec.structs.replace(
        status,
        due=now + status.refresh_seconds,
        entries=len(parsed.entries),
        rejected=parsed.rejected,
        fetches=status.fetches + 1,
        consecutive_failures=0,
        last_success=now,
        last_attempt=now,
        last_error=None,
    )


def failed(status: ListStatus, now: float, error: str) -> ListStatus:
    """The fetch or parse failed: the entries stay as they were, the retry backs off."""
    streak = status.consecutive_failures + 1
    return msgspec.structs.replace(
        status,
        due=now + retry_delay(streak, status.refresh_seconds),
        failures=status.failures + 1,
        consecutive_failures=streak,
        last_attempt=now,
        last_error=error,
    )


def retry_delay(consecutive_failures: int, refresh_seconds: float) -> float:
    exponent = min(consecutive_failures - 1, 32)  # 30 s * 2**32 exceeds any interval
    return min(FIRST_RETRY_SECONDS * 2.0**exponent, refresh_seconds)


def is_due(status: ListStatus, now: float) -> bool:
    return status.due <= now


def next_deadline(statuses: Iterable[ListStatus]) -> float | None:
    """When the refresher must wake up next; None with no lists."""
    return min((s.due for s in statuses), default=None)


__all__ = [
    "FIRST_RETRY_SECONDS",
    "MAX_ENTRIES",
    "MIN_REFRESH_SECONDS",
    "BlocklistParseError",
    "ListStatus",
    "Parsed",
    "Rejected",
    "canonical",
    "failed",
    "is_due",
    "new_list",
    "next_deadline",
    "parse_body",
    "reconfigured",
    "refresh_interval",
    "retry_delay",
    "succeeded",
]
