"""What a reload of the cookbook costs, push to applied, against the raw kernel work it does.

In a network namespace (and UTS namespace) the script creates and deletes, with veth links
wan0/lan0/guest0, through the Runtime with the REAL Netlink and Nft adapters and an LMDB
journal, medians of --runs:
  cold   the kernel is reset before each run (no br-lan, no addresses, sysctls and hostname back
         to their start values, no ruleset): `push` + `reload` of the cookbook = validate, seal,
         journal (fsync), compile, observe + diff + netlink apply, nft transaction, files
         rewritten, outcome journaled;
  floor  the same reset, then the same kernel work raw: `ip -batch` of the same netlink ops,
         the same sysctl/hostname writes, `nft -f` of the same compiled ruleset text;
  warm   the state in place, alternating two revisions that differ in the hostname and one
         rule: push + reload vs its floor (`nft -f` of the new ruleset + the hostname write).
Two configs alternate in every row so each reload is a new revision and a real ruleset replace.
Prints push->applied / floor. Figures only, no assertions.

    .venv/bin/python bench/reload.py [--runs N]      (needs root: it creates a netns)
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

COOKBOOK = REPO / "rootfs-overlay" / "etc" / "oxwrt"
LINKS = ("wan0", "lan0", "guest0")
AUTHOR_NAME = "bench"


def texts() -> tuple[list[str], str]:
    """Two cookbook revisions (hostname and one rule differ) and the secrets text."""
    public = (COOKBOOK / "oxwrt.toml").read_text()
    b = public.replace('hostname = "homelab-gw"', 'hostname = "homelab-gw-b"', 1)
    b = b.replace('dest_port = "10000-20000"', 'dest_port = "10000-20001"', 1)
    assert b.count("homelab-gw-b") == 1 and "10000-20001" in b
    return [public, b], (COOKBOOK / "oxwrt.secrets.toml.example").read_text()


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def ip_batch_lines(ops: Sequence[Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """The `ip -batch` lines and the /proc/sys writes that do what `ops` do."""
    from oxwrtd.core import net_ops as o
    from oxwrtd.core.net import HOSTNAME_SYSCTL, OXWRT_ALIAS, ROUTE_PROTO_OXWRT

    lines: list[str] = []
    writes: list[tuple[str, str]] = []
    for op in ops:
        match op:
            case o.AddLink(kind="bridge"):
                lines.append(f"link add {op.name} type bridge")
                lines.append(f"link set {op.name} alias {OXWRT_ALIAS}")
            case o.AddLink(kind="vlan"):
                lines.append(
                    f"link add link {op.vlan_parent} name {op.name} type vlan id {op.vlan_id}"
                )
                lines.append(f"link set {op.name} alias {OXWRT_ALIAS}")
            case o.SetLinkUp():
                lines.append(f"link set {op.name} {'up' if op.up else 'down'}")
            case o.SetMac():
                lines.append(f"link set {op.name} address {op.mac}")
            case o.SetMaster():
                master = f"master {op.master}" if op.master else "nomaster"
                lines.append(f"link set {op.name} {master}")
            case o.AddAddr():
                lines.append(f"addr add {op.addr.cidr} dev {op.addr.link}")
            case o.AddRoute():
                r = op.route
                via = f" via {r.gateway}" if r.gateway else ""
                verb = "replace" if op.replace else "add"
                lines.append(
                    f"route {verb} {r.dest}{via} dev {r.link} "
                    f"metric {r.metric} table {r.table} proto {ROUTE_PROTO_OXWRT}"
                )
            case o.SetSysctl():
                writes.append((op.name, op.value))
            case o.SetHostname():
                writes.append((HOSTNAME_SYSCTL, op.name))
            case _:
                raise SystemExit(f"reload bench: no raw equivalent for {op.describe()}")
    return lines, writes


class Kernel:
    """The namespace's kernel state: reset it to the start, and run the raw floor."""

    def __init__(self, tmp: Path, sysctl_names: Sequence[str]) -> None:
        from oxwrtd.shell.sysctl import Sysctl

        self.tmp = tmp
        self.sysctl = Sysctl()
        self.start_values = self.sysctl.read(sysctl_names)

    def reset(self) -> None:
        subprocess.run(["ip", "link", "del", "br-lan"], check=False, stderr=subprocess.DEVNULL)
        for dev in LINKS:
            sh("ip", "addr", "flush", "dev", dev)
        sh("nft", "flush", "ruleset")
        for name, value in self.start_values.items():
            self.sysctl.write(name, value)

    def floor(
        self, batch: list[str], writes: list[tuple[str, str]], ruleset: str, *, tag: str
    ) -> Callable[[], None]:
        batch_file, nft_file = self.tmp / f"{tag}.ip", self.tmp / f"{tag}.nft"
        batch_file.write_text("".join(f"{line}\n" for line in batch))
        nft_file.write_text(ruleset)

        def run() -> None:
            if batch:
                sh("ip", "-batch", str(batch_file))
            for name, value in writes:
                self.sysctl.write(name, value)
            sh("nft", "-f", str(nft_file))

        return run


