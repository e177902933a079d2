"""One contract for the nftables adapter and its fake: atomic apply, no-op re-apply, failure mapped
to the config path with the previous ruleset kept whole, drift reported.

The kernel variant runs in a network namespace this test creates (never the machine's own)."""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from oxwrtd.core.firewall import FirewallFacts, compile_firewall
from oxwrtd.core.fw_script import Ruleset
from oxwrtd.shell.fake_nft import FakeNft
from oxwrtd.shell.nft import ApplyOutcome, NftApplyError
from schema.config import Config

CLONE_NEWNET = 0x40000000


def config(**firewall: Any) -> Config:
    raw = {
        "hostname": "r",
        "control": {"listen": ["[::1]:51820"]},
        "networks": [
            {"name": "wan", "type": "wan", "iface": "wan0", "mode": "dhcp"},
            {
                "name": "lan",
                "type": "lan",
                "bridge": "br-lan",
                "address": "192.168.1.1",
                "prefix": 24,
            },
        ],
        "firewall": {
            "zones": [
                {"name": "lan", "networks": ["lan"], "default_input": "accept"},
                {"name": "wan", "networks": ["wan"], "masquerade": True},
            ],
            **firewall,
        },
        "ipsets": [{"name": "bad", "family": "ipv4", "entries": ["192.0.2.0/24"]}],
    }
    return msgspec.convert(raw, Config)


def compiled(**firewall: Any) -> Ruleset:
    return compile_firewall(config(**firewall), FirewallFacts())


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


@pytest.fixture
def kernel_nft() -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    from oxwrtd.shell.nft import Nft

    name = f"oxfwc-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    home = f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net"
    saved = os.open(home, os.O_RDONLY)
    try:
        _setns(f"/run/netns/{name}")
        # never touch the machine's own namespace: prove we left it before creating the context
        here = Path("/proc/thread-self/ns/net").stat().st_ino
        assert here == Path(f"/run/netns/{name}").stat().st_ino
        nft = Nft()
        yield nft
        nft.close()
    finally:
        if ctypes.CDLL(None, use_errno=True).setns(saved, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "could not return to the original namespace")
        os.close(saved)
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture(params=["fake", pytest.param("kernel", marks=pytest.mark.lab)])
def nft(request: pytest.FixtureRequest) -> Any:
    if request.param == "fake":
        return FakeNft()
    return request.getfixturevalue("kernel_nft")


def test_apply_installs_and_reads_back(nft: Any) -> None:
    rs = compiled()
    assert nft.installed_digest("inet oxwrt") is None
    assert nft.apply(rs).changed
    assert nft.installed_digest("inet oxwrt") == rs.digest
    assert "zone_lan_input" in nft.observe("inet oxwrt")


def test_the_whole_ruleset_lists_every_table_for_diag(nft: Any) -> None:
    from oxwrtd.core.diag import nft_summary

    rs = compiled()
    nft.apply(rs)
    listing = nft.list_ruleset()
    assert "table inet oxwrt {" in listing and "chain zone_lan_input {" in listing
    ours = nft_summary(listing).split("table ")[1]
    assert ours.startswith("inet oxwrt\n")
    counted = sum(int(line.split(": ")[-1].split()[0]) for line in ours.splitlines()[1:]
                  if line.startswith("  chain "))  # fmt: skip
    assert counted == rs.rules  # what the compiler counted is what the listing holds


def test_same_ruleset_twice_writes_nothing_and_listing_is_identical(nft: Any) -> None:
    rs = compiled()
    nft.apply(rs)
    before = nft.observe("inet oxwrt")
    assert not nft.apply(rs).changed
    assert nft.observe("inet oxwrt") == before
    assert not nft.drifted(rs)


