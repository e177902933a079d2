"""The lab: a router and its neighbours as network namespaces on one machine.

`Topology` builds four namespaces with unique names (prefix + random suffix):
- `router`: where oxwrtd runs; veth ends named as the config expects (`wan0`, `lan0`, `guest0`
  by default, see `IfaceNames`), left down and unaddressed for oxwrtd to configure;
- `wan`: the ISP (`WanSide`): `eth0` with the gateway address, a DHCP server (dnsmasq) handing
  out the pool, and an "internet" address on its loopback with an HTTP server bound to it;
- `lan`, `guest`: clients, each with `eth0` up (addresses are the test's choice: `add_address`).
Public-side addresses are documentation ranges only (TEST-NET-2 and -3). Teardown kills every
process it started, by PID, and deletes every namespace it made, even after a failure (context
manager + atexit).
CLI: `python -m oxwrtd.lab up|down|status` (state kept in /run/oxwrt-lab/<id>.json).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_DIR = Path("/run/oxwrt-lab")
ROLES = ("router", "wan", "lan", "guest")
CLIENT_IFACE = "eth0"
READY_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class IfaceNames:
    """Router-side interface names; they must match the config the router runs."""

    wan: str = "wan0"
    lan: str = "lan0"
    guest: str = "guest0"


@dataclass(frozen=True)
class WanSide:
    gateway: str = "203.0.113.1"  # TEST-NET-3: the ISP's router
    prefix: int = 24
    pool: tuple[str, str] = ("203.0.113.100", "203.0.113.199")
    lease: str = "1h"
    internet: str = "198.51.100.80"  # TEST-NET-2: an address standing for "the internet"
    http_port: int = 80


@dataclass
class LabState:
    """What a topology made, enough to tear it down from another process."""

    id: str
    namespaces: dict[str, str]
    pids: list[int] = field(default_factory=list)
    workdir: str = ""


class LabError(RuntimeError):
    pass


class Topology:
    def __init__(
        self,
        prefix: str = "oxlab",
        names: IfaceNames | None = None,
        wan: WanSide | None = None,
        *,
        dhcp: bool = True,
        http: bool = True,
        teardown_at_exit: bool = True,
    ) -> None:
        self.id = f"{prefix}-{secrets.token_hex(3)}"
        self.names = names or IfaceNames()
        self.wan = wan or WanSide()
        self.ns = {role: f"{self.id}-{role}" for role in ROLES}
        self._dhcp, self._http = dhcp, http
        self._procs: list[subprocess.Popen[bytes]] = []
        self._pids: list[int] = []
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.id}-"))
        self._made: list[str] = []
        if teardown_at_exit:
            atexit.register(self.down)

    @property
    def router(self) -> str:
        return self.ns["router"]

    @property
    def state(self) -> LabState:
        return LabState(self.id, dict(self.ns), list(self._pids), str(self.workdir))

    # ---------------------------------------------------------------- build

    def up(self) -> Topology:
        try:
            for ns in self.ns.values():
                _run("ip", "netns", "add", ns)
                self._made.append(ns)
                self.ip(ns, "link", "set", "lo", "up")
            for role, router_end in (
                ("wan", self.names.wan),
                ("lan", self.names.lan),
                ("guest", self.names.guest),
            ):
                peer = self.ns[role]
                self.ip(
                    self.router, "link", "add", router_end, "type", "veth",
                    "peer", "name", CLIENT_IFACE, "netns", peer,
                )  # fmt: skip
                self.ip(peer, "link", "set", CLIENT_IFACE, "up")
            wan = self.ns["wan"]
            self.add_address("wan", f"{self.wan.gateway}/{self.wan.prefix}")
            self.ip(wan, "addr", "add", f"{self.wan.internet}/32", "dev", "lo")
            if self._dhcp:
                self._start_dhcp()
            if self._http:
                self._start_http()
        except BaseException:
            self.down()
            raise
        return self

    def add_address(self, role: str, cidr: str, gateway: str | None = None) -> None:
        """Give a client (or the WAN side) an address on its eth0, and a default route."""
        self.ip(self.ns[role], "addr", "add", cidr, "dev", CLIENT_IFACE)
        if gateway:
            self.ip(self.ns[role], "route", "replace", "default", "via", gateway)

    def _start_dhcp(self) -> None:
        lo, hi = self.wan.pool
        conf = self.workdir / "dnsmasq.conf"
        conf.write_text(
            "\n".join(
                [
                    "port=0",  # DHCP only, no DNS
                    f"interface={CLIENT_IFACE}",
                    "bind-interfaces",
                    f"dhcp-range={lo},{hi},{_netmask(self.wan.prefix)},{self.wan.lease}",
                    f"dhcp-option=option:router,{self.wan.gateway}",
                    f"dhcp-leasefile={self.workdir / 'dnsmasq.leases'}",
                    "dhcp-authoritative",
                    "",
                ]
            )
        )
        pid_file = self.workdir / "dnsmasq.pid"
        self.spawn(
            "wan",
            "dnsmasq", "--no-daemon", f"--conf-file={conf}", f"--pid-file={pid_file}",
            "--user=root", "--group=root",
        )  # fmt: skip

    def _start_http(self) -> None:
        root = self.workdir / "www"
        root.mkdir()
        (root / "index.html").write_text("hello from the internet\n")
        self.spawn(
            "wan",
            sys.executable, "-m", "http.server", "--bind", self.wan.internet,
            "--directory", str(root), str(self.wan.http_port),
        )  # fmt: skip
        self._wait_listening("wan", self.wan.http_port)

    def _wait_listening(self, role: str, port: int) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            out = self.run(role, "ss", "-Hltn", f"sport = :{port}").stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise LabError(f"nothing listening on port {port} in {self.ns[role]}")

    # ---------------------------------------------------------------- run things inside

    def command(self, role: str, *argv: str, own_uts: bool = False) -> list[str]:
        """argv run inside a namespace; `own_uts` gives it a private hostname (for oxwrtd)."""
        uts = ["unshare", "--uts"] if own_uts else []
        return ["ip", "netns", "exec", self.ns[role], *uts, *argv]

    def run(
        self, role: str, *argv: str, check: bool = True, own_uts: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(role, *argv, own_uts=own_uts), check=check, capture_output=True, text=True
        )

    def spawn(self, role: str, *argv: str, own_uts: bool = False) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{Path(argv[0]).name}-{len(self._procs)}.log"
        with log.open("wb") as stderr:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                self.command(role, *argv, own_uts=own_uts),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self._procs.append(proc)
        self._pids.append(proc.pid)
        return proc

    def ip(self, ns: str, *argv: str) -> None:
        _run("ip", "-n", ns, *argv)

    def ip_json(self, role: str, *argv: str) -> list[dict[str, object]]:
        out = subprocess.run(
            ["ip", "-j", "-n", self.ns[role], *argv], check=True, capture_output=True, text=True
        ).stdout
        result: list[dict[str, object]] = json.loads(out or "[]")
        return result

    # ---------------------------------------------------------------- teardown

    def down(self) -> None:
        for proc in self._procs:
            _stop(proc.pid, proc)
        self._procs.clear()
        for ns in self._made:
            _kill_inside(ns)
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        self._made.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.down)

    def __enter__(self) -> Topology:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _stop(pid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Stop a process this lab started, with everything it ran (start_new_session made it a
    process-group leader, so its group is exactly what we spawned): TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and _group_alive(pid):
            if proc is not None:
                proc.poll()
            time.sleep(0.02)
        if not _group_alive(pid):
            break
    if proc is not None:
        proc.wait()


def _kill_inside(ns: str) -> None:
    """End what still runs in a lab namespace: a daemon killed with SIGKILL leaves its services
    (sandboxed, in their own sessions) behind, and deleting the namespace would not stop them."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    for pid in (int(p) for p in out.stdout.split() if p.isdigit()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _run(*argv: str) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode:
        raise LabError(f"{' '.join(argv)}: {res.stderr.strip() or res.returncode}")


