"""schema.decode: the msgspec fast path, and the walk that reports every shape error with a path."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pytest

from schema.config import Config, Lan, Wan
from schema.decode import decode_config

BASE: dict[str, Any] = {
    "hostname": "r1",
    "networks": [
        {"name": "wan", "type": "wan", "iface": "eth0", "mode": "dhcp"},
        {"name": "lan", "type": "lan", "bridge": "br-lan", "address": "192.168.1.1", "prefix": 24},
        {"name": "iot", "type": "simple", "iface": "br-iot", "address": "10.2.0.1", "prefix": 24},
    ],
    "firewall": {
        "zones": [{"name": "lan", "networks": ["lan"]}],
        "rules": [{"name": "r", "src": "lan", "action": "accept", "dest_port": [80, 443]}],
    },
    "port_forwards": [
        {"name": "ssh", "proto": "tcp", "external_port": 22, "internal": "192.168.1.2:22"}
    ],
    "ddns": [{"provider": "duckdns", "name": "d", "domain": "x", "token": "t"}],
    "services": [
        {
            "name": "s",
            "rootfs": "/r",
            "entrypoint": ["/s"],
            "net_mode": "host",
            "security": {"caps": ["NET_RAW"]},
            "binds": [{"source": "/a", "target": "/b"}],
        }
    ],
    "control": {"listen": ["[::1]:51820"], "clients": [{"name": "me", "key": "ab" * 32}]},
}


def with_(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    node: Any = raw
    for seg in path[:-1]:
        node = node[seg]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


def test_valid_document_decodes_on_the_fast_path() -> None:
    config, issues = decode_config(BASE)
    assert issues == []
    assert isinstance(config, Config)
    assert isinstance(config.networks[0], Wan)
    assert isinstance(config.networks[1], Lan)
    assert config.firewall.rules[0].dest_port == [80, 443]


CASES: list[tuple[str, tuple[str | int, ...], Any, tuple[str | int, ...], list[str]]] = [
    (
        "unknown-top-key",
        ("hostnme",),
        "x",
        ("hostnme",),
        ["unknown key `hostnme`", "did you mean `hostname`"],
    ),
    (
        "unknown-deep-key",
        ("firewall", "rules", 0, "destport"),
        1,
        ("firewall", "rules", 0, "destport"),
        ["did you mean `dest_port`"],
    ),
    (
        "unknown-key-in-nested-table",
        ("services", 0, "security", "seccom"),
        True,
        ("services", 0, "security", "seccom"),
        ["did you mean `seccomp`"],
    ),
    (
        "unknown-key-in-array-of-tables-of-array",
        ("services", 0, "binds", 0, "read_only"),
        True,
        ("services", 0, "binds", 0, "read_only"),
        ["did you mean `readonly`"],
    ),
    ("unknown-key-no-suggestion", ("control", "zzz"), 1, ("control", "zzz"), ["unknown key `zzz`"]),
    (
        "key-of-another-network-type",
        ("networks", 2, "bridge"),
        "br0",
        ("networks", 2, "bridge"),
        ['for type "simple"', 'belongs to "lan"'],
    ),
    (
        "missing-required-top",
        ("hostname",),
        None,
        ("hostname",),
        ["missing required key `hostname`"],
    ),
    (
        "missing-required-nested",
        ("control", "listen"),
        None,
        ("control", "listen"),
        ["missing required key"],
    ),
    (
        "missing-required-in-variant",
        ("ddns", 0, "token"),
        None,
        ("ddns", 0, "token"),
        ["missing required key `token`"],
    ),
    (
        "wrong-type-string-for-int",
        ("networks", 1, "prefix"),
        "24",
        ("networks", 1, "prefix"),
        ["expected integer, got string"],
    ),
    (
        "wrong-type-bool-for-int",
        ("networks", 1, "prefix"),
        True,
        ("networks", 1, "prefix"),
        ["expected integer, got boolean"],
    ),
    ("wrong-type-int-for-str", ("hostname",), 5, ("hostname",), ["expected string, got integer"]),
    ("wrong-type-date", ("hostname",), datetime.date(2024, 1, 1), ("hostname",), ["got date"]),
    (
        "wrong-type-table-for-array",
        ("networks",),
        {},
        ("networks",),
        ["expected array of tables, got table"],
    ),
    (
        "wrong-type-list-item",
        ("services", 0, "entrypoint"),
        ["/s", 1],
        ("services", 0, "entrypoint", 1),
        ["expected string"],
    ),
    (
        "wrong-type-map-value",
        ("services", 0, "env"),
        {"A": 1},
        ("services", 0, "env", "A"),
        ["expected string, got integer"],
    ),
    (
        "port-70000",
        ("port_forwards", 0, "external_port"),
        70000,
        ("port_forwards", 0, "external_port"),
        ["70000", "out of range", "0..65535"],
    ),
    (
        "negative-u32",
        ("control", "max_connections"),
        -1,
        ("control", "max_connections"),
        ["out of range"],
    ),
    ("prefix-above-u8", ("networks", 1, "prefix"), 300, ("networks", 1, "prefix"), ["0..255"]),
    (
        "port-list-item-range",
        ("firewall", "rules", 0, "dest_port"),
        [80, 65536],
        ("firewall", "rules", 0, "dest_port", 1),
        ["out of range"],
    ),
    (
        "port-spec-kind",
        ("firewall", "rules", 0, "dest_port"),
        False,
        ("firewall", "rules", 0, "dest_port"),
        ["expected integer, array of integers or string, got boolean"],
    ),
    (
        "unknown-network-type",
        ("networks", 1, "type"),
        "bridge",
        ("networks", 1, "type"),
        ['unknown type "bridge"', '"wan", "lan", "simple"'],
    ),
    (
        "missing-network-type",
        ("networks", 1, "type"),
        None,
        ("networks", 1, "type"),
        ["missing required key `type`"],
    ),
    (
        "unknown-ddns-provider",
        ("ddns", 0, "provider"),
        "noip",
        ("ddns", 0, "provider"),
        ['unknown provider "noip"', '"duckdns", "cloudflare", "namecheap", "dynv6", "he"'],
    ),
    (
        "literal-action",
        ("firewall", "rules", 0, "action"),
        "acept",
        ("firewall", "rules", 0, "action"),
        ['"acept" is not allowed', '"accept"', '"dnat"', "did you mean `accept`"],
    ),
    (
        "literal-wan-mode",
        ("networks", 0, "mode"),
        "ppoe",
        ("networks", 0, "mode"),
        ["did you mean `pppoe`"],
    ),
    (
        "literal-wrong-kind",
        ("services", 0, "net_mode"),
        1,
        ("services", 0, "net_mode"),
        ["integer is not allowed"],
    ),
]


@pytest.mark.parametrize(
    ("at", "value", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_shape_error(
    at: tuple[str | int, ...], value: Any, path: tuple[str | int, ...], words: list[str]
) -> None:
    config, issues = decode_config(with_(at, value))
    assert config is None
    assert [i.path for i in issues] == [path], [str(i) for i in issues]
    for word in words:
        assert word in issues[0].message, (word, issues[0].message)


def test_every_shape_error_is_reported_not_just_the_first() -> None:
    raw = copy.deepcopy(BASE)
    raw["hostnme"] = "x"
    raw["networks"][0]["mode"] = "dhpc"
    raw["networks"][1]["prefix"] = "24"
    raw["networks"][2]["type"] = "simpel"
    raw["firewall"]["rules"][0]["dest_port"] = [80, 70000]
    raw["ddns"][0]["tokn"] = "t"
    raw["services"][0]["security"]["cap"] = []
    del raw["control"]["listen"]
    config, issues = decode_config(raw)
    assert config is None
    assert {i.path for i in issues} == {
        ("hostnme",),
        ("networks", 0, "mode"),
        ("networks", 1, "prefix"),
        ("networks", 2, "type"),
        ("firewall", "rules", 0, "dest_port", 1),
        ("ddns", 0, "tokn"),
        ("services", 0, "security", "cap"),
        ("control", "listen"),
    }


def test_top_level_must_be_a_table() -> None:
    config, issues = decode_config([])  # type: ignore[arg-type]
    assert config is None
    assert [(i.path, i.message) for i in issues] == [((), "expected table, got array")]
