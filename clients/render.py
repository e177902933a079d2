"""Rendering for oxctl: config issues as text lines or JSON, and the redacted dump-config view.

Text is for people (`file:line: PATH: message`), JSON is for scripts; both carry the same facts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from schema.errors import ConfigIssue, format_path

if TYPE_CHECKING:
    from schema.load import Loaded


def issue_line(issue: ConfigIssue) -> str:
    """`oxwrt.toml:12: firewall.rules[3] (name "guest-dns").src: message`."""
    where = issue.where or format_path(issue.path)
    prefix = ""
    if issue.file:
        prefix = f"{issue.file}:{issue.line}: " if issue.line else f"{issue.file}: "
    return f"{prefix}{where}: {issue.message}"


def issues_text(issues: Sequence[ConfigIssue]) -> str:
    return "".join(issue_line(i) + "\n" for i in issues)


def issues_json(issues: Sequence[ConfigIssue]) -> str:
    return json.dumps(
        [
            {
                "path": i.where or format_path(i.path),
                "line": i.line,
                "message": i.message,
                "file": i.file,
            }
            for i in issues
        ],
        indent=2,
    )


def dump_config(loaded: Loaded) -> str:
    """The merged config with every secret leaf `<redacted>`, under a provenance header."""
    from schema.secrets import redact
    from schema.tomledit import dumps

    redacted, count = redact(loaded.raw)
    state = "present" if loaded.secrets_present else "NOT present"
    header = (
        "# oxctl dump-config: merged view, every secret leaf replaced by <redacted>.\n"
        f"# public:  {loaded.public_file}\n"
        f"# secrets: {loaded.secrets_file} ({state})\n"
        f"# redacted leaves: {count}\n"
    )
    if loaded.env_applied:
        header += f"# from the environment: {', '.join(sorted(set(loaded.env_applied.values())))}\n"
    return f"{header}\n{dumps(redacted)}"


__all__ = ["dump_config", "issue_line", "issues_json", "issues_text"]
