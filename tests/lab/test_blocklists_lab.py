"""Blocklists with real packets: the refresher, running in the router namespace with the real nft
adapter and a file:// list, makes a listed source's packets dropped (to the router and forwarded,
v4 and v6); a refresh that removes the address lets it through; a failed refresh keeps the
last good list; removing the lists removes the table."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fw_fixtures import Lab, sh

DRIVER = """
import asyncio, json, sys, msgspec
from oxwrtd.shell.blocklists import BlocklistRefresher
from oxwrtd.shell.nft import Nft
from schema.config import Config
nft = Nft()
now = [0.0]
refresher = BlocklistRefresher(nft.apply, clock=lambda: now[0])
async def main():
    for line in sys.stdin:
        command = json.loads(line)
        now[0] = command["now"]
        deadline = await refresher.step(msgspec.convert(command["config"], Config))
        print(json.dumps({
            "deadline": deadline,
            "apply_error": refresher.apply_error,
            "lists": [msgspec.to_builtins(s) for s in refresher.status()],
        }), flush=True)
asyncio.run(main())
nft.close()
"""


def config(blocklists: list[dict[str, Any]]) -> dict[str, Any]:
    return {
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
        "firewall": {"zones": [{"name": "wan", "networks": ["wan"]}]},
        "blocklists": blocklists,
    }


class Refresher:
    """The driver process inside the router namespace; `step` runs one pass at time `now`."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def step(self, now: float, cfg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"now": now, "config": cfg}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the refresher process died"
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def fwlab() -> Iterator[Lab]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the lab needs root and iproute2")
    lab = Lab()
    try:
        # the ISP side routes the LAN back through the router (no masquerade in this lab)
        sh("ip", "route", "add", "192.168.1.0/24", "via", "203.0.113.2", ns=lab.ns["wan"])
        lab.serve("router", "192.168.1.1", 8080)
        lab.serve("router", "fd00:1::1", 8082)
        lab.serve("wan", "203.0.113.1", 8081)
        yield lab
    finally:
        lab.close()


@pytest.fixture
def refresher(fwlab: Lab) -> Iterator[Refresher]:
    r = Refresher(fwlab.ns["router"])
    try:
        yield r
    finally:
        r.close()


def test_a_listed_source_is_dropped_until_a_refresh_removes_it(
    fwlab: Lab, refresher: Refresher, tmp_path: Path
) -> None:
    listed = tmp_path / "list.txt"
    listed.write_text("# bad hosts\n192.168.1.10\nfd00:1::10\n")
    cfg = config([{"name": "bad", "url": listed.as_uri(), "refresh_seconds": 3600}])
    assert fwlab.connect("lan", "192.168.1.1", 8080) == "ok 192.168.1.10"  # before: open
    assert fwlab.connect("lan", "203.0.113.1", 8081) == "ok 192.168.1.10"

    out = refresher.step(1000.0, cfg)
    assert out["apply_error"] is None
    assert out["lists"][0]["entries"] == 2
    assert out["deadline"] == 4600.0
    assert fwlab.connect("lan", "192.168.1.1", 8080) == "timeout"  # to the router
    assert fwlab.connect("lan", "fd00:1::1", 8082) == "timeout"  # v6 too
    assert fwlab.connect("lan", "203.0.113.1", 8081) == "timeout"  # forwarded
    assert fwlab.connect("server", "192.168.1.1", 8080) == "ok 192.168.1.20"  # not listed

    listed.write_text("192.168.1.20\n")
    assert refresher.step(2000.0, cfg)["lists"][0]["fetches"] == 1  # not due yet: unchanged
    assert fwlab.connect("lan", "192.168.1.1", 8080) == "timeout"
    out = refresher.step(4600.0, cfg)
    assert out["lists"][0]["entries"] == 1
    assert fwlab.connect("lan", "192.168.1.1", 8080) == "ok 192.168.1.10"
    assert fwlab.connect("lan", "fd00:1::1", 8082) == "ok fd00:1::10"
    assert fwlab.connect("lan", "203.0.113.1", 8081) == "ok 192.168.1.10"
    assert fwlab.connect("server", "192.168.1.1", 8080) == "timeout"

    listed.unlink()  # the source goes away: the last good list stays in force
    out = refresher.step(8200.0, cfg)
    assert "No such file" in out["lists"][0]["last_error"]
    assert out["lists"][0]["entries"] == 1
    assert out["deadline"] == 8230.0
    assert fwlab.connect("server", "192.168.1.1", 8080) == "timeout"

    out = refresher.step(8300.0, config([]))
    assert out["lists"] == []
    tables = sh("nft", "list", "tables", ns=fwlab.ns["router"])
    assert "oxwrt-blocklist" not in tables
    assert fwlab.connect("server", "192.168.1.1", 8080) == "ok 192.168.1.20"


def test_zones_limit_a_list_to_their_interfaces(
    fwlab: Lab, refresher: Refresher, tmp_path: Path
) -> None:
    listed = tmp_path / "list.txt"
    listed.write_text("192.168.1.10\n203.0.113.1\n")
    out = refresher.step(0.0, config([{"name": "w", "url": listed.as_uri(), "zones": ["wan"]}]))
    assert out["apply_error"] is None
    assert fwlab.connect("lan", "192.168.1.1", 8080) == "ok 192.168.1.10"  # arrives on br-lan
    wan_client = fwlab.connect("wan", "203.0.113.2", 9)  # arrives on wan0: dropped, not refused
    assert wan_client == "timeout"
