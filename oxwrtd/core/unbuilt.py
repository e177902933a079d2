"""Config settings this release accepts (a Rust-oxwrt config pair must load) but does not act on.

Pure: a running revision's parsed TOML -> one line per such setting, shown in `status` and logged
at apply, so an operator is never told "applied" about something that silently did nothing.
Each entry leaves this table in the release that builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SECTIONS: Final[dict[str, str]] = {
    "wireguard": "WireGuard server links and peers are not created",
    "vpn_client": "outbound WireGuard profiles and their kill switch are not set up",
    "upnp": "miniupnpd is not configured",
    "ddns": "dynamic DNS updates are not sent",
    "backup_sftp": "scheduled off-box backups are not pushed",
}


def unbuilt(doc: Mapping[str, Any]) -> list[str]:
    """What in `doc` (a parsed public config) the daemon does not act on yet."""
    out = [f"[{key}] is accepted but not acted on yet: {why}" for key, why in SECTIONS.items()
           if doc.get(key)]  # fmt: skip
    for net in _tables(doc.get("networks")):
        name = net.get("name", "?")
        if net.get("type") != "wan":
            continue
        if net.get("mode") == "pppoe":
            out.append(f'networks "{name}": PPPoE is not brought up yet (no pppd session)')
        if net.get("sqm"):
            out.append(f'networks "{name}".sqm: CAKE shaping is not applied yet')
        if net.get("probe_target"):
            out.append(f'networks "{name}".probe_target: WAN failover probes are not run yet')
        if net.get("ipv6_pd"):
            out.append(f'networks "{name}".ipv6_pd: DHCPv6 prefix delegation is not requested yet')
    for zone in _tables((doc.get("firewall") or {}).get("zones")):
        if zone.get("wan"):
            out.append(
                f'firewall.zones "{zone.get("name")}".wan: per-zone WAN routing is not set up'
            )
    for wifi in _tables(doc.get("wifi")):
        if wifi.get("rotate_hours"):
            out.append(f'wifi "{wifi.get("ssid")}".rotate_hours: passphrase rotation is not run')
    return out


def _tables(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


__all__ = ["SECTIONS", "unbuilt"]
