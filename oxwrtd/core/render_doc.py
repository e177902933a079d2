"""The text a renderer builds, with the problems it finds on the way (hostapd, chrony).

Pure: lines in, one newline-terminated text out; errors refuse the render, warnings ride along.
"""

from __future__ import annotations

from schema.errors import ConfigIssue, Path


class RenderDoc:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.errors: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def err(self, path: Path, message: str) -> None:
        self.errors.append(ConfigIssue(path=path, message=message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(ConfigIssue(path=path, message=message))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


__all__ = ["RenderDoc"]
