"""Decode a parsed TOML document into `Config`, reporting every shape error at once.

Owns the step from "a dict tomllib produced" to "a typed Config". Invariants:
- the common path is one `msgspec.convert` call; the slow walk runs only when that fails;
- when decoding fails, every problem is reported (unknown keys at any depth with a suggestion,
  missing required keys, wrong types, out-of-range integers, unknown union tags, wrong enum
  spellings), each with the path of the offending key, and no Config is returned;
- the walk follows the same Struct types msgspec uses, so the two can only disagree on a msgspec
  behaviour the walk does not model; then msgspec's own message is reported rather than nothing.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
from msgspec import inspect as mi

from schema.config import Config
from schema.errors import ConfigIssue, Path

_TOML_TYPE_NAMES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (Mapping, "table"),
    (datetime.datetime, "date-time"),
    (datetime.date, "date"),
    (datetime.time, "time"),
)


def toml_type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for "expected X, got Y" messages."""
    for py_type, name in _TOML_TYPE_NAMES:
        if isinstance(value, py_type):
            return name
    return type(value).__name__


def did_you_mean(word: str, candidates: Sequence[str]) -> str:
    """` (did you mean `x`?)` for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


@functools.cache
def _config_type() -> mi.StructType:
    info = mi.type_info(Config)
    assert isinstance(info, mi.StructType)
    return info


def decode_config(raw: Mapping[str, Any]) -> tuple[Config | None, list[ConfigIssue]]:
    """The typed Config and no issues, or None and every shape problem found in `raw`."""
    try:
        return msgspec.convert(raw, Config), []
    except msgspec.ValidationError as exc:
        issues = _Walker().walk(raw, _config_type(), ())
        if not issues:  # the walk missed what msgspec saw: never report "invalid" with no reason
            issues = [_from_msgspec_error(str(exc))]
        return None, issues


_MSGSPEC_PATH_RE: Final = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MSGSPEC_SEGMENT_RE: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _from_msgspec_error(message: str) -> ConfigIssue:
    m = _MSGSPEC_PATH_RE.search(message)
    path: list[str | int] = []
    if m:
        for key, index in _MSGSPEC_SEGMENT_RE.findall(m.group("path")):
            path.append(int(index) if index else key)
        message = message[: m.start()]
    return ConfigIssue(path=tuple(path), message=message)


def _expected_name(t: mi.Type) -> str:
    if isinstance(t, mi.IntType):
        return "integer"
    if isinstance(t, mi.StrType):
        return "string"
    if isinstance(t, mi.BoolType):
        return "boolean"
    if isinstance(t, mi.FloatType):
        return "float"
    if isinstance(t, mi.ListType):
        return f"array of {_plural(t.item_type)}"
    if isinstance(t, mi.DictType | mi.StructType):
        return "table"
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(f'"{v}"' for v in t.values)
    if isinstance(t, mi.UnionType):
        names = list(
            dict.fromkeys(_expected_name(m) for m in t.types if not isinstance(m, mi.NoneType))
        )
        return " or ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} or {names[-1]}"
    return type(t).__name__


def _plural(t: mi.Type) -> str:
    name = _expected_name(t)
    return {
        "integer": "integers",
        "string": "strings",
        "boolean": "booleans",
        "table": "tables",
    }.get(name, name)


def _range_text(t: mi.IntType) -> str:
    lo = "" if t.ge is None else str(t.ge)
    hi = "" if t.le is None else str(t.le)
    return f"{lo}..{hi}"


class _Walker:
    """Checks a raw value against a msgspec type description, collecting issues."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def report(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(path=path, message=message))

    def walk(self, value: object, t: mi.Type, path: Path) -> list[ConfigIssue]:
        self.check(value, t, path)
        return self.issues

    def check(self, value: object, t: mi.Type, path: Path) -> None:
        if isinstance(t, mi.AnyType):
            return
        if isinstance(t, mi.UnionType):
            self.check_union(value, t, path)
        elif isinstance(t, mi.StructType):
            if isinstance(value, Mapping):
                self.check_struct(value, t, path)
            else:
                self.wrong_type(value, t, path)
        elif isinstance(t, mi.IntType):
            if isinstance(value, int) and not isinstance(value, bool):
                if (t.ge is not None and value < t.ge) or (t.le is not None and value > t.le):
                    self.report(path, f"{value} is out of range ({_range_text(t)})")
            else:
                self.wrong_type(value, t, path)
        elif isinstance(t, mi.StrType):
            if not isinstance(value, str):
                self.wrong_type(value, t, path)
        elif isinstance(t, mi.BoolType):
            if not isinstance(value, bool):
                self.wrong_type(value, t, path)
        elif isinstance(t, mi.NoneType):
            if value is not None:
                self.wrong_type(value, t, path)
        elif isinstance(t, mi.LiteralType):
            self.check_literal(value, t, path)
        elif isinstance(t, mi.ListType):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    self.check(item, t.item_type, (*path, i))
            else:
                self.wrong_type(value, t, path)
        elif isinstance(t, mi.DictType):
            if isinstance(value, Mapping):
                for k, v in value.items():
                    self.check(k, t.key_type, (*path, str(k)))
                    self.check(v, t.value_type, (*path, str(k)))
            else:
                self.wrong_type(value, t, path)
        # the Config types use no other msgspec type kinds; msgspec itself remains the judge

    def wrong_type(self, value: object, t: mi.Type, path: Path) -> None:
        self.report(path, f"expected {_expected_name(t)}, got {toml_type_name(value)}")

    def check_literal(self, value: object, t: mi.LiteralType, path: Path) -> None:
        if value in t.values and type(value) in {type(v) for v in t.values}:
            return
        allowed = [str(v) for v in t.values]
        hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
        shown = f'"{value}"' if isinstance(value, str) else toml_type_name(value)
        choices = ", ".join(f'"{v}"' for v in allowed)
        self.report(path, f"{shown} is not allowed: expected one of {choices}{hint}")

    def check_union(self, value: object, t: mi.UnionType, path: Path) -> None:
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if value is None and len(members) < len(t.types):
            return
        structs = [m for m in members if isinstance(m, mi.StructType)]
        if structs and all(s.tag_field for s in structs) and isinstance(value, Mapping):
            self.check_tagged(value, structs, path)
            return
        # untagged unions of distinct Python kinds (PortSpec = integer | array | string)
        for member in members:
            if self.kind_matches(value, member):
                self.check(value, member, path)
                return
        if len(members) == 1:
            self.check(value, members[0], path)
        else:
            self.report(path, f"expected {_expected_name(t)}, got {toml_type_name(value)}")

    @staticmethod
    def kind_matches(value: object, t: mi.Type) -> bool:
        if isinstance(t, mi.IntType):
            return isinstance(value, int) and not isinstance(value, bool)
        if isinstance(t, mi.StrType):
            return isinstance(value, str)
        if isinstance(t, mi.BoolType):
            return isinstance(value, bool)
        if isinstance(t, mi.ListType):
            return isinstance(value, list)
        if isinstance(t, mi.DictType | mi.StructType):
            return isinstance(value, Mapping)
        if isinstance(t, mi.LiteralType):
            return any(type(value) is type(v) for v in t.values)
        return False

    def check_tagged(
        self, value: Mapping[str, Any], structs: list[mi.StructType], path: Path
    ) -> None:
        tag_field = structs[0].tag_field
        assert tag_field is not None
        by_tag = {str(s.tag): s for s in structs}
        choices = ", ".join(f'"{tag}"' for tag in by_tag)
        if tag_field not in value:
            self.report((*path, tag_field), f"missing required key `{tag_field}` ({choices})")
            return
        tag = value[tag_field]
        if not isinstance(tag, str):
            self.report((*path, tag_field), f"expected string, got {toml_type_name(tag)}")
            return
        chosen = by_tag.get(tag)
        if chosen is None:
            hint = did_you_mean(tag, list(by_tag))
            self.report(
                (*path, tag_field),
                f'unknown {tag_field} "{tag}": expected one of {choices}{hint}',
            )
            return
        self.check_struct(value, chosen, path, siblings=structs)

    def check_struct(
        self,
        value: Mapping[str, Any],
        t: mi.StructType,
        path: Path,
        siblings: Sequence[mi.StructType] = (),
    ) -> None:
        fields = {f.encode_name: f for f in t.fields}
        for key, item in value.items():
            if key == t.tag_field:
                continue
            field = fields.get(key) if isinstance(key, str) else None
            if field is None:
                self.report((*path, str(key)), self.unknown_key_message(str(key), t, siblings))
            else:
                self.check(item, field.type, (*path, key))
        for f in t.fields:
            if f.required and f.encode_name not in value:
                self.report((*path, f.encode_name), f"missing required key `{f.encode_name}`")

    @staticmethod
    def unknown_key_message(key: str, t: mi.StructType, siblings: Sequence[mi.StructType]) -> str:
        names = [f.encode_name for f in t.fields]
        other = [
            str(s.tag)
            for s in siblings
            if s is not t and any(f.encode_name == key for f in s.fields)
        ]
        if other and t.tag_field:
            where = ", ".join(f'"{tag}"' for tag in other)
            return f'unknown key `{key}` for {t.tag_field} "{t.tag}" (it belongs to {where})'
        return f"unknown key `{key}`{did_you_mean(key, names)}"


__all__ = ["decode_config", "did_you_mean", "toml_type_name"]
