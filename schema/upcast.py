"""Upcasters: turn an event payload written in an older version into the current shape.

This is the only place old shapes live. Each entry maps (tag, version) to a function from the
old payload (a plain dict, as decoded from msgpack) to the payload of version + 1; `upcast`
chains them until the current version. Every version listed here keeps its golden bytes in
tests/golden/events/ so the chain is exercised forever.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

# (tag, from_version) -> upcaster to from_version + 1. Empty while every event is at version 1.
UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {}


class UpcastError(ValueError):
    """A payload's version has no path to the current version."""


def upcast(
    tag: str,
    version: int,
    payload: Payload,
    current: int,
    upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS,
) -> Payload:
    """Apply upcasters from `version` up to `current`; the tag field is preserved."""
    if version > current:
        raise UpcastError(f"{tag} version {version} is newer than this software knows ({current})")
    while version < current:
        step = upcasters.get((tag, version))
        if step is None:
            raise UpcastError(f"{tag} version {version}: no upcaster to version {version + 1}")
        payload = step(payload)
        version += 1
    payload["t"] = tag
    return payload


__all__ = ["UPCASTERS", "Payload", "UpcastError", "Upcaster", "upcast"]
