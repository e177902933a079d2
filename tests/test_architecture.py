"""The import rules of ARCHITECTURE.md, enforced by walking every module's imports.

- the functional core (`oxwrtd/core`) performs no I/O and reads no clock;
- each external library is imported by exactly one adapter module;
- `clients/` never imports the daemon; the contract packages never import what builds on them.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("schema", "journal", "oxwrtd", "clients")
STDLIB = set(sys.stdlib_module_names)

# library -> the only module allowed to import it
ONE_ADAPTER = {
    "lmdb": "journal/lmdb.py",
    "pyroute2": "oxwrtd/shell/netlink.py",
    "nftables": "oxwrtd/shell/nft.py",
}
# what each package may import besides the stdlib and itself
ALLOWED = {
    "schema": {"msgspec", "tomlkit", "nacl"},  # nacl: sealing secret leaves with the device key
    "journal": {"msgspec", "lmdb", "schema"},
    "oxwrtd/core": {"schema", "msgspec"},
    "clients": {"schema", "msgspec", "aioquic", "nacl", "cryptography", "tomlkit"},
}
# modules the core must never touch: I/O, processes, clocks, concurrency
CORE_FORBIDDEN = {
    "os",
    "io",
    "socket",
    "select",
    "selectors",
    "asyncio",
    "subprocess",
    "signal",
    "time",
    "threading",
    "multiprocessing",
    "shutil",
    "ctypes",
    "pathlib",
    "tempfile",
    "fcntl",
    "mmap",
}
CLOCK_READS = ("datetime.now(", "datetime.utcnow(", "date.today(", "time.time(", "monotonic(")


def modules() -> Iterator[Path]:
    for pkg in PACKAGES:
        yield from sorted((REPO / pkg).rglob("*.py"))


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def package_rule(path: Path) -> str | None:
    r = rel(path)
    if r.startswith("oxwrtd/core/"):
        return "oxwrtd/core"
    return next((p for p in ("schema", "journal", "clients") if r.startswith(p + "/")), None)


@pytest.mark.parametrize("path", list(modules()), ids=rel)
def test_imports_follow_the_layering(path: Path) -> None:
    r = rel(path)
    own = r.split("/")[0]
    for name in imports_of(path):
        lib = top(name)
        if lib in ONE_ADAPTER:
            assert r == ONE_ADAPTER[lib], f"{r} imports {lib}; only {ONE_ADAPTER[lib]} may"
        if own == "clients":
            assert lib != "oxwrtd", f"{r}: clients must never import the daemon"
        rule = package_rule(path)
        if rule is None or (lib in STDLIB and rule != "oxwrtd/core"):
            continue
        if rule == "oxwrtd/core":
            if name.startswith("oxwrtd.core") or lib in ALLOWED[rule] or lib == "__future__":
                continue
            assert lib in STDLIB and lib not in CORE_FORBIDDEN, f"{r}: the core imports {name}"
            continue
        assert lib == own or lib in ALLOWED[rule], f"{r} imports {name}, outside {rule}'s rules"


@pytest.mark.parametrize(
    "path", [p for p in modules() if rel(p).startswith("oxwrtd/core/")], ids=rel
)
def test_core_reads_no_clock(path: Path) -> None:
    text = path.read_text()
    for call in CLOCK_READS:
        assert call not in text, f"{rel(path)} reads the clock ({call}); take `now` as an argument"


def test_the_rules_see_every_package() -> None:
    assert len(list(modules())) >= len(PACKAGES)
