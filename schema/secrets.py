"""The secrets split: which leaves are secret, and merging, splitting and redacting the config pair.

Owns the data that says which TOML leaves are secrets (`SECRET_FIELDS`) and how the public file,
the secrets overlay and the `OXWRT_SECRET__...` environment combine (`MERGE_IDENTITY`). Pure:
documents in, new documents and issues out; inputs are never mutated. Invariants:
- `merge(public, split(doc)...)` gives `doc` back: split moves exactly the leaves merge restores;
- an overlay entry pairs with a public entry by its identity key only, never by position;
- a bad overlay or environment variable is reported as a `ConfigIssue`, never silently ignored.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from schema.errors import ConfigIssue, Path

REDACTED: Final = "<redacted>"
ENV_PREFIX: Final = "OXWRT_SECRET__"
ENV_SEPARATOR: Final = "__"
ENV_FILE: Final = "environment"

# Arrays of tables merged by an identity key rather than replaced (reference `merge_toml`). The key
# is the dotted path of the array; every other array in an overlay replaces the base array whole.
MERGE_IDENTITY: Final[dict[str, str]] = {
    "networks": "name",
    "radios": "phy",
    "wifi": "ssid",
    "services": "name",
    "port_forwards": "name",
    "wireguard": "name",
    "wireguard.peers": "name",
    "ddns": "name",
    "vpn_client": "name",
    "firewall.zones": "name",
}

# Tagged unions among the identity arrays: which key picks the variant Struct of an entry.
_VARIANT_TAG: Final[dict[str, str]] = {"networks": "type", "ddns": "provider"}


class SecretField(msgspec.Struct, frozen=True):
    """A secret leaf: `field` of every entry of the array at `section` (a tuple of keys, nested
    arrays included) whose `variant` key, if given, has the given value."""

    section: tuple[str, ...]
    field: str
    variant: tuple[str, str] | None = None

    @property
    def identities(self) -> tuple[str, ...]:
        """The identity key at each level, e.g. ("name", "name") for wireguard.peers."""
        return tuple(
            MERGE_IDENTITY[".".join(self.section[: depth + 1])]
            for depth in range(len(self.section))
        )


# The reference's authoritative list (`SECRET_FIELDS` in oxwrt-api/src/secrets.rs).
SECRET_FIELDS: Final[tuple[SecretField, ...]] = (
    SecretField(("wifi",), "passphrase"),
    SecretField(("wireguard", "peers"), "preshared_key"),
    SecretField(("ddns",), "token", ("provider", "duckdns")),
    SecretField(("ddns",), "api_token", ("provider", "cloudflare")),
    SecretField(("ddns",), "password", ("provider", "namecheap")),
    SecretField(("ddns",), "token", ("provider", "dynv6")),
    SecretField(("ddns",), "key", ("provider", "he")),
    SecretField(("networks",), "password", ("mode", "pppoe")),
)

Doc = dict[str, Any]
# One step from a parent document to an entry: (array key, identity key, identity value).
Anchor = tuple[str, str, str]


class SecretLeaf(msgspec.Struct, frozen=True):
    """A secret leaf found in a document: where it is, and the identity chain that pairs it."""

    path: Path  # e.g. ("wireguard", 0, "peers", 1, "preshared_key")
    anchors: tuple[Anchor, ...]  # e.g. (("wireguard","name","wg0"), ("peers","name","laptop"))
    field: str
    value: Any


def identity_key(section: tuple[str, ...]) -> str | None:
    return MERGE_IDENTITY.get(".".join(section))


def _entries(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _walk_section(
    doc: Mapping[str, Any], section: tuple[str, ...]
) -> Iterator[tuple[Path, tuple[Anchor, ...], Mapping[str, Any]]]:
    """Every table of the (possibly nested) array `section`, with its path and identity chain.
    An entry lacking its identity gets an empty anchor value; `secret_leaves` skips it."""

    def walk(
        node: Mapping[str, Any], depth: int, path: Path, anchors: tuple[Anchor, ...]
    ) -> Iterator[tuple[Path, tuple[Anchor, ...], Mapping[str, Any]]]:
        key = section[depth]
        id_key = identity_key(section[: depth + 1]) or "name"
        for index, entry in enumerate(_entries(node, key)):
            if not isinstance(entry, Mapping):
                continue
            ident = entry.get(id_key)
            anchor = (key, id_key, ident if isinstance(ident, str) else "")
            here = (*path, key, index)
            if depth + 1 == len(section):
                yield here, (*anchors, anchor), entry
            else:
                yield from walk(entry, depth + 1, here, (*anchors, anchor))

    return walk(doc, 0, (), ())


def _variant_matches(entry: Mapping[str, Any], variant: tuple[str, str] | None) -> bool:
    return variant is None or entry.get(variant[0]) == variant[1]


def secret_leaves(doc: Mapping[str, Any], *, any_variant: bool = False) -> list[SecretLeaf]:
    """Every present secret leaf of `doc`. `any_variant` ignores the variant filter (used by
    redaction, so a secret in a mis-tagged entry, e.g. a DHCP WAN with a password, never leaks)."""
    found: dict[Path, SecretLeaf] = {}
    for sf in SECRET_FIELDS:
        for path, anchors, entry in _walk_section(doc, sf.section):
            if sf.field not in entry:
                continue
            if not any_variant and not _variant_matches(entry, sf.variant):
                continue
            leaf_path = (*path, sf.field)
            found.setdefault(leaf_path, SecretLeaf(leaf_path, anchors, sf.field, entry[sf.field]))
    return list(found.values())


def is_secret_path(doc: Mapping[str, Any], path: Path) -> bool:
    """Whether `path` (into `doc`) names a secret leaf, whether or not it is present yet."""
    for sf in SECRET_FIELDS:
        for entry_path, _anchors, entry in _walk_section(doc, sf.section):
            if path == (*entry_path, sf.field) and _variant_matches(entry, sf.variant):
                return True
    return False


# ---------------------------------------------------------------- merge


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> Doc:
    """Deep-merge `overlay` onto `base` (the reference rule): tables key by key, the overlay
    winning at every leaf; identity arrays entry by identity, unmatched overlay entries appended;
    any other array, and every scalar, replaced by the overlay's."""
    return _merge_table(base, overlay, ())


