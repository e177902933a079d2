"""Store factories: the contract suite runs every test against the LMDB store and its twin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from journal.lmdb import LmdbStore
from journal.memory import MemoryStore
from journal.store import Store

MakeStore = Callable[..., Store]


@pytest.fixture(params=["lmdb", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    opened: list[Store] = []

    def make(capacity: int | None = None) -> Store:
        if request.param == "memory":
            store: Store = MemoryStore(capacity=capacity)
        else:
            kwargs = {"map_size": capacity} if capacity else {}
            store = LmdbStore(tmp_path / f"j{len(opened)}", **kwargs)
        opened.append(store)
        return store

    yield make
    for s in opened:
        s.close()
