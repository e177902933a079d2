"""An in-memory stand-in for `Nft` that keeps the same contract (tests/shell/test_nft_contract.py).

It checks the script's structure, not nft's full grammar: balanced blocks, known top-level
commands, `add rule` into an existing chain, and rule lines that start with an nft keyword. What
it refuses, it refuses whole, leaving the previous tables untouched, like the kernel.
"""

from __future__ import annotations

import re

from oxwrtd.core.fw_script import REVISION_PREFIX, Ruleset
from oxwrtd.shell.nft import ApplyOutcome, NftApplyError

# first words an nft rule line (or a block's property line) can start with
_WORDS = """ip ip6 inet tcp udp th icmp icmpv6 meta ct iifname oifname iif oif ether vlan arp
    counter accept drop reject log limit jump goto return continue queue masquerade snat dnat
    redirect notrack mark type flags elements timeout policy comment l3proto tproxy fib rt
    sctp dccp udplite ah esp comp numgen jhash symhash socket osf quota synproxy"""
RULE_WORDS = frozenset(_WORDS.split())
_TABLE_RE = re.compile(r"^table (\w+) ([\w-]+) \{(\})?$")
_DELETE_RE = re.compile(r"^delete table (\w+) ([\w-]+)$")
_ADD_RULE_RE = re.compile(r"^add rule (\w+) ([\w-]+) ([\w-]+) (.+)$")
_CHAIN_RE = re.compile(r"^chain ([\w-]+) \{")
_DIGEST_RE = re.compile(rf"^chain {REVISION_PREFIX}([0-9a-f]+) ", re.M)


class FakeNft:
    def __init__(self) -> None:
        self.tables: dict[str, list[str]] = {}  # "inet oxwrt" -> definition lines
        self.writes = 0
        self._after_apply: dict[str, str | None] = {}

    def installed_digest(self, table: str) -> str | None:
        found = _DIGEST_RE.search("\n".join(self.tables.get(table, [])))
        return found.group(1) if found else None

    def observe(self, table: str) -> str | None:
        lines = self.tables.get(table)
        return None if lines is None else "\n".join(lines) + "\n"

    def list_ruleset(self) -> str:
        return "".join(f"table {name} {{\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"
                       for name, lines in sorted(self.tables.items()))  # fmt: skip

    def drifted(self, ruleset: Ruleset) -> bool:
        if ruleset.absent:
            return self.observe(ruleset.table) is not None
        if self.installed_digest(ruleset.table) != ruleset.digest:
            return True
        listing = self.observe(ruleset.table)
        return listing != self._after_apply.setdefault(ruleset.table, listing)

    def apply(self, ruleset: Ruleset, *, force: bool = False) -> ApplyOutcome:
        """Install `ruleset` unless it already is; `force` rewrites it anyway (drift repair)."""
        if not force and ruleset.absent and self.observe(ruleset.table) is None:
            return ApplyOutcome(changed=False, digest=ruleset.digest)
        if not force and self.installed_digest(ruleset.table) == ruleset.digest:
            return ApplyOutcome(changed=False, digest=ruleset.digest)
        staged = {name: list(lines) for name, lines in self.tables.items()}
        lines = ruleset.text.splitlines()
        i = 0
        while i < len(lines):
            i = self._command(staged, lines, i, ruleset)
        self.tables = staged
        self.writes += 1
        self._after_apply.pop(ruleset.table, None)
        return ApplyOutcome(changed=True, digest=ruleset.digest)

    def _command(self, staged: dict[str, list[str]], lines: list[str], i: int, rs: Ruleset) -> int:
        line = lines[i].strip()
        if not line or line.startswith("#"):
            return i + 1
        if m := _TABLE_RE.match(line):
            name = f"{m.group(1)} {m.group(2)}"
            staged.setdefault(name, [])
            if m.group(3):
                return i + 1
            end = self._block_end(lines, i, rs)
            for number, body in enumerate(lines[i + 1 : end], start=i + 2):
                self._check_line(body.strip(), number, rs)
            staged[name] = staged[name] + [b.strip() for b in lines[i + 1 : end]]
            return end + 1
        if m := _DELETE_RE.match(line):
            name = f"{m.group(1)} {m.group(2)}"
            if name not in staged:
                raise _error(
                    rs, i + 1, f"Could not process rule: No such file or directory: {name}"
                )
            del staged[name]
            return i + 1
        if m := _ADD_RULE_RE.match(line):
            name, chain, rule = f"{m.group(1)} {m.group(2)}", m.group(3), m.group(4)
            table = staged.get(name)
            if table is None or not any(
                _CHAIN_RE.match(t) and f"chain {chain} " in t for t in table
            ):
                raise _error(rs, i + 1, "Could not process rule: No such file or directory")
            self._check_line(rule, i + 1, rs)
            staged[name].append(f"{chain}: {rule}")
            return i + 1
        raise _error(rs, i + 1, f"syntax error, unexpected {line.split()[0]}")

    def _block_end(self, lines: list[str], start: int, rs: Ruleset) -> int:
        depth = 0
        for j in range(start, len(lines)):
            depth += lines[j].count("{") - lines[j].count("}")
            if depth == 0:
                return j
        raise _error(rs, start + 1, "syntax error, unexpected end of file")

    def _check_line(self, line: str, number: int, rs: Ruleset) -> None:
        if not line or line in ("}",) or line.startswith(("chain ", "set ", "ct helper ")):
            return
        first = line.split(maxsplit=1)[0]
        if first not in RULE_WORDS:
            raise _error(rs, number, f"syntax error, unexpected {first}")


def _error(rs: Ruleset, line: int, message: str) -> NftApplyError:
    text = rs.text.splitlines()[line - 1].strip()
    return NftApplyError(f"{message} (line {line}: {text})", line=line, origin=rs.origin_of(line))


__all__ = ["FakeNft"]
