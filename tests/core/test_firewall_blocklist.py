"""Blocklist sets: their own table, merged prefixes, both families, zones honoured, never stale."""

from __future__ import annotations

from typing import Any

import msgspec

from oxwrtd.core.fw_blocklist import TABLE, compile_blocklists, set_name
from schema.config import Config


def make(blocklists: list[dict[str, Any]]) -> Config:
    return msgspec.convert(
        {
            "hostname": "r",
            "control": {"listen": ["[::1]:51820"]},
            "networks": [{"name": "wan", "type": "wan", "iface": "wan0", "mode": "dhcp"}],
            "blocklists": blocklists,
        },
        Config,
    )


def test_lists_become_interval_sets_dropped_at_prerouting() -> None:
    config = make([{"name": "spam-haus", "url": "http://x"}])
    rs = compile_blocklists(
        config, {"spam-haus": ["192.0.2.0/24", "192.0.2.7", "198.51.100.9", "2001:db8::/32"]}, {}
    )
    assert rs.table == TABLE
    assert (
        "elements = { 192.0.2.0/24, 198.51.100.9/32 }" in rs.text
    )  # the /32 inside the /24 merged
    assert "elements = { 2001:db8::/32 }" in rs.text
    assert "    ip saddr @spam_haus_v4 drop" in rs.text
    assert "    ip6 saddr @spam_haus_v6 drop" in rs.text
    assert "type filter hook prerouting priority raw; policy accept;" in rs.text


def test_zones_limit_the_lists_to_their_interfaces() -> None:
    rs = compile_blocklists(
        make([{"name": "b", "url": "http://x", "zones": ["wan"]}]),
        {"b": ["192.0.2.1"]},
        {"wan": ["wan0"]},
    )
    assert 'iifname "wan0" ip saddr @b_v4 drop' in rs.text


def test_a_list_not_fetched_yet_is_an_empty_set() -> None:
    rs = compile_blocklists(make([{"name": "b", "url": "http://x"}]), {}, {})
    assert "elements" not in rs.text
    assert "set b_v4 {" in rs.text


def test_no_blocklists_deletes_the_table() -> None:
    rs = compile_blocklists(make([]), {}, {})
    assert rs.absent
    assert rs.text == f"table {TABLE} {{}}\ndelete table {TABLE}\n"


def test_set_names_are_identifiers() -> None:
    assert set_name("1st list", 4) == "_1st_list_v4"
