"""The event codec: one reused msgpack Encoder and one tagged-union Decoder for every event.

An event maps to a record's (tag, version, payload): the journal stores those bytes without
knowing what they mean (STYLE.md item 6). Payloads of an older version go through
`schema/upcast.py` before they are converted to the current Struct.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from schema.events import VERSIONS, Event
from schema.upcast import UPCASTERS, Upcaster, UpcastError, upcast

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(Event)
_RAW: Final = msgspec.msgpack.Decoder(dict[str, Any])


class CodecError(ValueError):
    """Bytes that do not decode to a known event; the message names the tag and cause."""


def encode(event: Event) -> tuple[str, int, bytes]:
    """(tag, version, payload) for a record."""
    tag = event.__struct_config__.tag
    assert isinstance(tag, str)
    return tag, VERSIONS[tag], _ENCODER.encode(event)


def decode(
    tag: str,
    version: int,
    payload: bytes,
    upcasters: Mapping[tuple[str, int], Upcaster] = UPCASTERS,
) -> Event:
    """The current-shape event of a record; older versions are upcast first."""
    current = VERSIONS.get(tag)
    if current is None:
        raise CodecError(f"unknown event tag {tag!r}")
    try:
        if version == current:
            event: Event = _DECODER.decode(payload)
        else:
            raw = upcast(tag, version, _RAW.decode(payload), current, upcasters)
            event = msgspec.convert(raw, Event)
    except UpcastError as exc:  # its message already names the tag and the version
        raise CodecError(str(exc)) from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CodecError(f"{tag} version {version}: {exc}") from exc
    if event.__struct_config__.tag != tag:
        raise CodecError(f"record tagged {tag!r} holds a {event.__struct_config__.tag!r} payload")
    return event


def decoder() -> msgspec.msgpack.Decoder[Event]:
    """The shared decoder, for benches that measure the raw decode floor."""
    return _DECODER


__all__ = ["CodecError", "decode", "decoder", "encode"]
