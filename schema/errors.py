"""Config errors that name the TOML path, the line and the cause.

A path is a tuple of keys and indices into the parsed TOML, e.g. ("firewall", "rules", 3, "src").
It is rendered for people with the identity of array entries, so an operator can find the entry
without counting: `firewall.rules[3] (name "guest-dns").src`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

Path = tuple[str | int, ...]

# Which key identifies an entry of an array of tables (the reference's identity keys, plus the
# arrays whose entries carry a `name` without being merged by it).
IDENTITY_KEYS: Final[dict[str, str]] = {
    "radios": "phy",
    "wifi": "ssid",
}
DEFAULT_IDENTITY: Final = "name"


class ConfigIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem in the config pair. `line` is 1-based in the file named by `file`."""

    path: Path
    message: str
    line: int | None = None
    file: str | None = None
    where: str = ""  # the rendered path; filled by `render`

    def __str__(self) -> str:
        loc = self.where or format_path(self.path)
        return f"{loc}: {self.message}"


class ConfigError(Exception):
    """The config pair cannot be used. Carries every issue found, not just the first."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues) or "invalid config")


def identity_of(key: str, entry: object) -> str | None:
    """The identity label of an array entry, e.g. `name "guest-dns"`, or None."""
    if not isinstance(entry, Mapping):
        return None
    id_key = IDENTITY_KEYS.get(key, DEFAULT_IDENTITY)
    value = entry.get(id_key)
    if isinstance(value, str):
        return f'{id_key} "{value}"'
    return None


def format_path(path: Path, raw: Mapping[str, Any] | None = None) -> str:
    """Render a path; with the raw document, label array entries by their identity key."""
    out = ""
    node: Any = raw
    last_key = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
            entry = node[seg] if isinstance(node, list) and 0 <= seg < len(node) else None
            label = identity_of(last_key, entry)
            if label:
                out += f" ({label})"
            node = entry
        else:
            out += f".{seg}" if out else seg
            last_key = seg
            node = node.get(seg) if isinstance(node, Mapping) else None
    return out or "(top level)"


def render(issue: ConfigIssue, raw: Mapping[str, Any] | None) -> ConfigIssue:
    return msgspec.structs.replace(issue, where=format_path(issue.path, raw))


__all__ = ["ConfigError", "ConfigIssue", "Path", "format_path", "identity_of", "render"]
