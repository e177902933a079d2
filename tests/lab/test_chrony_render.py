"""Rendered daemon configs against the real daemons (lab tier).

- chronyd parses every chrony.conf variant the renderer produces, and the cookbook's one, run in
  a namespace, answers NTP clients on the LAN and ignores the WAN and the unbound guest address;
- the hostapd files land on disk 0600 through the shell's directory sync (stale radios removed);
  hostapd itself has no parse-only mode and needs a radio (mac80211_hwsim), so its check is the
  VM tier's.
chronyd always runs with -x here: the namespaces share the machine's clock, which it must not touch.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oxwrtd.core import render_chrony, render_hostapd
from oxwrtd.lab import Topology
from oxwrtd.shell.render_files import sync_dir, write_rendered
from schema.config import Config
from schema.load import load_text
from tests.conftest import COOKBOOK_DIR

CHRONYD = shutil.which("chronyd") or "/usr/sbin/chronyd"
READY_TIMEOUT_S = 5.0
# Only for running chronyd beside the machine's own: its pid file, command socket and state
# would otherwise be the ones in /run/chrony and /var/lib/chrony.
LAB_OVERRIDES = """
# lab only: keep clear of the machine's own chronyd
pidfile {dir}/chronyd.pid
bindcmdaddress /
cmdport 0
driftfile {dir}/chrony.drift
"""

NETWORKS = """
hostname = "gw"
[control]
listen = ["[::1]:51820"]
[[networks]]
name = "wan"
type = "wan"
iface = "wan0"
mode = "static"
address = "203.0.113.2"
prefix = 24
gateway = "203.0.113.1"
[[networks]]
name = "lan"
type = "simple"
iface = "lan0"
address = "192.168.50.1"
prefix = 24
ipv6_address = "fd00:50::1"
ipv6_prefix = 64
[[networks]]
name = "guest"
type = "simple"
iface = "guest0"
address = "10.99.0.1"
prefix = 24
"""

VARIANTS = {
    "client-only": '[ntp]\n[[ntp.sources]]\nmode = "server"\naddress = "192.0.2.1"\n',
    "pool-server-nts": """[ntp]
poll_min = 5
poll_max = 9
listen = ["192.168.50.1:123", "[fd00:50::1]:123"]
[[ntp.sources]]
mode = "pool"
address = "pool.ntp.org"
count = 6
[[ntp.sources]]
mode = "server"
address = "2001:db8::123"
[[ntp.sources]]
mode = "nts"
address = "time.cloudflare.com"
""",
    "wildcard": '[ntp]\nlisten = ["0.0.0.0:1123"]\n',
    "two-v4-addresses": '[ntp]\nlisten = ["192.168.50.1:123", "10.99.0.1:123"]\n',
}


def _need_chronyd() -> None:
    if not Path(CHRONYD).exists():
        pytest.skip("chronyd is not installed (Debian package chrony)")


def _cookbook() -> Config:
    return load_text(
        (COOKBOOK_DIR / "oxwrt.toml").read_text(),
        (COOKBOOK_DIR / "oxwrt.secrets.toml.example").read_text(),
    ).raise_for_issues()


def _chrony_text(config: Config) -> str:
    rendered = render_chrony.render(config)
    assert rendered is not None
    return rendered.text


@pytest.mark.parametrize("case", ["cookbook", *VARIANTS])
def test_chronyd_parses_every_rendered_variant(case: str, tmp_path: Path) -> None:
    _need_chronyd()
    config = (
        _cookbook()
        if case == "cookbook"
        else load_text(NETWORKS + VARIANTS[case]).raise_for_issues()
    )
    conf = tmp_path / "chrony.conf"
    assert write_rendered(conf, _chrony_text(config), render_chrony.FILE_MODE)
    res = subprocess.run(
        [CHRONYD, "-p", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    # -p prints the directives it understood: every rendered directive is among them
    rendered = [line for line in conf.read_text().splitlines() if line and not line.startswith("#")]
    assert res.stdout.splitlines() == rendered


def test_chronyd_rejects_what_the_renderer_would_never_write(tmp_path: Path) -> None:
    """The parse check above can fail: a directive chrony does not know is fatal."""
    _need_chronyd()
    conf = tmp_path / "chrony.conf"
    write_rendered(conf, _chrony_text(_cookbook()) + "serve-everyone yes\n", 0o644)
    res = subprocess.run(
        [CHRONYD, "-p", "-f", str(conf)], capture_output=True, text=True, check=False
    )
    assert res.returncode != 0
    assert "Invalid directive" in res.stderr


# ---------------------------------------------------------------- serving the LAN

NTP_QUERY = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect((host, port))
s.send(b"\x23" + bytes(47))  # LI 0, version 4, mode 3 (client)
try:
    reply = s.recv(512)
except (TimeoutError, ConnectionRefusedError) as exc:
    print(type(exc).__name__)
else:
    print(f"mode={reply[0] & 7} len={len(reply)}")
"""


