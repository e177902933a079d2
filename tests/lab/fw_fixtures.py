"""A small namespace lab for the firewall packet tests: router, wan, lan, server and guest.

router: wan0 203.0.113.2/24 (the ISP side is wan's 203.0.113.1), br-lan 192.168.1.1/24 and
fd00:1::1/64 with lan (192.168.1.10) and server (192.168.1.20) bridged on it, guest0
192.168.2.1/24 to guest (192.168.2.10). Names carry a random suffix; everything is deleted on
close. Rules are applied inside the router namespace by a child process running the real adapter
(`oxwrtd.shell.nft.Nft`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import msgspec

from oxwrtd.core.fw_script import Ruleset

REPO = Path(__file__).resolve().parents[2]
ROLES = ("router", "wan", "lan", "server", "guest")
WAIT = 1.5  # seconds a client waits for a TCP handshake before calling it dropped

SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print('ready', flush=True)
while True:
    c, peer = s.accept()
    c.sendall(peer[0].encode())
    c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print('ok', c.recv(100).decode())
except socket.timeout:
    print('timeout')
except ConnectionRefusedError:
    print('refused')
except OSError as e:
    print('error', e.errno)
"""
APPLY = """
import sys, msgspec
from oxwrtd.core.fw_script import Ruleset
from oxwrtd.shell.nft import Nft, NftApplyError
nft = Nft()
try:
    for path in sys.argv[1:]:
        out = nft.apply(msgspec.json.decode(open(path, 'rb').read(), type=Ruleset))
        print('changed' if out.changed else 'unchanged')
except NftApplyError as e:
    print('error', e.origin, e.message)
finally:
    nft.close()
"""


def sh(*args: str, ns: str | None = None, timeout: float = 20) -> str:
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return done.stdout


class Lab:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns = {role: f"oxfw-{role}-{tag}" for role in ROLES}
        self.servers: list[subprocess.Popen[str]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="oxfw-lab-"))
        self._build(tag)

    def _build(self, tag: str) -> None:
        r = self.ns["router"]
        for name in self.ns.values():
            sh("ip", "netns", "add", name)
            sh("ip", "link", "set", "lo", "up", ns=name)
        links = {
            "wan": ("wan0", "203.0.113.1/24", "203.0.113.2", None),
            "lan": ("lan0p", "192.168.1.10/24", "192.168.1.1", "fd00:1::10/64"),
            "server": ("lan1p", "192.168.1.20/24", "192.168.1.1", "fd00:1::20/64"),
            "guest": ("guest0", "192.168.2.10/24", "192.168.2.1", None),
        }
        sh("ip", "link", "add", "br-lan", "type", "bridge", ns=r)
        for role, (router_if, addr, gw, addr6) in links.items():
            peer = f"ox{role[:3]}{tag}"
            sh("ip", "link", "add", peer, "type", "veth", "peer", "name", router_if, "netns", r)
            sh("ip", "link", "set", peer, "netns", self.ns[role])
            sh("ip", "link", "set", peer, "name", "eth0", ns=self.ns[role])
            sh("ip", "addr", "add", addr, "dev", "eth0", ns=self.ns[role])
            if addr6:
                sh("ip", "-6", "addr", "add", addr6, "dev", "eth0", "nodad", ns=self.ns[role])
            sh("ip", "link", "set", "eth0", "up", ns=self.ns[role])
            if role != "wan":
                sh("ip", "route", "add", "default", "via", gw, ns=self.ns[role])
            if role in ("lan", "server"):
                sh("ip", "link", "set", router_if, "master", "br-lan", ns=r)
            sh("ip", "link", "set", router_if, "up", ns=r)
        sh("ip", "addr", "add", "203.0.113.2/24", "dev", "wan0", ns=r)
        sh("ip", "addr", "add", "192.168.1.1/24", "dev", "br-lan", ns=r)
        sh("ip", "-6", "addr", "add", "fd00:1::1/64", "dev", "br-lan", "nodad", ns=r)
        sh("ip", "addr", "add", "192.168.2.1/24", "dev", "guest0", ns=r)
        sh("ip", "link", "set", "br-lan", "up", ns=r)
        sh("ip", "route", "add", "default", "via", "203.0.113.1", ns=r)
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", ns=r)

    def apply(self, *rulesets: Ruleset) -> list[str]:
        paths = []
        for i, rs in enumerate(rulesets):
            path = self.tmp / f"rs{i}.json"
            path.write_bytes(msgspec.json.encode(rs))
            paths.append(str(path))
        out = sh(sys.executable, "-c", APPLY, *paths, ns=self.ns["router"])
        return out.split("\n")[:-1]

    def serve(self, role: str, addr: str, port: int) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[role], sys.executable, "-c", SERVER, addr, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.servers.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the server binds or exits at once
        if line.strip() != "ready":
            raise RuntimeError(f"server {role} {addr}:{port} did not start")

    def connect(self, role: str, addr: str, port: int) -> str:
        """'ok <peer address the server saw>', 'timeout', 'refused' or 'error <errno>'."""
        out = sh(sys.executable, "-c", CLIENT, addr, str(port), str(WAIT), ns=self.ns[role])
        return out.strip()

    def ping6(self, role: str, addr: str) -> bool:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns[role], "ping", "-6", "-c", "1", "-W", "2", addr],
            capture_output=True,
            timeout=10,
            check=False,
        )
        return done.returncode == 0

    def nft_json(self) -> str:
        return sh("nft", "-j", "list", "ruleset", ns=self.ns["router"])

    def close(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        for name in self.ns.values():
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        for path in self.tmp.iterdir():
            path.unlink()
        self.tmp.rmdir()
