"""Comment-keeping edits of the config pair on disk: migration of inline secrets, and `set`.

Owns every write of oxwrt.toml / oxwrt.secrets.toml text. The only module that uses tomlkit
(about 14x slower to parse than tomllib, so it stays off the load path). Invariants:
- an edit changes only the values it names; every comment, blank line and key order survives;
- a secret leaf is written to the secrets text, never to the public one, and a write never loses
  a secret already on disk (reference bug: `set` rewrote the secrets file from the public one);
- writers take file texts, never the merged in-memory config, so values injected through
  `OXWRT_SECRET__` variables are never persisted (reference bug: CRUD wrote them to disk);
- a file is replaced atomically (temp file in the same directory, fsync, rename, fsync the
  directory); the secrets file is written first and is always 0600.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from pathlib import Path as FsPath
from typing import Any, Final, Literal

import msgspec
import tomlkit
import tomlkit.exceptions
from tomlkit.container import Container
from tomlkit.items import AoT, Table

from schema import secrets as sec
from schema.atomic import write_atomic
from schema.errors import ConfigError, ConfigIssue, Path, format_path
from schema.locate import locate

PUBLIC_MODE: Final = 0o644
SECRETS_MODE: Final = 0o600
NEW_SECRETS_HEADER: Final = (
    "# oxwrt secrets overlay (mode 0600), merged over oxwrt.toml at load.\n"
    "# Entries pair with the public file by identity key: ssid for [[wifi]],\n"
    "# phy for [[radios]], name for the others.\n"
)


# ---------------------------------------------------------------- serialising plain documents


def dumps(doc: Mapping[str, Any]) -> str:
    """TOML text for a plain document (as tomllib returns it): scalars first, then tables and
    arrays of tables, so that the output parses back to the same document."""
    return tomlkit.dumps(_ordered(doc))


def _ordered(doc: Mapping[str, Any]) -> dict[str, Any]:
    def is_table_like(value: Any) -> bool:
        return isinstance(value, Mapping) or (
            isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)
        )

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return _ordered(value)
        if isinstance(value, list):
            if len(value) > LONG_ARRAY and not any(isinstance(v, Mapping | list) for v in value):
                return _long_array(value)
            return [convert(v) for v in value]
        return value

    plain = {k: convert(v) for k, v in doc.items() if not is_table_like(v)}
    tables = {k: convert(v) for k, v in doc.items() if is_table_like(v)}
    return plain | tables


LONG_ARRAY: Final = 64  # scalars; longer arrays are written one line of elements, built at once


def _long_array(values: list[Any]) -> Any:
    """tomlkit builds an array from a list by appending one element at a time and re-indexing
    the whole array on each append: quadratic, 16 s for an ipset of 20,000 entries (and
    dump-config runs in the daemon). `add_line` takes them all in one call."""
    array = tomlkit.array()
    array.add_line(*values, indent="  ")
    array.add_line(indent="")  # the closing bracket on a line of its own
    return array


# ---------------------------------------------------------------- parsing with positions


def _parse(text: str, file: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(
            [ConfigIssue(path=(), message=f"malformed TOML: {exc}", line=exc.line, file=file)]
        ) from None


# ---------------------------------------------------------------- migration


class Migration(msgspec.Struct, kw_only=True):
    """What `migrate_inline_secrets` did. `moved` leaves left the public file; each conflict is
    an inline leaf that differs from the secrets file's value and was left in place."""

    outcome: Literal["no-public-file", "clean", "migrated", "conflicts-only"]
    moved: int = 0
    conflicts: list[ConfigIssue] = []