async def inside(runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="oxreload-bench-"))
    try:
        await measure(tmp, runs)
    finally:
        shutil.rmtree(tmp)


async def measure(tmp: Path, runs: int) -> None:
    from journal.lmdb import LmdbStore
    from oxwrtd.control.api import Author
    from oxwrtd.core import net
    from oxwrtd.core.firewall import compile_firewall
    from oxwrtd.core.net_diff import diff, scope
    from oxwrtd.eventlog import EventLog
    from oxwrtd.runtime import Runtime
    from oxwrtd.shell.dataplane import Dataplane
    from oxwrtd.shell.netlink import Netlink
    from oxwrtd.shell.nft import Nft
    from schema.load import load_text

    sh("ip", "link", "set", "lo", "up")
    for dev in LINKS:
        # veth pairs (the dummy module may be absent), peers up so the links have carrier
        sh("ip", "link", "add", dev, "type", "veth", "peer", "name", f"{dev}-peer")
        sh("ip", "link", "set", f"{dev}-peer", "up")
        sh("ip", "link", "set", dev, "up")
    publics, secrets = texts()
    configs = [load_text(p, secrets).raise_for_issues() for p in publics]
    kernel_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bench-kernel")
    netlink, nft = kernel_thread.submit(lambda: (Netlink(), Nft())).result()
    (tmp / "etc").mkdir()
    rt = Runtime(
        events=EventLog(LmdbStore(tmp / "journal")),
        dataplane=Dataplane(netlink, nft),
        config_dir=tmp / "etc",
        device_key=os.urandom(32),
        software="bench",
    )
    rt.kernel = kernel_thread
    author = Author(name=AUTHOR_NAME, public_key=b"")
    dp = rt.dataplane

    def kernel_work(config: Any) -> tuple[list[str], list[tuple[str, str]], str]:
        """What the dataplane would do to the kernel as it is now, in raw form."""
        net_facts, fw_facts = dp.facts(config, {}, time.time())
        want = net.desired(config, net_facts)
        ops = diff(want, netlink.observe(scope(want)))
        batch, writes = ip_batch_lines(ops)
        return batch, writes, compile_firewall(config, fw_facts).text

    async def on_kernel_thread(work: Callable[[], Any]) -> Any:
        """pyroute2 refuses to run inside the event loop: every kernel call goes here."""
        return await asyncio.get_running_loop().run_in_executor(kernel_thread, work)

    def start_state() -> Kernel:
        want = net.desired(configs[0], dp.facts(configs[0], {}, time.time())[0])
        return Kernel(tmp, [*want.sysctls, net.HOSTNAME_SYSCTL])

    kernel: Kernel = await on_kernel_thread(start_state)
    pushed = {"n": 0}  # the runtime pushes publics[n % 2] next; each push is a new revision

    async def push_reload() -> float:
        public = publics[pushed["n"] % 2]
        pushed["n"] += 1
        start = time.perf_counter()
        await rt.push(public, secrets, author, comment="bench")
        out = await rt.reload(author)
        elapsed = (time.perf_counter() - start) * 1000
        running = rt.state.revisions.get(out.running or 0)
        if running is None or running.public_toml != public or out.candidate is not None:
            raise SystemExit(f"reload bench: the reload did not apply: {out.lines}")
        return elapsed

    async def raw(config: Any, *, reset: bool) -> float:
        """Time the raw kernel work that takes the kernel from now to `config`."""

        def prepare() -> Callable[[], None]:
            if reset:
                kernel.reset()
            return kernel.floor(*kernel_work(config), tag="floor")

        run = await on_kernel_thread(prepare)
        start = time.perf_counter()
        await on_kernel_thread(run)
        elapsed = (time.perf_counter() - start) * 1000
        left = await on_kernel_thread(lambda: kernel_work(config))
        if left[0] or left[1]:
            raise SystemExit(f"reload bench: the floor left netlink work undone: {left[:2]}")
        return elapsed

    cold: list[float] = []
    floor_c: list[float] = []
    warm: list[float] = []
    floor_w: list[float] = []
    try:
        await push_reload()  # imports and caches warm up: not measured
        await on_kernel_thread(kernel.reset)
        batch_full, writes_full, ruleset_full = await on_kernel_thread(
            lambda: kernel_work(configs[0])
        )
        for _ in range(runs):
            floor_c.append(await raw(configs[pushed["n"] % 2], reset=True))
            await on_kernel_thread(kernel.reset)
            cold.append(await push_reload())
        for _ in range(runs):
            # the kernel holds revision `before`; both paths go from it to `after`
            before, after = configs[(pushed["n"] + 1) % 2], configs[pushed["n"] % 2]
            warm.append(await push_reload())
            await raw(before, reset=False)  # back to `before`, not timed
            floor_w.append(await raw(after, reset=False))
    finally:
        kernel_thread.submit(rt.events.close).result()
        kernel_thread.submit(netlink.close).result()
        nft.close()
        kernel_thread.shutdown()

    med = statistics.median
    rules = sum(1 for line in ruleset_full.splitlines() if line.strip())
    print(f"cookbook reload, push -> applied, median of {runs} (real Netlink + Nft, LMDB journal)")
    print(
        f"  kernel work from scratch: {len(batch_full)} ip -batch lines, {len(writes_full)} "
        f"sysctl/hostname writes, a {rules}-line ruleset"
    )
    rows = [
        ("cold", "floor: ip -batch + sysctls + nft -f", floor_c, cold),
        ("warm", "floor: hostname + nft -f", floor_w, warm),
    ]
    for name, what, floor, ours in rows:
        print(f"  {name}  {what:<38} {med(floor):8.1f} ms")
        print(
            f"  {name}  {'push + reload through Runtime':<38} {med(ours):8.1f} ms  "
            f"{med(ours) / med(floor):5.2f}x the floor"
        )
    print(
        "push + reload = validate, seal, journal (fsync), compile, observe + diff + netlink, "
        "one nft transaction, files rewritten (fsync), outcome journaled"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        asyncio.run(inside(args.runs))
        return
    if os.geteuid() != 0:
        sys.exit("reload needs root: it measures inside a network namespace it creates")
    ns = f"oxreload-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        # its own UTS namespace too: the reload sets the hostname
        argv = ["ip", "netns", "exec", ns, "unshare", "--uts", sys.executable, __file__]
        subprocess.run([*argv, "--inside", "--runs", str(args.runs)], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


if __name__ == "__main__":
    main()