def _ask(lab: Topology, role: str, host: str, port: int = 123) -> str:
    out = lab.run(role, sys.executable, "-c", NTP_QUERY, host, str(port)).stdout
    return out.strip()


def _wait_udp(lab: Topology, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if lab.run("router", "ss", "-Hlun", f"sport = :{port}").stdout.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"chronyd opened no UDP port {port} in the router namespace")


def test_chronyd_serves_lan_clients_only(lab: Topology) -> None:
    _need_chronyd()
    router = lab.router
    for iface, cidr in (
        ("wan0", "203.0.113.2/24"),
        ("lan0", "192.168.50.1/24"),
        ("guest0", "10.99.0.1/24"),
    ):
        lab.ip(router, "addr", "add", cidr, "dev", iface)
        lab.ip(router, "link", "set", iface, "up")
    lab.add_address("lan", "192.168.50.2/24", "192.168.50.1")
    lab.add_address("guest", "10.99.0.2/24", "10.99.0.1")
    lab.ip(lab.ns["wan"], "route", "add", "192.168.50.0/24", "via", "203.0.113.2")

    config = load_text(NETWORKS + '[ntp]\nlisten = ["192.168.50.1:123"]\n').raise_for_issues()
    rendered = render_chrony.render(config)
    assert rendered is not None
    conf = lab.workdir / "chrony.conf"
    write_rendered(
        conf, rendered.text + LAB_OVERRIDES.format(dir=lab.workdir), render_chrony.FILE_MODE
    )
    lab.spawn("router", CHRONYD, "-d", "-x", "-u", "root", "-f", str(conf))
    _wait_udp(lab, 123)

    assert _ask(lab, "lan", "192.168.50.1") == "mode=4 len=48"  # a server reply
    # the guest subnet is allowed, through the bound LAN address ...
    assert _ask(lab, "guest", "192.168.50.1") == "mode=4 len=48"
    # ... but chronyd is not bound to the guest address itself
    assert _ask(lab, "guest", "10.99.0.1") in ("TimeoutError", "ConnectionRefusedError")
    # and a WAN host reaching the LAN address is not in any `allow`
    assert _ask(lab, "wan", "192.168.50.1") == "TimeoutError"


# ---------------------------------------------------------------- hostapd files


def test_hostapd_files_are_written_private_and_stale_radios_removed(tmp_path: Path) -> None:
    directory = tmp_path / "hostapd"
    directory.mkdir()
    (directory / "phy7.conf").write_text("interface=phy7-ap0\n")  # a radio since removed
    (directory / ".phy0.conf.x1y2.tmp").write_text("half a file")  # a crash mid-write
    (directory / "README").write_text("not ours to remove")
    wanted = render_hostapd.files(render_hostapd.render(_cookbook()))
    result = sync_dir(directory, wanted, render_hostapd.FILE_MODE, ".conf")
    assert result.changed == ("phy0.conf", "phy1.conf")
    assert result.removed == (".phy0.conf.x1y2.tmp", "phy7.conf")
    assert sorted(p.name for p in directory.iterdir()) == ["README", "phy0.conf", "phy1.conf"]
    for name, text in wanted.items():
        path = directory / name
        assert path.read_text() == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = sync_dir(directory, wanted, render_hostapd.FILE_MODE, ".conf")
    assert (again.changed, again.removed) == ((), ())


def test_hostapd_parse_is_left_to_the_vm_tier() -> None:
    """hostapd has no parse-only mode (its -t adds timestamps): a config is only checked by
    starting hostapd on a radio, which here would be the machine's own or none at all."""
    installed = "installed" if shutil.which("hostapd") else "not installed"
    radios = Path("/sys/class/ieee80211")
    phys = sorted(p.name for p in radios.iterdir()) if radios.exists() else []
    pytest.skip(
        f"hostapd is {installed}, radios here: {phys or 'none'} (no mac80211_hwsim in this"
        " kernel); the VM tier starts hostapd with the rendered files on hwsim radios"
    )


# ---------------------------------------------------------------- the file writer


def test_write_rendered_reports_changes_and_fixes_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secret.conf"
    assert write_rendered(path, "psk=1\n", 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not write_rendered(path, "psk=1\n", 0o600)
    path.chmod(0o644)  # someone loosened it: same text, mode restored
    assert not write_rendered(path, "psk=1\n", 0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_rendered(path, "psk=2\n", 0o600)
    assert path.read_text() == "psk=2\n"


def test_write_rendered_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep me\n")
    link = tmp_path / "phy0.conf"
    link.symlink_to(target)
    assert write_rendered(link, "interface=phy0-ap0\n", 0o600)
    assert not link.is_symlink()
    assert target.read_text() == "keep me\n"


def test_sync_dir_refuses_names_outside_the_directory(tmp_path: Path) -> None:
    for name in ("../escape.conf", ".hidden.conf", "phy0.txt"):
        with pytest.raises(ValueError, match="not a plain"):
            sync_dir(tmp_path, {name: "x"}, 0o600, ".conf")
    assert list(tmp_path.iterdir()) == []