def test_changed_ruleset_replaces_whole_table(nft: Any) -> None:
    nft.apply(
        compiled(
            rules=[
                {"name": "ssh", "src": "wan", "proto": "tcp", "dest_port": 22, "action": "accept"}
            ]
        )
    )
    second = compiled()
    assert nft.apply(second).changed
    listing = nft.observe("inet oxwrt")
    assert "dport 22" not in listing
    assert nft.installed_digest("inet oxwrt") == second.digest


def test_bad_raw_line_fails_with_config_path_and_keeps_previous(nft: Any) -> None:
    good = compiled()
    nft.apply(good)
    before = nft.observe("inet oxwrt")
    bad = compiled(
        raw_nft=[
            {"chain": "input", "rule": "ip saddr @bad drop"},
            {"chain": "input", "rule": "frobnicate the packets"},
        ]
    )
    with pytest.raises(NftApplyError) as err:
        nft.apply(bad)
    assert err.value.origin == "firewall.raw_nft[1]"
    assert "frobnicate" in str(err.value)
    assert nft.observe("inet oxwrt") == before
    assert nft.installed_digest("inet oxwrt") == good.digest


def test_raw_line_into_missing_chain_of_other_table_fails_whole(nft: Any) -> None:
    good = compiled()
    nft.apply(good)
    bad = compiled(raw_nft=[{"table": "inet nosuch", "chain": "input", "rule": "accept"}])
    with pytest.raises(NftApplyError) as err:
        nft.apply(bad)
    assert err.value.origin == "firewall.raw_nft[0]"
    assert nft.installed_digest("inet oxwrt") == good.digest


def test_drift_is_reported_when_the_table_is_replaced_behind_our_back(nft: Any) -> None:
    rs = compiled()
    nft.apply(rs)
    other = compiled(rules=[{"name": "x", "src": "lan", "action": "drop"}])
    nft.apply(other)  # stands for someone else rewriting the table
    assert nft.drifted(rs)
    assert not nft.drifted(other)


def _add_rule_behind_our_back(nft: Any) -> None:
    if isinstance(nft, FakeNft):
        nft.tables["inet oxwrt"].append("input: tcp dport 9 accept")
    else:  # a child forked from this thread runs in the test's namespace
        subprocess.run(["nft", "add rule inet oxwrt input tcp dport 9 accept"], check=True)


def test_drift_is_reported_when_a_rule_is_added_inside_the_table(nft: Any) -> None:
    rs = compiled()
    nft.apply(rs)
    assert not nft.drifted(rs)
    _add_rule_behind_our_back(nft)
    assert nft.drifted(rs)
    assert nft.apply(rs) == ApplyOutcome(changed=False, digest=rs.digest)  # digest still matches
    assert nft.apply(rs, force=True).changed  # the repair
    assert not nft.drifted(rs)
    assert "dport 9 " not in nft.observe("inet oxwrt")


def test_absent_ruleset_deletes_the_table_and_then_is_a_noop(nft: Any) -> None:
    from oxwrtd.core.fw_script import absent

    nft.apply(compiled())
    gone = absent("inet oxwrt")
    assert nft.apply(gone).changed
    assert nft.observe("inet oxwrt") is None
    assert not nft.apply(gone).changed
    assert not nft.drifted(gone)


def test_utc_offset_of_the_configured_timezone_follows_dst() -> None:
    from oxwrtd.shell.nft import utc_offset_minutes

    winter = dt.datetime(2026, 1, 15, 12, tzinfo=dt.UTC)
    summer = dt.datetime(2026, 7, 15, 12, tzinfo=dt.UTC)
    assert utc_offset_minutes("Europe/Berlin", winter) == 60
    assert utc_offset_minutes("Europe/Berlin", summer) == 120
    assert utc_offset_minutes("America/St_Johns", winter) == -210
    assert utc_offset_minutes(None, winter) == 0
    with pytest.raises(ValueError, match="'Mars/Olympus' is not a known IANA time zone"):
        utc_offset_minutes("Mars/Olympus", winter)
