"""Blocklist bodies become canonical prefixes; the refresh schedule backs off and recovers."""

from __future__ import annotations

import msgspec
import pytest

from oxwrtd.core import blocklist_parse as bp
from oxwrtd.core.fw_blocklist import compile_blocklists
from schema.config import Config


def make(blocklists: list[dict[str, object]]) -> Config:
    return msgspec.convert(
        {
            "hostname": "r",
            "control": {"listen": ["[::1]:51820"]},
            "networks": [{"name": "wan", "type": "wan", "iface": "wan0", "mode": "dhcp"}],
            "blocklists": blocklists,
        },
        Config,
    )


def test_comments_tokens_bare_addresses_and_host_bits() -> None:
    body = b"""# a comment
; another comment
192.0.2.7
198.51.100.77/24 ; trailing comment
203.0.113.9 some description
10.0.0.1#glued comment
   2001:db8::1
2001:db8:1:2::5/48  # v6 prefix, host bits set

"""
    parsed = bp.parse_body(body)
    assert parsed.entries == (
        "192.0.2.7/32",
        "198.51.100.0/24",
        "203.0.113.9/32",
        "10.0.0.1/32",
        "2001:db8::1/128",
        "2001:db8:1::/48",
    )
    assert parsed.rejected == bp.Rejected()


def test_duplicates_are_kept_once_in_first_seen_order() -> None:
    parsed = bp.parse_body(b"192.0.2.1\n198.51.100.0/24\n192.0.2.1/32\n198.51.100.9/24\n")
    assert parsed.entries == ("192.0.2.1/32", "198.51.100.0/24")


@pytest.mark.parametrize(
    "token",
    [
        "example.com",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4/33",
        "1.2.3.4/",
        "1.2.3.4/-1",
        "01.2.3.4",  # octal to some tools
        "1.2.3.4/024",
        "٣.1.1.1",  # non-ASCII digit
        "2001:db8::/129",
        "fe80::1%eth0",
        ":::",
    ],
)
def test_bad_tokens_are_rejected(token: str) -> None:
    assert bp.canonical(token) is None


def test_rejected_lines_are_counted_with_a_few_examples() -> None:
    lines = [f"bad-{i}" for i in range(8)] + ["192.0.2.1"]
    parsed = bp.parse_body("\n".join(lines).encode())
    assert parsed.entries == ("192.0.2.1/32",)
    assert parsed.rejected.count == 8
    assert parsed.rejected.examples == tuple(f"line {i + 1}: bad-{i}" for i in range(5))


def test_too_many_entries_is_a_clear_error() -> None:
    body = "\n".join(f"10.0.{i // 256}.{i % 256}" for i in range(11)).encode()
    assert len(bp.parse_body(body, max_entries=11).entries) == 11
    with pytest.raises(bp.BlocklistParseError, match=r"more than 10 entries .*line 11"):
        bp.parse_body(body, max_entries=10)


def test_duplicates_do_not_count_against_the_cap() -> None:
    assert bp.parse_body(b"192.0.2.1\n" * 50, max_entries=1).entries == ("192.0.2.1/32",)


def test_a_binary_body_is_refused() -> None:
    with pytest.raises(bp.BlocklistParseError, match="not UTF-8"):
        bp.parse_body(b"192.0.2.1\n\xff\xfe")


def test_parsed_entries_compile_into_both_sets() -> None:
    parsed = bp.parse_body(b"192.0.2.9/24\n2001:db8::7\n")
    rs = compile_blocklists(make([{"name": "b", "url": "http://x"}]), {"b": parsed.entries}, {})
    assert "elements = { 192.0.2.0/24 }" in rs.text
    assert "elements = { 2001:db8::7/128 }" in rs.text


# ---------------------------------------------------------------- schedule


def test_a_new_list_is_due_now_and_empty() -> None:
    s = bp.new_list("b", "http://x", 86400, now=1000.0)
    assert bp.is_due(s, 1000.0)
    assert s.entries == 0
    assert s.last_success is None


def test_refresh_seconds_has_a_minimum_of_60() -> None:
    s = bp.new_list("b", "http://x", 5, now=0.0)
    assert s.refresh_seconds == 60
    done = bp.succeeded(s, 10.0, bp.parse_body(b"192.0.2.1"))
    assert done.due == 70.0
    assert not bp.is_due(done, 69.9)
    assert bp.is_due(done, 70.0)


def test_failures_back_off_exponentially_capped_at_the_interval() -> None:
    s = bp.new_list("b", "http://x", 300, now=0.0)
    delays = []
    now = 0.0
    for _ in range(6):
        s = bp.failed(s, now, "boom")
        delays.append(s.due - now)
        now = s.due
    assert delays == [30, 60, 120, 240, 300, 300]
    assert s.failures == 6
    assert s.last_error == "boom"


def test_success_after_failures_resets_the_backoff_and_error() -> None:
    s = bp.failed(bp.new_list("b", "http://x", 3600, now=0.0), 0.0, "boom")
    s = bp.failed(s, 30.0, "boom")
    s = bp.succeeded(s, 90.0, bp.parse_body(b"192.0.2.1\n192.0.2.2"))
    assert (s.consecutive_failures, s.last_error, s.entries, s.fetches) == (0, None, 2, 1)
    assert s.due == 90.0 + 3600
    assert bp.failed(s, 4000.0, "again").due == 4030.0  # backoff starts over


def test_a_huge_failure_streak_does_not_overflow() -> None:
    assert bp.retry_delay(10_000, 86400.0) == 86400.0


def test_changing_the_interval_moves_a_healthy_list() -> None:
    s = bp.succeeded(bp.new_list("b", "http://x", 86400, now=0.0), 100.0, bp.parse_body(b""))
    shorter = bp.reconfigured(s, 600, now=200.0)
    assert shorter.due == 700.0
    assert bp.reconfigured(s, 60, now=5000.0).due == 5000.0  # overdue: fetch now
    assert bp.reconfigured(s, 86400, now=200.0) is s


def test_changing_the_interval_keeps_a_retry_no_later_than_the_new_interval() -> None:
    s = bp.new_list("b", "http://x", 86400, now=0.0)
    for _ in range(20):
        s = bp.failed(s, 0.0, "boom")
    assert s.due == 86400.0
    assert bp.reconfigured(s, 120, now=10.0).due == 130.0


def test_next_deadline_is_the_earliest_list() -> None:
    a = bp.new_list("a", "http://a", 600, now=50.0)
    b = bp.new_list("b", "http://b", 600, now=20.0)
    assert bp.next_deadline([a, b]) == 20.0
    assert bp.next_deadline([]) is None