def migrate_inline_secrets(public_path: FsPath, secrets_path: FsPath | None = None) -> Migration:
    """Move every inline secret leaf out of the public file into the secrets file, keeping the
    comments and layout of both. Better than the reference: when a secrets file exists, the
    inline leaves are merged into it (an inline value is taken only where the secrets file lacks
    that leaf; an equal value is simply dropped from the public file; a different value is a
    reported conflict and stays inline) instead of refusing to touch anything."""
    secrets_path = secrets_path or public_path.with_name("oxwrt.secrets.toml")
    try:
        public_text = public_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Migration(outcome="no-public-file")
    public_doc = _parse(public_text, str(public_path))
    public_plain = public_doc.unwrap()
    leaves = [
        leaf
        for leaf in sec.secret_leaves(public_plain)
        if all(ident for _key, _id_key, ident in leaf.anchors)
    ]
    if not leaves:
        return Migration(outcome="clean")
    try:
        secrets_text: str | None = secrets_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        secrets_text = None
    secrets_doc = _parse(secrets_text or NEW_SECRETS_HEADER, str(secrets_path))

    moved = 0
    conflicts: list[ConfigIssue] = []
    for leaf in leaves:
        entry = _sparse_entry(secrets_doc, leaf.anchors)
        if leaf.field in entry and entry[leaf.field] != leaf.value:
            conflicts.append(
                _conflict(leaf, public_plain, public_text, str(public_path), str(secrets_path))
            )
            continue
        if leaf.field not in entry:
            entry[leaf.field] = leaf.value
        _delete(public_doc, leaf.path)
        moved += 1
    if moved == 0:
        return Migration(outcome="conflicts-only", conflicts=conflicts)
    # Secrets first: a crash in between leaves the value in both files (harmless: equal values
    # are dropped on the next run), never in neither.
    write_atomic(secrets_path, secrets_doc.as_string(), SECRETS_MODE)
    write_atomic(public_path, public_doc.as_string(), PUBLIC_MODE)
    return Migration(outcome="migrated", moved=moved, conflicts=conflicts)


def _conflict(
    leaf: sec.SecretLeaf,
    public: Mapping[str, Any],
    public_text: str,
    public_file: str,
    secrets_file: str,
) -> ConfigIssue:
    return ConfigIssue(
        path=leaf.path,
        file=public_file,
        line=locate(public_text, leaf.path),
        where=format_path(leaf.path, public),
        message=f"inline `{leaf.field}` differs from the one in {secrets_file}, which wins; "
        "the inline value was left in place: remove one of them",
    )


def _sparse_entry(doc: Container | Table, anchors: tuple[sec.Anchor, ...]) -> Any:
    """Find or create (as `[[section]]` tables) the entry named by `anchors` in a tomlkit doc."""
    node: Any = doc
    for key, id_key, ident in anchors:
        if key not in node:
            node.append(key, tomlkit.aot())
        entries = node[key]
        found = next(
            (e for e in entries if isinstance(e, Mapping) and e.get(id_key) == ident), None
        )
        if found is None:
            table = tomlkit.table()
            table.add(id_key, ident)
            table.trivia.indent = "\n"  # a blank line between entries
            entries.append(table)
            found = entries[-1]
        node = found
    return node


def _delete(doc: Any, path: Path) -> None:
    node = doc
    for seg in path[:-1]:
        node = node[seg]
    del node[path[-1]]


# ---------------------------------------------------------------- set


def set_value(public_text: str, path: Path, value: Any) -> str:
    """`public_text` with the value at `path` replaced (or added to its existing table), keeping
    every comment. Missing tables on the way are created; array entries must exist."""
    doc = _parse(public_text, "oxwrt.toml")
    _assign(doc, path, value)
    return doc.as_string()


def set_value_pair(
    public_text: str, secrets_text: str | None, path: Path, value: Any
) -> tuple[str, str | None]:
    """Set the value at `path` (a path into the public file) in the pair, writing it where it
    takes effect: a secret leaf goes to the secrets text (any inline copy is removed from the
    public text); a leaf the secrets file overrides is changed there; anything else is changed
    in the public text. The other leaves of both texts are untouched."""
    public_doc = _parse(public_text, "oxwrt.toml")
    plain = public_doc.unwrap()
    _require_entries(plain, path)
    if sec.is_secret_path(plain, path):
        secrets_doc = _parse(secrets_text or NEW_SECRETS_HEADER, "oxwrt.secrets.toml")
        entry = _sparse_entry(secrets_doc, _anchors(plain, path))
        entry[str(path[-1])] = value
        if _has(plain, path):
            _delete(public_doc, path)
        return public_doc.as_string(), secrets_doc.as_string()
    if secrets_text is not None:
        secrets_plain = _parse(secrets_text, "oxwrt.secrets.toml").unwrap()
        in_secrets = sec.overlay_path(sec.merge(plain, secrets_plain), secrets_plain, path)
        if in_secrets is not None:
            secrets_doc = _parse(secrets_text, "oxwrt.secrets.toml")
            _assign(secrets_doc, in_secrets, value)
            return public_text, secrets_doc.as_string()
    _assign(public_doc, path, value)
    return public_doc.as_string(), secrets_text


