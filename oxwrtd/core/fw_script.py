"""The compiled firewall as one nft script: tables of chains, rendered deterministically.

Owns the script's shape and its identity. Invariants:
- a table is always written as `table X {}` + `delete table X` + its full definition, so one
  transaction replaces it whole (stale sets, chains and rules cannot survive);
- the digest covers every byte of the script except the line carrying it, and is stored in the
  kernel as the name of an empty chain, `revision_<digest>`: listing chain names is cheap even
  when the table holds 100,000 set elements, so "already installed" is one cheap read;
- every rendered line can carry the config path it came from, for error messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

REVISION_PREFIX = "revision_"  # an empty chain named revision_<digest>


@dataclass
class Chain:
    name: str
    hook: str | None = None  # e.g. "type filter hook input priority filter; policy drop;"
    rules: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, line: str, origin: str | None = None) -> None:
        self.rules.append((line, origin))

    def extend(self, lines: list[str], origin: str | None = None) -> None:
        for line in lines:
            self.add(line, origin)


@dataclass
class Table:
    family: str  # "inet"
    name: str
    sets: list[tuple[str, list[str], str | None]] = field(default_factory=list)
    objects: list[tuple[str, list[str]]] = field(default_factory=list)  # e.g. ("ct helper x", body)
    chains: dict[str, Chain] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"{self.family} {self.name}"

    def chain(self, name: str, hook: str | None = None) -> Chain:
        if name not in self.chains:
            self.chains[name] = Chain(name, hook)
        return self.chains[name]


class Ruleset(msgspec.Struct, frozen=True, kw_only=True):
    """A whole nft transaction. `table` is the table whose revision chain carries `digest`."""

    table: str
    text: str
    digest: str
    origins: dict[int, str] = {}  # 1-based line of `text` -> config path
    absent: bool = False  # this ruleset removes `table`; installed when the table does not exist
    rules: int = 0  # rules in its chains, and `add rule` lines for other tables (status)

    def origin_of(self, line: int) -> str | None:
        return self.origins.get(line)


class LastCompile:
    """Remembers the last compile: called again with inputs that encode to the same bytes, it
    returns the same Ruleset without compiling (a no-op reload of 10,000 rules, or a blocklist
    refresh that fetched the same list, then costs one msgspec encode)."""

    def __init__(self) -> None:
        self._key: bytes | None = None
        self._ruleset: Ruleset | None = None

    def __call__(self, compile_fn: Callable[..., Ruleset], *inputs: object) -> Ruleset:
        key = _ENCODER.encode((compile_fn.__qualname__, inputs))
        if key != self._key or self._ruleset is None:
            self._ruleset = compile_fn(*inputs)
            self._key = key
        return self._ruleset


_ENCODER = msgspec.msgpack.Encoder()


def absent(spec: str) -> Ruleset:
    """A ruleset that removes table `spec` (tolerating its absence) and owns nothing."""
    text = f"table {spec} {{}}\ndelete table {spec}\n"
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return Ruleset(table=spec, text=text, digest=digest, absent=True)


def render(
    table: Table,
    *,
    deletes: Sequence[str] = (),
    extra: Sequence[tuple[str, str | None]] = (),
) -> Ruleset:
    """Render `table` (replacing any previous one), delete `deletes`, then append `extra` lines."""
    lines: list[tuple[str, str | None]] = []
    for spec in deletes:
        lines += [(f"table {spec} {{}}", None), (f"delete table {spec}", None)]
    lines += [(f"table {table.spec} {{}}", None), (f"delete table {table.spec}", None)]
    lines.append((f"table {table.spec} {{", None))
    for name, body, origin in table.sets:
        lines.append((f"  set {name} {{", origin))
        lines += [(f"    {b}", origin) for b in body]
        lines.append(("  }", origin))
    for head, body in table.objects:
        lines.append((f"  {head} {{", None))
        lines += [(f"    {b}", None) for b in body]
        lines.append(("  }", None))
    for chain in table.chains.values():
        lines.append((f"  chain {chain.name} {{", None))
        if chain.hook:
            lines.append((f"    {chain.hook}", None))
        lines += [(f"    {rule}", origin) for rule, origin in chain.rules]
        lines.append(("  }", None))
    revision_at = len(lines)
    lines.append(("}", None))  # closes the table; the revision chain goes in front of it
    lines += [(line, origin) for line, origin in extra]
    digest = hashlib.sha256("\n".join(line for line, _ in lines).encode()).hexdigest()[:32]
    revision = f"  chain {REVISION_PREFIX}{digest} {{}}"
    lines.insert(revision_at, (revision, None))
    origins = {i + 1: origin for i, (_, origin) in enumerate(lines) if origin is not None}
    text = "\n".join(line for line, _ in lines) + "\n"
    rules = sum(len(c.rules) for c in table.chains.values())
    rules += sum(1 for line, _ in extra if line.startswith("add rule "))
    return Ruleset(table=table.spec, text=text, digest=digest, origins=origins, rules=rules)


__all__ = ["REVISION_PREFIX", "Chain", "LastCompile", "Ruleset", "Table", "absent", "render"]