def _merge_table(base: Mapping[str, Any], overlay: Mapping[str, Any], at: tuple[str, ...]) -> Doc:
    # Each value is copied exactly once: merged subtrees are rebuilt, the rest deep-copied.
    out: Doc = {}
    for key, have in base.items():
        out[key] = (
            _merge_value(have, overlay[key], (*at, key)) if key in overlay else copy.deepcopy(have)
        )
    for key, over in overlay.items():
        if key not in base:
            out[key] = copy.deepcopy(over)
    return out


def _merge_value(have: Any, over: Any, here: tuple[str, ...]) -> Any:
    if isinstance(have, Mapping) and isinstance(over, Mapping):
        return _merge_table(have, over, here)
    id_key = identity_key(here)
    if id_key is not None and isinstance(have, list) and isinstance(over, list):
        return _merge_array(have, over, here, id_key)
    return copy.deepcopy(over)


def _merge_array(
    base: list[Any], overlay: list[Any], at: tuple[str, ...], id_key: str
) -> list[Any]:
    into: dict[int, list[Mapping[str, Any]]] = {}
    appended: list[Any] = []
    for over in overlay:
        index = _find_entry(base, id_key, over.get(id_key)) if isinstance(over, Mapping) else None
        if index is None:
            appended.append(copy.deepcopy(over))
        else:
            into.setdefault(index, []).append(over)
    out: list[Any] = []
    for index, entry in enumerate(base):
        if index not in into:
            out.append(copy.deepcopy(entry))
            continue
        merged = entry
        for over in into[index]:
            merged = _merge_table(merged, over, at)
        out.append(merged)
    return out + appended


def _find_entry(entries: list[Any], id_key: str, ident: Any) -> int | None:
    if not isinstance(ident, str):
        return None
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping) and entry.get(id_key) == ident:
            return index
    return None


