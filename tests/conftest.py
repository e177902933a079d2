"""Shared fixtures. Tier markers (lab, vm) are declared in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COOKBOOK_DIR = REPO / "rootfs-overlay" / "etc" / "oxwrt"


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def cookbook_dir() -> Path:
    return COOKBOOK_DIR
