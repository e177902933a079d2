"""What reconciling many addresses and routes costs, against `ip -batch` doing the same.

In fresh network namespaces the script creates (and deletes), with one bridge `br0`:
  floor     `ip -batch FILE`: create br0, set it up, add N addresses and N routes (proto 155);
  apply     observe + diff + Netlink.apply of the same desired state (pyroute2 IPRoute for the
            links, the batched raw rtnetlink socket for addresses and routes);
  no-op     observe + diff of the state already in place (nothing to write);
  unbatched the same addresses and routes one IPRoute request each (what batching saves);
and prints apply/floor (target <= 2x) and no-op/apply. Median of --runs. Figures only.

    .venv/bin/python bench/netlink_apply.py [--count N] [--runs N]   (needs root: creates netns)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from oxwrtd.core.net import ROUTE_PROTO_OXWRT, Addr, Link, NetState, Route  # noqa: E402
from oxwrtd.core.net_diff import diff, scope  # noqa: E402
from oxwrtd.shell.netlink import Netlink  # noqa: E402
from oxwrtd.shell.sysctl import Sysctl  # noqa: E402


@contextmanager
def namespace() -> Iterator[str]:
    ns = f"oxnlbench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


def addresses(count: int) -> list[str]:
    return [f"10.100.{i // 250}.{i % 250 + 1}/32" for i in range(count)]


def route_dests(count: int) -> list[str]:
    return [f"10.{200 + i // 256}.{i % 256}.0/24" for i in range(count)]


def desired_state(count: int) -> NetState:
    state = NetState()
    state.links["br0"] = Link(name="br0", kind="bridge", created=True)
    state.addrs = {Addr("br0", a) for a in addresses(count)}
    for dest in route_dests(count):
        route = Route(dest=dest, link="br0", metric=1024)
        state.routes[route.key] = route
    return state


def batch_text(count: int) -> str:
    lines = ["link add br0 type bridge", "link set br0 up"]
    lines += [f"addr add {a} dev br0" for a in addresses(count)]
    proto = ROUTE_PROTO_OXWRT
    lines += [f"route add {d} dev br0 proto {proto} metric 1024" for d in route_dests(count)]
    return "\n".join(lines) + "\n"


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def floor_once(count: int, scratch: Path) -> float:
    batch = scratch / "batch.ip"
    batch.write_text(batch_text(count))
    with namespace() as ns:
        return timed(lambda: subprocess.run(["ip", "-n", ns, "-batch", str(batch)], check=True))


def apply_once(count: int, scratch: Path) -> tuple[float, float, int]:
    want = desired_state(count)
    with namespace() as ns, Netlink(ns, Sysctl(scratch)) as netlink:

        def reconcile() -> None:
            netlink.apply(diff(want, netlink.observe(scope(want))))

        full = timed(reconcile)
        writes = netlink.writes
        noop = timed(reconcile)
        assert netlink.writes == writes, "a second reconcile must write nothing"
        return full, noop, writes


def unbatched_once(count: int) -> float:
    from pyroute2 import IPRoute  # the bench compares against the adapter's own library

    with namespace() as ns, IPRoute(netns=ns) as ipr:

        def one_by_one() -> None:
            ipr.link("add", ifname="br0", kind="bridge")
            (index,) = ipr.link_lookup(ifname="br0")
            ipr.link("set", index=index, state="up")
            for a in addresses(count):
                ipr.addr("add", index=index, address=a.split("/")[0], prefixlen=32)
            for d in route_dests(count):
                ipr.route("add", dst=d, oif=index, priority=1024, proto=ROUTE_PROTO_OXWRT)

        return timed(one_by_one)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="addresses and routes each")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        floors = [floor_once(args.count, scratch) for _ in range(args.runs)]
        runs = [apply_once(args.count, scratch) for _ in range(args.runs)]
        unbatched = [unbatched_once(args.count) for _ in range(max(1, args.runs // 2))]
    floor = statistics.median(floors)
    full = statistics.median(r[0] for r in runs)
    noop = statistics.median(r[1] for r in runs)
    slow = statistics.median(unbatched)
    print(f"{args.count} addresses + {args.count} routes on one bridge, median of {args.runs}")
    print(f"  floor  ip -batch           {floor * 1e3:8.1f} ms")
    print(f"  apply  observe+diff+apply  {full * 1e3:8.1f} ms  ({runs[0][2]} netlink writes)")
    print(f"  no-op  observe+diff        {noop * 1e3:8.1f} ms  (0 writes)")
    print(f"  unbatched IPRoute calls    {slow * 1e3:8.1f} ms")
    print(f"  apply / floor     = {full / floor:5.2f}x   (target <= 2x)")
    print(f"  no-op / apply     = {noop / full:5.2f}x")
    print(f"  unbatched / apply = {slow / full:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
