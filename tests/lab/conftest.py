"""Lab-tier fixtures: a `lab` Topology of network namespaces (router, wan, lan, guest), torn down
after the test whatever happens. Every test here is marked `lab` (root, real kernel)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxwrtd.lab import Topology

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.lab)


def _lab_possible() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    missing = [tool for tool in ("ip", "dnsmasq", "unshare", "ss") if shutil.which(tool) is None]
    return f"the lab needs {', '.join(missing)}" if missing else None


@pytest.fixture
def lab() -> Iterator[Topology]:
    """A running topology with unique namespace names; router-side ifaces wan0/lan0/guest0."""
    reason = _lab_possible()
    if reason:
        pytest.skip(reason)
    topo = Topology(prefix="oxtest")
    with topo:
        yield topo
