"""The event codec and schema evolution: golden bytes for every event version, decoded forever.

Run `python tests/journal/test_journal_codec.py --write` only when adding an event type or a new
version: it writes the missing golden files and shape fingerprints and never overwrites one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import msgspec
import pytest
from journal_samples import samples

from schema import events as ev
from schema.codec import CodecError, decode, encode
from schema.events import EVENT_TYPES, TYPES_BY_TAG, VERSIONS, tag_of
from schema.upcast import UpcastError, upcast

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "events"
SHAPES = GOLDEN / "shapes.json"
# Event types added after the shared samples' counts were fixed by other tests get one here.
LATER_SAMPLES: list[ev.Event] = [
    ev.LeaseLost(interface="wan", reason="deconfig"),
    ev.ProbationStarted(revision=7, fallback=6),
    ev.ProbationEnded(revision=7),
    ev.Stopped(reason="reboot"),
    ev.ServiceRemoved(name="dnsmasq"),
]
SAMPLES = {tag_of(type(e)): e for e in [*samples(), *LATER_SAMPLES]}


def shape(cls: type) -> str:
    schema = msgspec.json.schema(cls)
    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.bin"))


def test_there_is_one_sample_per_event_type():
    assert set(SAMPLES) == set(TYPES_BY_TAG)
    assert len(EVENT_TYPES) == len(TYPES_BY_TAG), "two event types share a tag"


@pytest.mark.parametrize("tag", sorted(TYPES_BY_TAG))
def test_current_version_has_golden_bytes_that_encode_and_decode(tag):
    path = GOLDEN / f"{tag}.v{VERSIONS[tag]}.bin"
    assert path.exists(), f"no golden bytes for {tag} v{VERSIONS[tag]}: run this file with --write"
    golden = path.read_bytes()
    assert encode(SAMPLES[tag]) == (tag, VERSIONS[tag], golden)
    assert decode(tag, VERSIONS[tag], golden) == SAMPLES[tag]


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.name)
def test_every_golden_version_still_decodes(path):
    tag, version = path.name.removesuffix(".bin").rsplit(".v", 1)
    event = decode(tag, int(version), path.read_bytes())
    assert isinstance(event, TYPES_BY_TAG[tag])


@pytest.mark.parametrize("tag", sorted(TYPES_BY_TAG))
def test_an_event_cannot_change_shape_without_a_new_version(tag):
    recorded = json.loads(SHAPES.read_text())
    key = f"{tag}@v{VERSIONS[tag]}"
    assert recorded.get(key) == shape(TYPES_BY_TAG[tag]), (
        f"{tag} changed shape but is still version {VERSIONS[tag]}: bump schema.events.VERSIONS, "
        "add an upcaster in schema/upcast.py and write golden bytes for the new version"
    )


def test_unknown_fields_are_skipped_so_older_software_reads_newer_events():
    newer = msgspec.msgpack.encode({"t": "config.applied", "revision": 3, "added_later": [1, 2]})
    assert decode("config.applied", 1, newer) == TYPES_BY_TAG["config.applied"](revision=3)


def test_decode_errors_name_the_tag_and_cause():
    with pytest.raises(CodecError, match="unknown event tag 'nope'"):
        decode("nope", 1, b"")
    with pytest.raises(CodecError, match=r"config\.applied version 1"):
        decode("config.applied", 1, b"\xc1")
    _, _, payload = encode(SAMPLES["config.applied"])
    with pytest.raises(CodecError, match=r"holds a .config\.applied. payload"):
        decode("config.apply_failed", 1, payload)
    with pytest.raises(CodecError, match="newer than this software knows"):
        decode("config.applied", 9, payload)


def test_upcasters_chain_from_old_versions_to_current():
    steps = {
        ("health.probed", 1): lambda p: {
            **{k: v for k, v in p.items() if k != "latency_s"},
            "latency_ms": p["latency_s"] * 1000,
        },
        ("health.probed", 2): lambda p: {**p, "detail": p.get("detail", "") or "ok"},
    }
    out = upcast("health.probed", 1, {"target": "wan", "ok": True, "latency_s": 0.5}, 3, steps)
    assert out == {"t": "health.probed", "target": "wan", "ok": True, "latency_ms": 500.0,
                   "detail": "ok"}  # fmt: skip
    with pytest.raises(UpcastError, match="version 2: no upcaster to version 3"):
        upcast("health.probed", 2, {}, 3, {})


def write_golden() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    shapes = json.loads(SHAPES.read_text()) if SHAPES.exists() else {}
    for tag, event in SAMPLES.items():
        path = GOLDEN / f"{tag}.v{VERSIONS[tag]}.bin"
        if not path.exists():
            path.write_bytes(encode(event)[2])
        shapes.setdefault(f"{tag}@v{VERSIONS[tag]}", shape(TYPES_BY_TAG[tag]))
    SHAPES.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    write_golden()