def _anchors(doc: Mapping[str, Any], path: Path) -> tuple[sec.Anchor, ...]:
    """The identity chain of the entry holding the leaf at `path`."""
    anchors: list[sec.Anchor] = []
    node: Any = doc
    section: list[str] = []
    for seg in path[:-1]:
        if isinstance(seg, str):
            section.append(seg)
            node = node[seg]
            continue
        id_key = sec.identity_key(tuple(section)) or "name"
        entry = node[seg]
        ident = entry.get(id_key)
        if not isinstance(ident, str):
            raise _bad(path, f"the entry has no `{id_key}` to pair a secrets entry with")
        anchors.append((section[-1], id_key, ident))
        node = entry
    return tuple(anchors)


def _require_entries(doc: Mapping[str, Any], path: Path) -> None:
    node: Any = doc
    for depth, seg in enumerate(path[:-1]):
        if isinstance(seg, int):
            if not isinstance(node, list) or not 0 <= seg < len(node):
                raise _bad(path[: depth + 1], "no such entry")
        elif not isinstance(node, Mapping):
            raise _bad(path[: depth + 1], "not a table")
        elif seg not in node:
            return  # tables created on the way by _assign
        node = node[seg]


def _has(doc: Mapping[str, Any], path: Path) -> bool:
    node: Any = doc
    for seg in path:
        try:
            node = node[seg]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _assign(doc: Any, path: Path, value: Any) -> None:
    if not path or not isinstance(path[-1], str):
        raise _bad(path, "a value is set on a key, not on a table or array entry")
    node = doc
    for depth, seg in enumerate(path[:-1]):
        if isinstance(seg, int):
            if not isinstance(node, list) or not 0 <= seg < len(node):
                raise _bad(path[: depth + 1], "no such entry")
        elif not isinstance(node, MutableMapping):
            raise _bad(path[:depth], "is an array; name an entry by its index")
        elif seg not in node:
            node[seg] = tomlkit.table()
        elif not isinstance(node[seg], Mapping | list):
            raise _bad(path[: depth + 1], "not a table")
        node = node[seg]
    if isinstance(node, list):
        raise _bad(path[:-1], "is an array; name an entry by its index")
    if not isinstance(node, MutableMapping):
        raise _bad(path[:-1], "not a table")
    current = node.get(path[-1])
    if isinstance(current, Mapping | AoT):
        raise _bad(path, "is a table; set its keys one by one")
    node[path[-1]] = value


def _bad(path: Path, message: str) -> ConfigError:
    return ConfigError([ConfigIssue(path=path, message=message)])


# ---------------------------------------------------------------- files


def write_pair(
    public_path: FsPath, public_text: str, secrets_path: FsPath, secrets_text: str | None
) -> None:
    """Write both texts of an edited pair, secrets first (see the module invariants)."""
    if secrets_text is not None:
        write_atomic(secrets_path, secrets_text, SECRETS_MODE)
    write_atomic(public_path, public_text, PUBLIC_MODE)


def secure_secrets_mode(secrets_path: FsPath) -> bool:
    """Force the secrets file to 0600 (the reference does it at every boot); True if changed."""
    try:
        mode = secrets_path.stat().st_mode & 0o777
    except FileNotFoundError:
        return False
    if mode == SECRETS_MODE:
        return False
    secrets_path.chmod(SECRETS_MODE)
    return True


__all__ = [
    "NEW_SECRETS_HEADER",
    "PUBLIC_MODE",
    "SECRETS_MODE",
    "Migration",
    "dumps",
    "migrate_inline_secrets",
    "secure_secrets_mode",
    "set_value",
    "set_value_pair",
    "write_atomic",
    "write_pair",
]