def unmatched(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> list[ConfigIssue]:
    """Overlay entries of identity arrays that pair with no base entry (or carry no identity).
    The reference appends them; here they are reported, since a secrets entry for an SSID that
    was renamed in the public file is a mistake, not a new network. Paths are into `overlay`."""
    issues: list[ConfigIssue] = []

    def walk(b: Mapping[str, Any], o: Mapping[str, Any], at: tuple[str, ...], path: Path) -> None:
        for key, over in o.items():
            here = (*at, key)
            have = b.get(key)
            if isinstance(over, Mapping):
                walk(have if isinstance(have, Mapping) else {}, over, here, (*path, key))
                continue
            id_key = identity_key(here)
            if id_key is None or not isinstance(over, list):
                continue
            entries = have if isinstance(have, list) else []
            for index, entry in enumerate(over):
                if not isinstance(entry, Mapping):
                    continue
                ident = entry.get(id_key)
                section = ".".join(here)
                if not isinstance(ident, str):
                    issues.append(
                        ConfigIssue(
                            path=(*path, key, index),
                            message=f"overlay entry of [[{section}]] has no `{id_key}`; "
                            f"entries pair with the public file by `{id_key}`",
                        )
                    )
                    continue
                first = _find_entry(over, id_key, ident)
                if first is not None and first < index:
                    issues.append(
                        ConfigIssue(
                            path=(*path, key, index),
                            message=f'a second overlay entry for {id_key} "{ident}" '
                            f"(the first is {section}[{first}]); keep one",
                        )
                    )
                    continue
                match = _find_entry(entries, id_key, ident)
                if match is None:
                    known = [e.get(id_key) for e in entries if isinstance(e, Mapping)]
                    hint = _suggest(ident, [k for k in known if isinstance(k, str)])
                    issues.append(
                        ConfigIssue(
                            path=(*path, key, index),
                            message=f'no [[{section}]] with {id_key} "{ident}" in the public '
                            f"file to pair this overlay entry with{hint}",
                        )
                    )
                else:
                    walk(entries[match], entry, here, (*path, key, index))

    walk(base, overlay, (), ())
    return issues


def without(doc: Mapping[str, Any], paths: list[Path]) -> Doc:
    """A copy of `doc` with the array entries at `paths` removed (so a reported orphan does not
    also surface as a pile of "missing field" errors once appended)."""
    if not paths:
        return dict(doc)
    out: Doc = copy.deepcopy(dict(doc))
    # Deepest and highest index first, so earlier removals do not shift later paths.
    for path in sorted(paths, key=lambda p: (len(p), p[-1]), reverse=True):
        node: Any = out
        for seg in path[:-1]:
            node = node[seg]
        del node[path[-1]]
    return out


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def overlay_path(merged: Any, overlay: Any, path: Path) -> Path | None:
    """The path in `overlay` of the merged leaf at `path`, if that leaf came from the overlay.
    Tables present in both files count as the public file's (its header is there)."""
    node_m, node_o = merged, overlay
    out: list[str | int] = []
    section: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            if not isinstance(node_m, list) or not isinstance(node_o, list):
                return None
            if not 0 <= seg < len(node_m):
                return None
            id_key = identity_key(tuple(section))
            if id_key is None:  # a replaced array came whole from the overlay
                index: int | None = seg if seg < len(node_o) else None
            else:
                entry = node_m[seg]
                ident = entry.get(id_key) if isinstance(entry, Mapping) else None
                index = _find_entry(node_o, id_key, ident)
            if index is None:
                return None
            node_m, node_o = node_m[seg], node_o[index]
            out.append(index)
        else:
            if not isinstance(node_o, Mapping) or seg not in node_o:
                return None
            node_m = node_m.get(seg) if isinstance(node_m, Mapping) else None
            node_o = node_o[seg]
            out.append(seg)
            section.append(seg)
    if isinstance(node_o, Mapping):
        return None  # a table both files share: report it where the public file declares it
    return tuple(out)


# ---------------------------------------------------------------- split and redact


def split(doc: Mapping[str, Any]) -> tuple[Doc, Doc]:
    """(public, secrets): every present secret leaf moved into a sparse secrets document whose
    entries carry only their identity key(s) and the moved leaves. Entries without an identity
    cannot be paired, so their leaves stay where they are (validation reports the missing key)."""
    public: Doc = copy.deepcopy(dict(doc))
    secrets: Doc = {}
    for leaf in secret_leaves(doc):
        if any(ident == "" for _key, _id_key, ident in leaf.anchors):
            continue
        delete_path(public, leaf.path)
        sparse_entry(secrets, leaf.anchors)[leaf.field] = copy.deepcopy(leaf.value)
    return public, secrets


def delete_path(doc: Any, path: Path) -> None:
    node = doc
    for seg in path[:-1]:
        node = node[seg]
    del node[path[-1]]


def sparse_entry(doc: Any, anchors: tuple[Anchor, ...]) -> Any:
    """Find or create, in a sparse overlay document, the entry named by `anchors`."""
    node = doc
    for key, id_key, ident in anchors:
        if key not in node:
            node[key] = []
        entries = node[key]
        index = _find_entry(entries, id_key, ident)
        if index is None:
            entries.append({id_key: ident})
            index = len(entries) - 1
        node = entries[index]
    return node


def redact(doc: Mapping[str, Any]) -> tuple[Doc, int]:
    """A copy of `doc` with every present secret leaf replaced by `<redacted>`, and how many."""
    out: Doc = copy.deepcopy(dict(doc))
    leaves = secret_leaves(doc, any_variant=True)
    for leaf in leaves:
        node: Any = out
        for seg in leaf.path[:-1]:
            node = node[seg]
        node[leaf.path[-1]] = REDACTED
    return out, len(leaves)


# ---------------------------------------------------------------- environment overlay


class EnvOverlay(msgspec.Struct, frozen=True):
    doc: Doc
    applied: dict[Path, str]  # path of each injected leaf -> the variable that set it
    issues: list[ConfigIssue]


def apply_env_overlay(doc: Mapping[str, Any], env: Mapping[str, str]) -> EnvOverlay:
    """Apply `OXWRT_SECRET__<section>__<id>__<field>` (and, for WireGuard peers,
    `OXWRT_SECRET__wireguard__<wg>__peers__<peer>__<field>`) variables on top of `doc`.

    Better than the reference: the value is coerced to the field's type (an integer field gets
    an int) and a variable naming no section, entry or field is reported, not ignored. The input
    is never mutated; without any such variable the result shares its structure."""
    names = sorted(name for name in env if name.startswith(ENV_PREFIX))
    if not names:  # the common case: no copy
        return EnvOverlay(dict(doc), {}, [])
    out: Doc = copy.deepcopy(dict(doc))
    applied: dict[Path, str] = {}
    issues: list[ConfigIssue] = []
    for name in names:
        result = _apply_one(out, name, env[name])
        if isinstance(result, str):
            issues.append(ConfigIssue(path=(name,), message=result, file=ENV_FILE))
        else:
            applied[result] = name
    return EnvOverlay(out, applied, issues)


_ENV_FORMS = (
    f"{ENV_PREFIX}<section>{ENV_SEPARATOR}<id>{ENV_SEPARATOR}<field> or "
    f"{ENV_PREFIX}wireguard{ENV_SEPARATOR}<wg>{ENV_SEPARATOR}peers{ENV_SEPARATOR}<peer>"
    f"{ENV_SEPARATOR}<field>"
)


def _apply_one(doc: Doc, name: str, value: str) -> Path | str:
    """Set one variable's leaf in `doc`; its path, or why it cannot apply."""
    parts = name[len(ENV_PREFIX) :].split(ENV_SEPARATOR)
    if len(parts) == 5 and parts[0] == "wireguard" and parts[2] == "peers":
        steps = [("wireguard", parts[1]), ("peers", parts[3])]
    elif len(parts) == 3:
        steps = [(parts[0], parts[1])]
    else:
        return f"malformed variable name; expected {_ENV_FORMS}"
    field = parts[-1]
    if not all(parts):
        return f"malformed variable name (an empty part); expected {_ENV_FORMS}"
    top = steps[0][0]
    if top not in MERGE_IDENTITY or "." in top:
        sections = sorted(k for k in MERGE_IDENTITY if "." not in k)
        return f"unknown section {top!r}{_suggest_plain(top, sections)}; one of {sections}"
    node: Any = doc
    path: Path = ()
    section: tuple[str, ...] = ()
    for key, ident in steps:
        section = (*section, key)
        id_key = identity_key(section) or "name"
        index = _find_entry(_entries(node, key), id_key, ident)
        if index is None:
            return f'no [[{".".join(section)}]] with {id_key} "{ident}" to set `{field}` on'
        node = node[key][index]
        path = (*path, key, index)
    entry_type = _entry_type(section, node)
    if isinstance(entry_type, str):
        return entry_type
    fields = {f.name: f.type for f in entry_type.fields}
    if field == id_key:  # renaming an entry from outside would silently unpair its overlay
        return f"`{field}` is the identity of [[{'.'.join(section)}]] and cannot be overridden"
    if field not in fields:
        return (
            f"[[{'.'.join(section)}]] has no field {field!r}{_suggest_plain(field, list(fields))}"
        )
    coerced = _coerce(value, fields[field])
    if isinstance(coerced, _Bad):
        return f"`{field}` {coerced.why}"
    node[field] = coerced
    return (*path, field)


def _suggest_plain(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@cache
def _config_type() -> mi.StructType:
    from schema.config import Config  # the Structs are the single source of field types

    info = mi.type_info(Config)
    assert isinstance(info, mi.StructType)
    return info


def _entry_type(section: tuple[str, ...], entry: Mapping[str, Any]) -> mi.StructType | str:
    """The Struct type of an entry of `section`, picking the variant of a tagged union."""
    node: mi.Type = _config_type()
    for key in section:
        if isinstance(node, mi.UnionType):  # a nested array inside a union variant: none today
            return f"cannot type entries of [[{'.'.join(section)}]]"
        assert isinstance(node, mi.StructType)
        field = next(f for f in node.fields if f.name == key)
        assert isinstance(field.type, mi.ListType)
        node = field.type.item_type
    if isinstance(node, mi.StructType):
        return node
    assert isinstance(node, mi.UnionType)
    tag_key = _VARIANT_TAG[".".join(section)]
    variants = {t.tag: t for t in node.types if isinstance(t, mi.StructType)}
    tag = entry.get(tag_key)
    if tag not in variants:
        return (
            f"the [[{'.'.join(section)}]] entry has no valid `{tag_key}` "
            f"(one of {sorted(str(v) for v in variants)}), so its fields cannot be typed"
        )
    return variants[tag]


class _Bad(msgspec.Struct, frozen=True):
    why: str


def _coerce(value: str, type_: mi.Type) -> Any:
    """Convert an environment string to what TOML would have carried for a field of `type_`."""
    options = type_.types if isinstance(type_, mi.UnionType) else (type_,)
    options = tuple(t for t in options if not isinstance(t, mi.NoneType))
    if any(isinstance(t, mi.StrType | mi.LiteralType) for t in options):
        return value
    if all(isinstance(t, mi.BoolType) for t in options):
        if value in ("true", "false"):
            return value == "true"
        return _Bad(f"takes true or false, got {value!r}")
    if all(isinstance(t, mi.IntType) for t in options):
        try:
            return int(value.strip(), 10)
        except ValueError:
            return _Bad(f"takes an integer, got {value!r}")
    try:  # lists and tables: a TOML inline value, e.g. ["1.1.1.1", "9.9.9.9"]
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return _Bad(f"takes a TOML inline value (array or table), got {value!r}")


# ---------------------------------------------------------------- the secrets file itself


def mode_issue(file: str, mode: int) -> ConfigIssue | None:
    """The secrets file must be private to its owner (the reference forces 0600 at boot)."""
    if mode & 0o077 == 0:
        return None
    return ConfigIssue(
        path=(),
        file=file,
        message=f"secrets file has mode {mode & 0o777:04o}: group/other can access it; "
        f"run `chmod 600 {file}`",
    )


__all__ = [
    "ENV_PREFIX",
    "MERGE_IDENTITY",
    "REDACTED",
    "SECRET_FIELDS",
    "EnvOverlay",
    "SecretField",
    "SecretLeaf",
    "apply_env_overlay",
    "delete_path",
    "is_secret_path",
    "merge",
    "mode_issue",
    "overlay_path",
    "redact",
    "secret_leaves",
    "sparse_entry",
    "split",
    "unmatched",
    "without",
]
