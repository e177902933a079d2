"""Per-service log rings: bounds, truncation, isolation between services, follow."""

from __future__ import annotations

import asyncio

import pytest

from oxwrtd.shell.logring import TRUNCATED_MARKER, LogBook, LogRing


def texts(ring: LogRing) -> list[str]:
    return [line.text for line in ring.lines()]


def test_lines_split_across_feeds_are_joined() -> None:
    ring = LogRing()
    ring.feed(b"hel", 1.0)
    ring.feed(b"lo\nwor", 1.0)
    ring.feed(b"ld\n", 2.0)
    assert texts(ring) == ["hello", "world"]
    assert [line.seq for line in ring.lines()] == [1, 2]
    assert ring.last_line() == "world"


def test_oldest_lines_are_evicted_by_count_and_bytes() -> None:
    ring = LogRing(max_lines=3, max_bytes=100, max_line=50)
    for i in range(5):
        ring.add(f"line {i}", 0.0)
    assert texts(ring) == ["line 2", "line 3", "line 4"]
    ring.add("x" * 50, 0.0)
    ring.add("y" * 50, 0.0)
    assert texts(ring) == ["x" * 50, "y" * 50]
    ring.add("z", 0.0)
    assert texts(ring) == ["y" * 50, "z"]
    assert ring.size_bytes <= 100


def test_long_line_is_truncated_with_a_marker_and_its_tail_dropped() -> None:
    ring = LogRing(max_line=10, max_bytes=1000)
    ring.feed(b"0123456789abcdef", 0.0)
    ring.feed(b"ghij\nnext\n", 0.0)
    assert texts(ring) == ["0123456789" + TRUNCATED_MARKER, "next"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    ring = LogRing()
    ring.feed(b"bad \xff byte\n", 0.0)
    assert texts(ring) == ["bad \ufffd byte"]


def test_unterminated_last_line_is_kept_on_close() -> None:
    ring = LogRing()
    ring.feed(b"no newline", 0.0)
    assert texts(ring) == []
    ring.close(1.0)
    assert texts(ring) == ["no newline"]


def test_noisy_service_cannot_evict_another() -> None:
    book = LogBook(max_lines=10, max_bytes=1000, max_line=100)
    book.ring("quiet").add("started", 0.0)
    for i in range(10_000):
        book.ring("noisy").add(f"spam {i}", 0.0)
    assert texts(book.ring("quiet")) == ["started"]
    assert len(book.ring("noisy")) == 10
    book.drop("noisy")
    assert book.names() == ["quiet"]


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_bytes >= max_line"):
        LogRing(max_bytes=10, max_line=100)


def test_since_and_last() -> None:
    ring = LogRing()
    for i in range(4):
        ring.add(str(i), 0.0)
    assert [line.text for line in ring.since(2)] == ["2", "3"]
    assert [line.text for line in ring.lines(last=2)] == ["2", "3"]
    assert ring.lines(last=0) == []


def test_follow_yields_backlog_then_new_lines() -> None:
    async def scenario() -> list[str]:
        ring = LogRing()
        ring.add("old", 0.0)
        seen: list[str] = []

        async def reader() -> None:
            async for line in ring.follow():
                seen.append(line.text)
                if len(seen) == 3:
                    return

        task = asyncio.create_task(reader())
        await asyncio.sleep(0)
        ring.add("new 1", 1.0)
        await asyncio.sleep(0)
        ring.feed(b"new 2\n", 2.0)
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(scenario()) == ["old", "new 1", "new 2"]
