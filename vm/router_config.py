"""The config pair the VM tier's router boots: the cookbook, fitted to the VM's hardware.

The guest has two virtio NICs and no udev, so the kernel names them in PCI order: `eth0` is the
WAN (the first NIC of `NetPlan`), `eth1` the LAN. The cookbook is edited with tomlkit (its
comments stay), renaming its interfaces to those and leaving out what the VM cannot have: Wi-Fi
(no hostapd), the guest and WireGuard networks, the VPN client, downloads (blocklists, DDNS,
SFTP backups). The WAN is static (203.0.113.2/24, the lab's WanSide gateway at .1), so the
kernel state of a boot depends on the config alone and a lab run of the same config is
comparable with a VM's. The operator's key is inline in `[[control.clients]]`.

`data_tree` lays the pair out as the data partition holds it (oxwrtd/shell/init.DATA_BINDS),
with the control plane's server key, for `make_data_disk(root=...)`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

import tomlkit

from oxwrtd.shell.init import DATA_BINDS

REPO: Final = Path(__file__).resolve().parent.parent
COOKBOOK: Final = REPO / "rootfs-overlay" / "etc" / "oxwrt" / "oxwrt.toml"
WAN_IFACE: Final = "eth0"
LAN_IFACE: Final = "eth1"
WAN_ADDRESS: Final = ("203.0.113.2", 24, "203.0.113.1")  # inside oxwrtd.lab.WanSide's /24
LAN_ADDRESS: Final = "192.168.50.1"  # the cookbook's; oxctl talks to it from the LAN
LAN_CLIENT: Final = ("192.168.50.10/24", "192.168.50.1")
OPERATOR: Final = "vm-operator"

# what a VM has no hardware, daemon or network for
DROPPED_TABLES: Final = ("radios", "wifi", "wireguard", "vpn_client", "blocklists", "ddns")
DROPPED_SECTIONS: Final = ("backup_sftp",)
DROPPED_NETWORKS: Final = frozenset({"guest", "roadwarrior"})
DROPPED_SERVICES: Final = frozenset({"hostapd-5g", "hostapd-2g"})  # no radios
RENAMED: Final = {"wan0": WAN_IFACE, "lan0": LAN_IFACE}


def vm_router_toml(operator_key: str, cookbook: Path = COOKBOOK) -> str:
    """The cookbook's text fitted to the VM; `operator_key` (64 hex) may use the control plane."""
    doc = tomlkit.parse(cookbook.read_text())
    for key in (*DROPPED_TABLES, *DROPPED_SECTIONS):
        doc.pop(key, None)
    doc["networks"] = _keep(doc["networks"], lambda n: n["name"] not in DROPPED_NETWORKS)
    for network in doc["networks"]:
        if network["type"] == "wan":
            for key in ("send_hostname", "ipv6_pd"):
                network.pop(key, None)
            address, prefix, gateway = WAN_ADDRESS
            network.update(
                {"iface": WAN_IFACE, "mode": "static", "address": address, "prefix": prefix}
            )
            network.update({"gateway": gateway, "dns": [gateway]})
        if network["type"] == "lan":
            network["members"] = [LAN_IFACE]
            network.pop("ipv6_subnet_id", None)  # no prefix delegation on a static WAN
    fw = doc["firewall"]
    fw["zones"] = _keep(fw["zones"], lambda z: z["name"] not in DROPPED_NETWORKS)
    fw["rules"] = _keep(fw["rules"], lambda r: _zones_of(r).isdisjoint(DROPPED_NETWORKS))
    fw["forwardings"] = _keep(
        fw["forwardings"], lambda f: _zones_of(f).isdisjoint(DROPPED_NETWORKS)
    )
    for rule in fw["rules"]:
        if rule.get("device") in RENAMED:
            rule["device"] = RENAMED[rule["device"]]
    for raw in fw.get("raw_nft", []):
        raw["rule"] = _renamed(raw["rule"])
    doc["dns"]["listen_v4"] = [LAN_ADDRESS]
    doc["services"] = _keep(doc["services"], lambda s: s["name"] not in DROPPED_SERVICES)
    if "upnp" in doc:
        doc["upnp"]["wan"] = WAN_IFACE
    control = doc["control"]
    control["listen"] = [f"{LAN_ADDRESS}:51820"]
    client = tomlkit.table()
    client.update({"name": OPERATOR, "key": operator_key})
    clients = tomlkit.aot()
    clients.append(client)
    control["clients"] = clients
    return tomlkit.dumps(doc)


def _keep(items: Any, wanted: Any) -> Any:
    kept = tomlkit.aot()
    for item in items:
        if wanted(item):
            kept.append(item)
    return kept


def _zones_of(entry: Any) -> set[str]:
    return {str(entry[k]) for k in ("src", "dest") if k in entry}


def _renamed(text: str) -> str:
    for old, new in RENAMED.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    return text


def data_tree(root: Path, public_toml: str, secrets_toml: str = "") -> str:
    """Lay out the data partition's files under `root` (config pair, an empty authorized_keys,
    the server key); returns the server's public key (hex) for oxctl's --server-key."""
    from oxwrtd.control import identity

    etc = root / _bind_source("/etc/oxwrt")
    etc.mkdir(parents=True, exist_ok=True)
    (root / _bind_source("/var/lib/oxwrt")).mkdir(parents=True, exist_ok=True, mode=0o700)
    (etc / "oxwrt.toml").write_text(public_toml)
    secrets = etc / "oxwrt.secrets.toml"
    secrets.write_text(secrets_toml)
    secrets.chmod(0o600)
    (etc / "authorized_keys").write_text("# the VM operator is in [[control.clients]]\n")
    ident, _ = identity.load_or_create(etc)
    return ident.public_hex


def copy_state(root: Path, config_dir: Path, state_dir: Path) -> None:
    """Put a router's config dir and state dir (journal, device key) under `root` as the data
    partition holds them; the run dir and anything else a running daemon left is not copied."""
    etc = root / _bind_source("/etc/oxwrt")
    state = root / _bind_source("/var/lib/oxwrt")
    shutil.copytree(config_dir, etc, dirs_exist_ok=True)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copytree(state_dir / "journal", state / "journal", dirs_exist_ok=True)
    shutil.copy2(state_dir / "device.key", state / "device.key")


def _bind_source(target: str) -> str:
    return next(source for source, bound in DATA_BINDS if bound == target)
