"""Per-service log rings: the output of each service, bounded in lines and bytes.

Every service has its own ring, so a noisy service can only evict its own lines. A line longer than
`max_line` bytes is cut and ends with TRUNCATED_MARKER; the rest of it, up to the next newline, is
dropped rather than split into more lines. Readers follow a ring by sequence number.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import msgspec

MAX_LINES = 1000
MAX_BYTES = 256 * 1024
MAX_LINE = 4096  # a journald-sized line (LINE_MAX is 2048 in POSIX; syslog relays cut near 8 KiB)
TRUNCATED_MARKER = " …[truncated]"


class LogLine(msgspec.Struct, frozen=True):
    seq: int
    at: float
    text: str


class LogRing:
    """The lines of one service. `feed` takes raw bytes as they come off the pipe."""

    def __init__(
        self, *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES, max_line: int = MAX_LINE
    ) -> None:
        if max_line <= 0 or max_lines <= 0 or max_bytes < max_line:
            raise ValueError("log ring needs max_lines > 0 and max_bytes >= max_line > 0")
        self.max_lines, self.max_bytes, self.max_line = max_lines, max_bytes, max_line
        self._lines: deque[LogLine] = deque()
        self._bytes = 0
        self._next_seq = 1
        self._partial = bytearray()
        self._discarding = False  # inside an over-long line whose head was already kept
        self._changed = asyncio.Event()  # binds to a loop only when first awaited

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def feed(self, data: bytes, now: float) -> None:
        while data:
            newline = data.find(b"\n")
            chunk, data = (data, b"") if newline < 0 else (data[:newline], data[newline + 1 :])
            if not self._discarding:
                self._partial += chunk
                if len(self._partial) > self.max_line:
                    self._append(self._cut(bytes(self._partial)), now)
                    self._partial.clear()
                    self._discarding = True
            if newline >= 0:
                if not self._discarding:
                    self._append(self._partial.decode(errors="replace"), now)
                self._partial.clear()
                self._discarding = False

    def close(self, now: float) -> None:
        """The writer is gone: keep an unterminated last line."""
        if self._partial and not self._discarding:
            self._append(self._partial.decode(errors="replace"), now)
        self._partial.clear()
        self._discarding = False

    def add(self, text: str, now: float) -> None:
        """A line written by the supervisor itself (spawn failures, exits, unsupported limits)."""
        self.feed(text.encode() + b"\n", now)

    def lines(self, last: int | None = None) -> list[LogLine]:
        kept = list(self._lines)
        return kept if last is None else kept[-last:] if last > 0 else []

    def since(self, seq: int) -> list[LogLine]:
        return [line for line in self._lines if line.seq > seq]

    def last_line(self) -> str | None:
        return self._lines[-1].text if self._lines else None

    async def follow(self, after_seq: int = 0) -> AsyncIterator[LogLine]:
        """Yield every line after `after_seq`, then new ones as they arrive (until cancelled).
        Lines evicted before the reader got to them are skipped, never waited for."""
        seq = after_seq
        while True:
            fresh = self.since(seq)
            if not fresh:
                self._changed.clear()
                await self._changed.wait()
                continue
            for line in fresh:
                seq = line.seq
                yield line

    def _cut(self, raw: bytes) -> str:
        return raw[: self.max_line].decode(errors="ignore") + TRUNCATED_MARKER

    def _append(self, text: str, now: float) -> None:
        line = LogLine(seq=self._next_seq, at=now, text=text)
        self._next_seq += 1
        self._lines.append(line)
        self._bytes += len(text.encode())
        while len(self._lines) > self.max_lines or self._bytes > self.max_bytes:
            self._bytes -= len(self._lines.popleft().text.encode())
        self._changed.set()


class LogBook:
    """One ring per service name; the rings share nothing."""

    def __init__(self, **limits: int) -> None:
        self._limits = limits
        self._rings: dict[str, LogRing] = {}

    def ring(self, name: str) -> LogRing:
        ring = self._rings.get(name)
        if ring is None:
            ring = self._rings[name] = LogRing(**self._limits)
        return ring

    def drop(self, name: str) -> None:
        self._rings.pop(name, None)

    def names(self) -> list[str]:
        return list(self._rings)
