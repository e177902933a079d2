"""Find the line of a config path in TOML text (tomllib keeps no positions).

Owns the mapping from a path such as ("services", 2, "binds", 0, "target") to the 1-based line
where it is written. Invariants:
- a path whose key is written gets the line of that key; a path that is not written (a missing
  required key) gets the line of the nearest enclosing key, table header or array entry;
- `[[a.b]]` entries are numbered per enclosing entry (each `[[services]]` restarts its `binds`),
  `[a.b]` headers resolve into the latest `[[a]]` entry, and entries of inline arrays and inline
  tables get the line where each one starts;
- text inside strings and comments is never mistaken for structure. The index of the last few texts
  is cached, so reporting many errors of one file scans it once.
"""

from __future__ import annotations

import functools
from typing import Final

from schema.errors import Path

_BARE_KEY_CHARS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
)
_SCALAR_END: Final = frozenset(",]}#\n")


def locate(text: str, path: Path) -> int | None:
    """The 1-based line where `path` (or its nearest written ancestor) appears, or None."""
    lines = _index(text)
    probe = tuple(path)
    while probe:
        line = lines.get(probe)
        if line is not None:
            return line
        probe = probe[:-1]
    return None


@functools.lru_cache(maxsize=4)
def _index(text: str) -> dict[Path, int]:
    return _Scanner(text).scan()


class _Scanner:
    """A forgiving single pass over TOML text recording where each path is first written."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.found: dict[Path, int] = {}
        self.array_counts: dict[Path, int] = {}

    # ------------------------------------------------------------ low level

    def peek(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.text[i] if i < len(self.text) else ""

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.pos >= len(self.text):
                return
            if self.text[self.pos] == "\n":
                self.line += 1
            self.pos += 1

    def skip_blanks(self) -> None:
        """Spaces and tabs on the current line."""
        while self.peek() in (" ", "\t", "\r") and self.peek():
            self.advance()

    def skip_to_eol(self) -> None:
        while self.peek() and self.peek() != "\n":
            self.advance()

    def skip_space_comments_newlines(self) -> None:
        while True:
            c = self.peek()
            if c in (" ", "\t", "\r", "\n") and c:
                self.advance()
            elif c == "#":
                self.skip_to_eol()
            else:
                return

    def record(self, path: Path, line: int) -> None:
        self.found.setdefault(path, line)

    # ------------------------------------------------------------ statements

    def scan(self) -> dict[Path, int]:
        table: Path = ()
        while self.peek():
            self.skip_space_comments_newlines()
            c = self.peek()
            if not c:
                break
            if c == "[":
                table = self.header()
            else:
                self.key_value(table)
            self.skip_to_eol()  # trailing comment or anything the scanner does not model
        return self.found

    def header(self) -> Path:
        line = self.line
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        keys = self.dotted_key()
        self.advance(2 if is_array else 1)
        if not keys:
            return ()
        parent = self.resolve(keys[:-1])
        target = (*parent, keys[-1])
        if is_array:
            count = self.array_counts.get(target, 0)
            self.array_counts[target] = count + 1
            self.record(target, line)
            target = (*target, count)
        elif target in self.array_counts:  # `[a]` naming an array of tables: its latest entry
            target = (*target, self.array_counts[target] - 1)
        for i in range(1, len(target) + 1):
            self.record(target[:i], line)
        return target

    def resolve(self, keys: list[str]) -> Path:
        """Header prefix -> path, stepping into the latest entry of each array of tables."""
        path: Path = ()
        for key in keys:
            path = (*path, key)
            count = self.array_counts.get(path)
            if count:
                path = (*path, count - 1)
        return path

    def key_value(self, base: Path) -> None:
        line = self.line
        keys = self.dotted_key()
        if not keys:
            return
        self.skip_blanks()
        if self.peek() != "=":
            return
        self.advance()
        self.skip_blanks()
        path = (*base, *keys)
        for i in range(len(base) + 1, len(path) + 1):
            self.record(path[:i], line)
        self.value(path)

    def dotted_key(self) -> list[str]:
        keys: list[str] = []
        while True:
            self.skip_blanks()
            c = self.peek()
            if c == '"':
                keys.append(self.basic_string())
            elif c == "'":
                keys.append(self.literal_string())
            else:
                start = self.pos
                while self.peek() and self.peek() in _BARE_KEY_CHARS:
                    self.advance()
                if self.pos == start:
                    return keys
                keys.append(self.text[start : self.pos])
            self.skip_blanks()
            if self.peek() != ".":
                return keys
            self.advance()

    # ------------------------------------------------------------ values

    def value(self, path: Path) -> None:
        c = self.peek()
        if c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        elif c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        else:
            while self.peek() and self.peek() not in _SCALAR_END:
                self.advance()

    def array(self, path: Path) -> None:
        self.advance()  # [
        index = 0
        while True:
            self.skip_space_comments_newlines()
            c = self.peek()
            if not c:
                return
            if c == "]":
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            self.record((*path, index), self.line)
            start = self.pos
            self.value((*path, index))
            if self.pos == start:  # not a value the scanner understands: step over it
                self.advance()
            index += 1

    def inline_table(self, path: Path) -> None:
        self.advance()  # {
        while True:
            self.skip_space_comments_newlines()
            c = self.peek()
            if not c:
                return
            if c == "}":
                self.advance()
                return
            if c == ",":
                self.advance()
                continue
            start = self.pos
            self.key_value(path)
            if self.pos == start:
                self.advance()

    def basic_string(self) -> str:
        if self.text.startswith('"""', self.pos):
            return self.multiline('"""', escapes=True)
        self.advance()
        out: list[str] = []
        while self.peek() and self.peek() not in ('"', "\n"):
            if self.peek() == "\\":
                out.append(self.peek(1))
                self.advance(2)
            else:
                out.append(self.peek())
                self.advance()
        self.advance()
        return "".join(out)

    def literal_string(self) -> str:
        if self.text.startswith("'''", self.pos):
            return self.multiline("'''", escapes=False)
        self.advance()
        start = self.pos
        while self.peek() and self.peek() not in ("'", "\n"):
            self.advance()
        content = self.text[start : self.pos]
        self.advance()
        return content

    def multiline(self, quote: str, *, escapes: bool) -> str:
        self.advance(3)
        start = self.pos
        while self.peek():
            if escapes and self.peek() == "\\":
                self.advance(2)
            elif self.text.startswith(quote, self.pos):
                end = self.pos
                self.advance(3)
                while self.peek() == quote[0]:  # up to two quotes may close the content
                    self.advance()
                return self.text[start:end]
            else:
                self.advance()
        return self.text[start:]


__all__ = ["locate"]
