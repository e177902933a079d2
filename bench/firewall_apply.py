"""What installing the firewall costs, against raw `nft -f` of the same ruleset text.

In a network namespace the script creates (and deletes), for two configs:
  cookbook   the cookbook zones, forwardings, a port forward and a dozen rules;
  large      10,000 rules, plus a 100,000-prefix blocklist in its own table;
it times, median of --runs:
  floor      `nft -f FILE` of the compiled text (the CLI, one process per apply);
  apply      compile_firewall + Nft.apply (libnftables in-process, one long-lived context),
             alternating two configs so every apply compiles and really replaces the table;
  no-op      the same call with unchanged inputs: LastCompile returns the previous Ruleset and
             Nft.apply finds its digest installed, so nothing is compiled or written;
  compile    compile_firewall alone (cold), for reference;
the blocklist row is a refresh: compile_blocklists of the fetched list + its own transaction.
and prints apply/floor (target <= 1.5x) and no-op/apply (target <= 0.1x). Figures only.

    .venv/bin/python bench/firewall_apply.py [--runs N]      (needs root: it creates a netns)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import msgspec

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from oxwrtd.core.firewall import (  # noqa: E402
    FirewallFacts,
    compile_firewall,
    zone_interfaces,
)
from oxwrtd.core.fw_blocklist import compile_blocklists  # noqa: E402
from oxwrtd.core.fw_script import LastCompile  # noqa: E402
from schema.config import Config  # noqa: E402

FACTS = FirewallFacts(wan_addresses=("203.0.113.2",))


def config(rules: list[dict[str, Any]], *, marker: int, blocklist: bool = False) -> Config:
    raw: dict[str, Any] = {
        "hostname": "bench",
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
            {
                "name": "guest",
                "type": "simple",
                "iface": "guest0",
                "address": "192.168.2.1",
                "prefix": 24,
            },
        ],
        "firewall": {
            "zones": [
                {"name": "lan", "networks": ["lan"], "default_input": "accept"},
                {"name": "guest", "networks": ["guest"]},
                {"name": "wan", "networks": ["wan"], "masquerade": True, "mtu_fix": True},
            ],
            "forwardings": [{"src": "lan", "dest": "wan"}, {"src": "guest", "dest": "wan"}],
            # `marker` makes two otherwise equal configs differ, so each apply is a real replace
            "rules": [
                *rules,
                {
                    "name": "marker",
                    "src": "wan",
                    "proto": "tcp",
                    "dest_port": marker,
                    "action": "drop",
                },
            ],
        },
        "port_forwards": [
            {"name": "web", "proto": "tcp", "external_port": 8080, "internal": "192.168.1.20:80"}
        ],
        "ipsets": [{"name": "admins", "family": "ipv4", "entries": ["192.168.1.0/28"]}],
    }
    if blocklist:
        raw["blocklists"] = [{"name": "drop", "url": "http://unused.invalid/list"}]
    return msgspec.convert(raw, Config)


COOKBOOK_RULES: list[dict[str, Any]] = [
    {"name": "guest-dns", "src": "guest", "proto": "both", "dest_port": 53, "action": "accept"},
    {"name": "guest-dhcp", "src": "guest", "proto": "udp", "dest_port": 67, "action": "accept"},
    {
        "name": "guest-ping",
        "src": "guest",
        "proto": "icmp",
        "icmp_type": "echo-request",
        "action": "accept",
    },
    {
        "name": "ssh",
        "src": "wan",
        "proto": "tcp",
        "dest_port": 22,
        "src_ip": ["198.51.100.0/24"],
        "limit": "5/minute",
        "action": "accept",
    },
    {"name": "admins", "src": "wan", "match_set": {"name": "admins"}, "action": "accept"},
    {
        "name": "kids",
        "src": "lan",
        "dest": "wan",
        "src_mac": ["aa:bb:cc:dd:ee:ff"],
        "schedule": "weekdays 22:00-06:00",
        "action": "reject",
    },
    {
        "name": "smtp",
        "src": "lan",
        "dest": "wan",
        "proto": "tcp",
        "dest_port": 25,
        "action": "drop",
    },
    {
        "name": "voip",
        "src": "lan",
        "dest": "wan",
        "proto": "udp",
        "dest_port": "10000-20000",
        "set_dscp": "ef",
        "action": "accept",
    },
    {
        "name": "ftp",
        "src": "lan",
        "dest": "wan",
        "proto": "tcp",
        "dest_port": 21,
        "helper": "ftp",
        "action": "accept",
    },
    {
        "name": "ntp",
        "src": "lan",
        "proto": "udp",
        "dest_port": 123,
        "notrack": True,
        "action": "accept",
    },
    {
        "name": "log-telnet",
        "src": "wan",
        "proto": "tcp",
        "dest_port": 23,
        "log": "telnet: ",
        "counter": True,
        "action": "drop",
    },
    {
        "name": "v6-only",
        "src": "wan",
        "family": "ipv6",
        "proto": "udp",
        "dest_port": 546,
        "action": "accept",
    },
]


def large_rules(n: int) -> list[dict[str, Any]]:
    """n distinct single-port rules spread over the zones (no per-rule anonymous sets)."""
    pairs = [("wan", None), ("guest", None), ("lan", "wan"), ("guest", "wan")]
    out = []
    for i in range(n):
        src, dest = pairs[i % len(pairs)]
        rule: dict[str, Any] = {
            "name": f"r{i}",
            "src": src,
            "proto": "tcp",
            "dest_port": 1024 + i,
            "action": "accept",
        }
        if dest:
            rule["dest"] = dest
        out.append(rule)
    return out


def blocklist_entries(n: int) -> list[str]:
    base = int(IPv4Address("10.0.0.0"))
    return [str(IPv4Address(base + 3 * i)) for i in range(n)]  # stride 3: nothing merges


def median_ms(work: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        work()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def nft_cli(text: str, path: Path) -> Callable[[], None]:
    path.write_text(text)

    def run() -> None:
        subprocess.run(["nft", "-f", str(path)], check=True)

    return run


def measure(nft: Any, tmp: Path, runs: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for name, rules, n_runs in (
        ("cookbook", COOKBOOK_RULES, runs),
        ("10k rules", large_rules(10_000), max(5, runs // 4)),
    ):
        configs = [config(rules, marker=m, blocklist=True) for m in (1, 2)]
        texts = [compile_firewall(c, FACTS).text for c in configs]
        cli = [nft_cli(t, tmp / f"{name[:2]}{i}.nft") for i, t in enumerate(texts)]
        floor = median_ms(_alternate(cli), n_runs)
        cache = LastCompile()  # the daemon's path: compile (unless unchanged), then apply
        applies = [_compile_apply(nft, cache, c) for c in configs]
        apply = median_ms(_alternate(applies), n_runs)
        applies[0]()  # installed now: the next calls are no-op reloads
        noop = median_ms(applies[0], n_runs)
        compile_ms = median_ms(partial(compile_firewall, configs[0], FACTS), n_runs)
        rows.append((name, floor, apply, noop, compile_ms))
    zones = zone_interfaces(configs[0])
    entries = [blocklist_entries(100_000 + m) for m in (0, 1)]
    lists = [compile_blocklists(configs[0], {"drop": e}, zones) for e in entries]
    cli = [nft_cli(r.text, tmp / f"bl{i}.nft") for i, r in enumerate(lists)]
    b_floor = median_ms(_alternate(cli), 3)
    last = LastCompile()
    refreshes = [_refresh(nft, last, configs[0], e, zones) for e in entries]
    b_apply = median_ms(_alternate(refreshes), 3)
    refreshes[0]()
    b_noop = median_ms(refreshes[0], 3)
    b_compile = median_ms(lambda: compile_blocklists(configs[0], {"drop": entries[0]}, zones), 3)
    rows.append(("100k blocklist", b_floor, b_apply, b_noop, b_compile))
    return rows


def inside(runs: int) -> None:
    from oxwrtd.shell.nft import Nft

    nft = Nft()
    tmp = Path(tempfile.mkdtemp(prefix="oxfw-bench-"))
    try:
        rows = measure(nft, tmp, runs)
    finally:
        nft.close()
        shutil.rmtree(tmp)
    head = (
        "ruleset",
        "nft -f ms",
        "apply ms",
        "no-op ms",
        "compile ms",
        "apply/floor",
        "no-op/apply",
    )
    print(f"{head[0]:<16}" + "".join(f"{h:>13}" for h in head[1:]))
    for name, floor, apply, noop, compile_ms in rows:
        ratios = f"{apply / floor:>12.2f}x{noop / apply:>12.3f}x"
        print(f"{name:<16}{floor:>13.1f}{apply:>13.1f}{noop:>13.2f}{compile_ms:>13.1f}{ratios}")
    print("targets: apply/floor <= 1.5x, no-op/apply <= 0.1x")
    print(
        "apply = compile + libnftables transaction + digest read-back; no-op = same inputs again;"
    )
    print("compile = the pure compiler alone (included in apply)")
    print("100k blocklist: a refresh (compile the fetched list + its own transaction)")


def _compile_apply(nft: Any, cache: LastCompile, cfg: Config) -> Callable[[], object]:
    return lambda: nft.apply(cache(compile_firewall, cfg, FACTS))


def _refresh(
    nft: Any, last: LastCompile, cfg: Config, entries: list[str], zones: Any
) -> Callable[[], object]:
    return lambda: nft.apply(last(compile_blocklists, cfg, {"drop": entries}, zones))


def _alternate(works: Sequence[Callable[[], object]]) -> Callable[[], object]:
    state = {"i": 0}

    def run() -> object:
        state["i"] += 1
        return works[state["i"] % len(works)]()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        inside(args.runs)
        return
    if os.geteuid() != 0:
        sys.exit("firewall_apply needs root: it measures inside a network namespace it creates")
    ns = f"oxfw-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                __file__,
                "--inside",
                "--runs",
                str(args.runs),
            ],
            check=True,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


if __name__ == "__main__":
    main()