def _netmask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def list_labs(prefix: str = "oxlab") -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(f"{prefix}-"))


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m oxwrtd.lab", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build a topology and leave it running")
    up.add_argument("--prefix", default="oxlab")
    down = sub.add_parser("down", help="tear down a topology (all of them without an id)")
    down.add_argument("id", nargs="?")
    sub.add_parser("status", help="list topologies and their namespaces")
    args = parser.parse_args(argv)
    if args.cmd == "up":
        topo = Topology(args.prefix, teardown_at_exit=False).up()
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        (STATE_DIR / f"{topo.id}.json").write_text(json.dumps(asdict(topo.state)))
        print(f"lab {topo.id} is up:")
        for role, ns in topo.ns.items():
            print(f"  {role:7} ip netns exec {ns} ...")
        print(f"  router ifaces: {topo.names}; internet {topo.wan.internet}")
        print(f"  down: python -m oxwrtd.lab down {topo.id}")
        return 0
    if args.cmd == "down":
        ids = [args.id] if args.id else [p.stem for p in sorted(STATE_DIR.glob("*.json"))]
        for lab_id in ids:
            path = STATE_DIR / f"{lab_id}.json"
            if not path.exists():
                print(f"no lab {lab_id} in {STATE_DIR}", file=sys.stderr)
                return 1
            state = LabState(**json.loads(path.read_text()))
            for pid in state.pids:
                _stop(pid)
            for ns in state.namespaces.values():
                subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
            shutil.rmtree(state.workdir, ignore_errors=True)
            path.unlink()
            print(f"lab {lab_id} is down")
        return 0
    for path in sorted(STATE_DIR.glob("*.json")) if STATE_DIR.exists() else []:
        state = LabState(**json.loads(path.read_text()))
        live = set(list_labs(state.id))
        for role, ns in state.namespaces.items():
            print(f"{state.id} {role:7} {ns} {'up' if ns in live else 'missing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
