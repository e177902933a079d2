"""What `status` says about the WANs and access points, from the running config and the journal.

Pure: the runtime passes the folded leases (keyed by interface) and probe results, and reads
link states itself. The active WAN follows the same rule as the default route (core/net.py):
the best-priority WAN that holds an address and a gateway, static or leased, lease unexpired.
A WAN is healthy while it holds both and, if it is the active one, its last wan-gateway probe
did not fail.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from oxwrtd.core.dhcp_client import lease_facts
from oxwrtd.core.render_hostapd import ap_interfaces
from oxwrtd.core.state import Lease, Probe
from schema import wire
from schema.config import Config, Wan


class WanView(msgspec.Struct, frozen=True):
    summary: wire.WanSummary | None  # the active WAN's address (else the primary's, if it has one)
    active: str | None
    entries: list[wire.WanEntry]


def wan_view(
    config: Config, leases: Mapping[str, Lease], probes: Mapping[str, Probe], now: float
) -> WanView:
    held = lease_facts(config, leases, now)
    wans = config.wans_by_priority()
    addresses: dict[str, tuple[str, int, str | None, int]] = {}  # name -> address, prefix, gw, s
    for wan in wans:
        if wan.mode == "static" and wan.address is not None and wan.prefix is not None:
            addresses[wan.name] = (wan.address, wan.prefix, wan.gateway, 0)
        elif wan.name in held:
            got, row = held[wan.name], leases[wan.iface]
            seconds = round(row.expires - row.at) if row.expires is not None else 0
            addresses[wan.name] = (got.address, got.prefix, got.gateway, seconds)
    active = next((w for w in wans if w.name in addresses and addresses[w.name][2]), None)
    gateway_probe = probes.get("wan-gateway")
    entries = [_entry(w, addresses.get(w.name), w is active, gateway_probe) for w in wans]
    shown = active or (wans[0] if wans else None)
    summary = None
    if shown is not None and shown.name in addresses:
        address, prefix, gateway, seconds = addresses[shown.name]
        summary = wire.WanSummary(
            address=address, prefix=prefix, gateway=gateway, lease_seconds=max(seconds, 0)
        )
    return WanView(summary=summary, active=active.name if active else None, entries=entries)


def _entry(
    wan: Wan,
    held: tuple[str, int, str | None, int] | None,
    active: bool,
    gateway_probe: Probe | None,
) -> wire.WanEntry:
    healthy = held is not None and held[2] is not None
    if active and gateway_probe is not None and not gateway_probe.ok:
        healthy = False
    return wire.WanEntry(
        name=wan.name,
        iface=wan.iface,
        priority=wan.priority,
        healthy=healthy,
        active=active,
        address=f"{held[0]}/{held[1]}" if held else None,
        gateway=held[2] if held else None,
    )


def access_points(config: Config, operstate: Mapping[str, str]) -> list[wire.ApStatus]:
    """One row per Wi-Fi network, on the interface hostapd gives it; `operstate` maps interface
    names to /sys/class/net/<iface>/operstate (an interface that does not exist is "absent")."""
    out: list[wire.ApStatus] = []
    radios = {r.phy: r for r in config.radios}
    for wifi, iface in ap_interfaces(config):
        radio = radios.get(wifi.radio)
        out.append(
            wire.ApStatus(
                ssid=wifi.ssid,
                iface=iface,
                radio_phy=wifi.radio,
                band=radio.band if radio else "",
                channel=radio.channel if radio else 0,
                operstate=operstate.get(iface, "absent"),
            )
        )
    return out


__all__ = ["WanView", "access_points", "wan_view"]
