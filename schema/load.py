"""Loading the config pair: public TOML + secrets overlay + environment -> a validated Config.

Owns the load order of the reference (parse public, merge secrets by identity, apply the
`OXWRT_SECRET__` environment, decode and validate) and the mapping of every issue back to the
file and line an operator must edit. Parses with `tomllib` only (tomlkit is ~14x slower and is
kept to the comment-keeping writers in `schema.tomledit`). Invariants:
- every issue names its file, and its line whenever the file has one for that path;
- `Loaded.ok` is true exactly when there are no issues and `config` is set.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path as FsPath
from typing import Any, Final

import msgspec

from schema import secrets as sec
from schema.config import Config
from schema.errors import ConfigError, ConfigIssue, Path, render
from schema.locate import locate
from schema.validate import check

PUBLIC_NAME: Final = "oxwrt.toml"
SECRETS_NAME: Final = "oxwrt.secrets.toml"

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")


class Loaded(msgspec.Struct, kw_only=True):
    """The result of loading a config pair; `config` is None when there are issues that stop
    decoding (malformed TOML) or validation failed."""

    config: Config | None
    raw: dict[str, Any]  # merged public + secrets + environment, before decoding
    public_text: str
    secrets_text: str | None
    public_file: str
    secrets_file: str
    secrets_present: bool
    issues: list[ConfigIssue]
    env_applied: dict[Path, str] = {}  # leaves set from the environment -> variable name
    parsed: bool = True  # both texts are well-formed TOML (`raw` is meaningful)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.issues

    def raise_for_issues(self) -> Config:
        """The config, or ConfigError carrying every issue."""
        if self.config is None or self.issues:
            raise ConfigError(self.issues or [ConfigIssue(path=(), message="no config")])
        return self.config


def default_secrets_path(public: FsPath) -> FsPath:
    return public.with_name(SECRETS_NAME)


def load_pair(
    public: FsPath,
    secrets: FsPath | None = None,
    env: Mapping[str, str] | None = None,
) -> Loaded:
    """Load `public` and its secrets overlay (default: oxwrt.secrets.toml beside it; a missing
    secrets file is fine). `env` is the environment to overlay (pass os.environ like the daemon;
    None overlays nothing). A missing or unreadable public file raises OSError."""
    secrets = secrets if secrets is not None else default_secrets_path(public)
    public_text = public.read_text(encoding="utf-8")
    try:
        secrets_text: str | None = secrets.read_text(encoding="utf-8")
        mode_issue = sec.mode_issue(str(secrets), secrets.stat().st_mode)
    except FileNotFoundError:
        secrets_text, mode_issue = None, None
    loaded = load_text(
        public_text,
        secrets_text,
        env,
        public_file=str(public),
        secrets_file=str(secrets),
    )
    if mode_issue is not None:
        loaded.issues.append(mode_issue)
        loaded.config = None
    return loaded


def load_text(
    public_text: str,
    secrets_text: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    public_file: str = PUBLIC_NAME,
    secrets_file: str = SECRETS_NAME,
) -> Loaded:
    """Load a config pair given as text (a pushed config, or files already read)."""
    issues: list[ConfigIssue] = []
    public_doc = _parse(public_text, public_file, issues)
    secrets_doc = _parse(secrets_text, secrets_file, issues) if secrets_text is not None else {}

    def result(config: Config | None, raw: dict[str, Any], applied: dict[Path, str]) -> Loaded:
        return Loaded(
            config=config,
            raw=raw,
            public_text=public_text,
            secrets_text=secrets_text,
            public_file=public_file,
            secrets_file=secrets_file,
            secrets_present=secrets_text is not None,
            issues=issues,
            env_applied=applied,
            parsed=public_doc is not None and secrets_doc is not None,
        )

    if public_doc is None or secrets_doc is None:
        return result(None, {}, {})

    orphans = sec.unmatched(public_doc, secrets_doc)
    for orphan in orphans:
        line = locate(secrets_text or "", orphan.path)
        issues.append(_placed(orphan, secrets_doc, secrets_file, line))
    merged = sec.merge(public_doc, sec.without(secrets_doc, [o.path for o in orphans]))
    overlay = sec.apply_env_overlay(merged, env or {})
    issues.extend(overlay.issues)

    config, found = check(overlay.doc)  # the one validator every entry point shares
    where = _Origin(secrets_doc, public_text, secrets_text, overlay.applied)
    issues.extend(where.place(issue, overlay.doc, public_file, secrets_file) for issue in found)
    if issues:
        config = None
    return result(config, overlay.doc, overlay.applied)


def _parse(text: str | None, file: str, issues: list[ConfigIssue]) -> dict[str, Any] | None:
    """tomllib's parse; a syntax error becomes an issue with the line and column."""
    try:
        return tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        if match := _TOML_POSITION.search(message):
            line = int(match.group(1))
            message = f"{message[: match.start()]} (line {match.group(1)}, column {match.group(2)})"
        elif match := _TOML_AT_END.search(message):
            line = (text or "").count("\n") + 1
            message = f"{message[: match.start()]} (at end of file)"
        issues.append(
            ConfigIssue(path=(), message=f"malformed TOML: {message}", line=line, file=file)
        )
        return None


def _placed(issue: ConfigIssue, raw: Mapping[str, Any], file: str, line: int | None) -> ConfigIssue:
    placed = msgspec.structs.replace(issue, file=issue.file or file, line=issue.line or line)
    return placed if placed.where else render(placed, raw)


class _Origin:
    """Which file (and line) a path of the merged document came from."""

    def __init__(
        self,
        secrets_doc: Mapping[str, Any],
        public_text: str,
        secrets_text: str | None,
        env_applied: Mapping[Path, str],
    ) -> None:
        self.secrets_doc = secrets_doc
        self.public_text = public_text
        self.secrets_text = secrets_text
        self.env_applied = env_applied

    def place(
        self, issue: ConfigIssue, merged: Mapping[str, Any], public_file: str, secrets_file: str
    ) -> ConfigIssue:
        path = issue.path
        if (variable := self.env_applied.get(path)) is not None:
            moved = msgspec.structs.replace(
                issue, message=f"{issue.message} (set by {variable})", file=sec.ENV_FILE
            )
            return render(moved, merged)
        in_secrets = sec.overlay_path(merged, self.secrets_doc, path)
        if in_secrets is not None and self.secrets_text is not None:
            line = locate(self.secrets_text, in_secrets)
            return _placed(issue, merged, secrets_file, line)
        # locate() falls back to the nearest written ancestor (a missing key -> its table).
        return _placed(issue, merged, public_file, locate(self.public_text, path))


__all__ = [
    "PUBLIC_NAME",
    "SECRETS_NAME",
    "Loaded",
    "default_secrets_path",
    "load_pair",
    "load_text",
]
