"""The config contract: one msgspec Struct per section of the oxwrt.toml + oxwrt.secrets.toml pair.

Owns the shape of the config (sections, keys, defaults, tagged unions) exactly as the reference
oxwrt accepts it, so a pair written for the Rust oxwrt decodes here. Invariants:
- every Struct forbids unknown keys (a typo is an error, not a silent no-op);
- the types here are what TOML can carry (str/int/bool/list/table); address syntax, ranges beyond
  the integer width and cross-references are checked in `schema.validate`, which names the path;
- tagged unions: `[[networks]]` by `type`, `[[ddns]]` by `provider`. WAN `mode` is a plain field
  of `Wan` because TOML flattens it beside `type`; `validate` enforces which keys each mode takes.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

U8 = Annotated[int, msgspec.Meta(ge=0, le=255)]
U16 = Annotated[int, msgspec.Meta(ge=0, le=65535)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
U64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # msgspec bounds stop at int64

Policy = Literal["accept", "drop"]
Family = Literal["any", "ipv4", "ipv6"]
Proto = Literal["tcp", "udp", "both", "icmp"]
Action = Literal["accept", "drop", "reject", "dnat"]
# A port spec is an integer, a list of integers, or an "A-B" range string (reference PortSpec).
PortSpec = U16 | list[U16] | str

DEFAULT_CAPS: Final = ("SETUID", "SETGID", "SETPCAP", "NET_BIND_SERVICE")


class Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Common options: strict keys, keyword construction, compact dumps."""


# ---------------------------------------------------------------- networks


class RouterAdvertisements(Base):
    max_interval_s: U64 | None = None
    min_interval_s: U64 | None = None
    default_lifetime_s: U64 | None = None
    managed: bool = False
    other_config: bool = False


class Sqm(Base):
    bandwidth_up_kbps: U32 | None = None
    bandwidth_down_kbps: U32 | None = None
    extra_args: str | None = None


class VlanPort(Base):
    iface: str
    pvid: U16 | None = None
    tagged: list[U16] = []


WanMode = Literal["dhcp", "static", "pppoe"]
WAN_MODE_KEYS: Final[dict[str, frozenset[str]]] = {
    "dhcp": frozenset({"send_hostname", "hostname_override", "vendor_class_id"}),
    "static": frozenset({"address", "prefix", "gateway", "dns"}),
    "pppoe": frozenset({"username", "password"}),
}
WAN_MODE_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "dhcp": (),
    "static": ("address", "prefix", "gateway"),
    "pppoe": ("username", "password"),
}


class Wan(Base, tag_field="type", tag="wan"):
    name: str
    iface: str
    mode: WanMode
    priority: U32 = 100
    probe_target: str | None = None
    mac_address: str | None = None
    ipv6_pd: bool = False
    sqm: Sqm | None = None
    # mode = "dhcp"
    send_hostname: bool = False
    hostname_override: str | None = None
    vendor_class_id: str | None = None
    # mode = "static"
    address: str | None = None
    prefix: U8 | None = None
    gateway: str | None = None
    dns: list[str] = []
    # mode = "pppoe"
    username: str | None = None
    password: str | None = None  # secret

    @property
    def device(self) -> str:
        return self.iface


class Lan(Base, tag_field="type", tag="lan"):
    name: str
    bridge: str
    address: str
    prefix: U8
    members: list[str] = []
    vlan_filtering: bool = False
    vlan_ports: list[VlanPort] = []
    ipv6_address: str | None = None
    ipv6_prefix: U8 | None = None
    ipv6_subnet_id: U16 | None = None
    router_advertisements: RouterAdvertisements | None = None

    @property
    def device(self) -> str:
        return self.bridge


class Simple(Base, tag_field="type", tag="simple"):
    name: str
    iface: str
    address: str
    prefix: U8
    ipv6_address: str | None = None
    ipv6_prefix: U8 | None = None
    ipv6_subnet_id: U16 | None = None
    vlan: U16 | None = None
    vlan_parent: str | None = None
    router_advertisements: RouterAdvertisements | None = None

    @property
    def device(self) -> str:
        return self.iface


Network = Wan | Lan | Simple

# ---------------------------------------------------------------- firewall


class Zone(Base):
    name: str
    networks: list[str] = []
    default_input: Policy = "drop"
    default_forward: Policy = "drop"
    default_output: Policy = "accept"
    masquerade: bool = False
    via_vpn: bool = False
    wan: str | None = None
    mtu_fix: bool = False


class MatchSet(Base):
    name: str
    direction: Literal["src", "dst"] = "src"
    negate: bool = False


class Rule(Base):
    name: str
    action: Action
    enabled: bool = True
    src: str | None = None
    dest: str | None = None
    family: Family = "any"
    proto: Proto | None = None
    dest_port: PortSpec | None = None
    src_port: PortSpec | None = None
    src_ip: list[str] = []
    dest_ip: list[str] = []
    src_mac: list[str] = []
    icmp_type: str | None = None
    ct_state: list[str] = []
    limit: str | None = None
    limit_burst: U32 | None = None
    log: str | None = None
    counter: bool = False
    reject_with: str | None = None
    device: str | None = None
    dnat_target: str | None = None
    schedule: str | None = None
    match_set: MatchSet | None = None
    set_mark: U32 | None = None
    set_dscp: str | None = None
    helper: str | None = None
    notrack: bool = False


class Forwarding(Base):
    src: str
    dest: str
    family: Family = "any"


class FirewallDefaults(Base):
    synflood_protect: bool = True
    drop_invalid: bool = True


class RawNft(Base):
    chain: str
    rule: str
    table: str = "inet oxwrt"


class Firewall(Base):
    zones: list[Zone] = []
    rules: list[Rule] = []
    forwardings: list[Forwarding] = []
    defaults: FirewallDefaults = msgspec.field(default_factory=FirewallDefaults)
    raw_nft: list[RawNft] = []


class PortForward(Base):
    name: str
    proto: Proto
    external_port: U16
    internal: str
    src: str = "wan"
    dest: str | None = None
    reflection: bool = True


class Route(Base):
    dest: str
    prefix: U8
    iface: str
    gateway: str | None = None
    metric: U32 = 1024


class IpSet(Base):
    name: str
    family: Family
    entries: list[str] = []
    timeout: str | None = None


class Blocklist(Base):
    name: str
    url: str
    refresh_seconds: U64 = 86400
    zones: list[str] = []


# ---------------------------------------------------------------- VPN


class WireguardPeer(Base):
    name: str
    pubkey: str
    allowed_ips: str
    preshared_key: str | None = None  # secret
    endpoint: str | None = None
    persistent_keepalive: U16 | None = None


class Wireguard(Base):
    name: str
    listen_port: U16
    iface: str | None = None
    key_path: str = "/etc/oxwrt/wg0.key"
    peers: list[WireguardPeer] = []

    @property
    def device(self) -> str:
        return self.iface or self.name


class VpnClient(Base):
    name: str
    iface: str
    address: str
    probe_target: str
    endpoint: str
    public_key: str
    priority: U32 = 100
    key_path: str = "/etc/oxwrt/vpn-client.key"
    address_v6: str | None = None
    dns: list[str] = []
    mtu: U32 = 1420
    preshared_key_path: str | None = None
    persistent_keepalive: U16 = 25
    bypass_destinations: list[str] = []
    bypass_destinations_v6: list[str] = []


# ---------------------------------------------------------------- Wi-Fi


class Radio(Base):
    phy: str
    channel: U16
    band: str = ""
    disabled: bool = False
    country_code: str | None = None
    ht_capab: str | None = None
    vht_capab: str | None = None
    vht_oper_chwidth: U8 | None = None
    vht_oper_centr_freq_seg0_idx: U16 | None = None
    he_oper_chwidth: U8 | None = None
    he_oper_centr_freq_seg0_idx: U16 | None = None
    ieee80211n: bool | None = None
    ieee80211ac: bool | None = None
    ieee80211ax: bool | None = None
    ieee80211d: bool | None = None
    ieee80211h: bool | None = None
    beacon_int: U16 | None = None
    dtim_period: U16 | None = None
    extra: list[str] = []


WifiSecurity = Literal["open", "wpa2", "wpa3-sae", "wpa2-wpa3"]


class Wifi(Base):
    radio: str
    ssid: str
    network: str
    security: WifiSecurity = "wpa3-sae"
    passphrase: str = ""  # secret
    hidden: bool = False
    bridge: str | None = None
    wpa_key_mgmt: str | None = None
    rsn_pairwise: str | None = None
    ieee80211w: U8 | None = None
    sae_require_mfp: bool | None = None
    sae_pwe: U8 | None = None
    macaddr_acl: U8 | None = None
    auth_algs: U8 | None = None
    ap_isolate: bool | None = None
    max_num_sta: U16 | None = None
    wmm_enabled: bool | None = None
    ft_over_ds: bool | None = None
    extra: list[str] = []
    rotate_hours: U32 | None = None


# ---------------------------------------------------------------- LAN services


class DnsUpstream(Base):
    ip: str
    protocol: str
    port: U16 | None = None
    server_name: str | None = None
    path: str | None = None
    trust_negative_responses: bool = False


class Dns(Base):
    listen_v4: list[str] = msgspec.field(default_factory=lambda: ["0.0.0.0"])
    listen_port: U16 = 15353
    upstreams: list[DnsUpstream] = []


class Dhcp(Base):
    network: str
    lease_time: str = "12h"
    pool_start: str | None = None
    pool_end: str | None = None
    dns_servers: list[str] = []
    gateway: str | None = None


class NtpSource(Base):
    mode: str
    address: str
    count: U8 | None = None


class Ntp(Base):
    sources: list[NtpSource] = []
    listen: list[str] = []
    poll_min: U8 = 4
    poll_max: U8 = 10


class Upnp(Base):
    wan: str
    lan: str
    min_port: U16 = 1024
    max_port: U16 = 65535
    enable_natpmp: bool = True


class Metrics(Base):
    listen: str


# DDNS providers, tagged by `provider`; each secret leaf is listed in schema.secrets.
class Duckdns(Base, tag_field="provider", tag="duckdns"):
    name: str
    domain: str
    token: str  # secret


class Cloudflare(Base, tag_field="provider", tag="cloudflare"):
    name: str
    zone_id: str
    record_id: str
    domain: str
    api_token: str  # secret
    ttl: U32 = 60


class Namecheap(Base, tag_field="provider", tag="namecheap"):
    name: str
    host: str
    domain: str
    password: str  # secret


class Dynv6(Base, tag_field="provider", tag="dynv6"):
    name: str
    hostname: str
    token: str  # secret


class He(Base, tag_field="provider", tag="he"):
    name: str
    hostname: str
    key: str  # secret


Ddns = Duckdns | Cloudflare | Namecheap | Dynv6 | He


class BackupSftp(Base):
    host: str
    username: str
    key_path: str
    remote_dir: str
    port: U16 = 22
    interval_hours: U32 = 24
    keep: U32 = 30
    include_secrets: bool = True
    host_key: str | None = None


# ---------------------------------------------------------------- sandboxed services


class Veth(Base):
    host_ip: str
    peer_ip: str
    prefix: U8 = 30


class Bind(Base):
    source: str
    target: str
    readonly: bool = True


class Security(Base):
    caps: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_CAPS))
    no_new_privs: bool = True
    seccomp: bool = True
    seccomp_allow: list[str] = []
    user_namespace: bool = False
    pid_namespace: bool = False
    landlock: bool = True


class Service(Base):
    name: str
    rootfs: str
    entrypoint: list[str]
    env: dict[str, str] = {}
    net_mode: Literal["isolated", "host"] = "isolated"
    veth: Veth | None = None
    memory_max: U64 | None = None
    cpu_max: str | None = None
    pids_max: U64 | None = None
    binds: list[Bind] = []
    depends_on: list[str] = []
    security: Security = msgspec.field(default_factory=Security)


# ---------------------------------------------------------------- control plane


class ControlClient(Base):
    name: str
    key: str


class Control(Base):
    listen: list[str]
    authorized_keys: str = "/etc/oxwrt/authorized_keys"
    clients: list[ControlClient] = []
    max_connections: U32 = 32
    max_rpcs_per_sec: U32 = 20


# ---------------------------------------------------------------- health gate and drift

HEALTH_PROBE_KINDS: Final = ("kernel", "control", "services", "wan-gateway")
HEALTH_PROBE_PREFIXES: Final = ("dns:", "ping:")


class Health(Base):
    """What proves an applied revision works, and how often the kernel is checked for drift.

    `probes` run `interval_s` after each reload or rollback and then every `interval_s` while the
    revision is younger than `window_s`; a probe that fails `failures_to_revert` rounds in a row
    inside that window reverts to the previous good revision (a revert itself is probed and
    reported, never reverted again). After the window they run every `monitor_s` (0 = stop) and
    are only recorded. Each probe is one of:
      "kernel"       the kernel holds exactly what the revision describes (no drift);
      "control"      the control plane listens on every [control].listen address;
      "services"     every [[services]] entry is running;
      "wan-gateway"  the gateway of the active WAN answers a ping through its interface;
      "dns:NAME"     NAME resolves through the router's own resolver ([dns]);
      "ping:ADDR"    the IP address ADDR answers a ping.
    `drift_check_s` compares the kernel with the running revision that often and repairs what
    differs, journaling each difference (0 = off).
    """

    probes: list[str] = []
    window_s: U32 = 120
    interval_s: U32 = 10
    failures_to_revert: U32 = 1
    monitor_s: U32 = 0
    drift_check_s: U32 = 0


# ---------------------------------------------------------------- the whole file


class Config(Base):
    hostname: str
    networks: list[Network]
    control: Control
    timezone: str | None = None
    firewall: Firewall = msgspec.field(default_factory=Firewall)
    port_forwards: list[PortForward] = []
    routes: list[Route] = []
    routes6: list[Route] = []
    ipsets: list[IpSet] = []
    blocklists: list[Blocklist] = []
    wireguard: list[Wireguard] = []
    vpn_client: list[VpnClient] = []
    radios: list[Radio] = []
    wifi: list[Wifi] = []
    dns: Dns | None = None
    dhcp: Dhcp | None = None
    ntp: Ntp | None = None
    services: list[Service] = []
    upnp: Upnp | None = None
    metrics: Metrics | None = None
    ddns: list[Ddns] = []
    backup_sftp: BackupSftp | None = None
    health: Health = msgspec.field(default_factory=Health)

    def network(self, name: str) -> Network | None:
        return next((n for n in self.networks if n.name == name), None)

    def wans_by_priority(self) -> list[Wan]:
        """WANs, lowest `priority` first (the reference's order; ties keep file order)."""
        return sorted((n for n in self.networks if isinstance(n, Wan)), key=lambda w: w.priority)

    def primary_wan(self) -> Wan | None:
        wans = self.wans_by_priority()
        return wans[0] if wans else None

    def first_lan(self) -> Lan | None:
        return next((n for n in self.networks if isinstance(n, Lan)), None)


__all__ = [
    "DEFAULT_CAPS",
    "HEALTH_PROBE_KINDS",
    "HEALTH_PROBE_PREFIXES",
    "WAN_MODE_KEYS",
    "WAN_MODE_REQUIRED",
    "BackupSftp",
    "Bind",
    "Blocklist",
    "Cloudflare",
    "Config",
    "Control",
    "ControlClient",
    "Ddns",
    "Dhcp",
    "Dns",
    "DnsUpstream",
    "Duckdns",
    "Dynv6",
    "Firewall",
    "FirewallDefaults",
    "Forwarding",
    "He",
    "Health",
    "IpSet",
    "Lan",
    "MatchSet",
    "Metrics",
    "Namecheap",
    "Network",
    "Ntp",
    "NtpSource",
    "PortForward",
    "PortSpec",
    "Radio",
    "RawNft",
    "Route",
    "RouterAdvertisements",
    "Rule",
    "Security",
    "Service",
    "Simple",
    "Sqm",
    "Upnp",
    "Veth",
    "VlanPort",
    "VpnClient",
    "Wan",
    "Wifi",
    "Wireguard",
    "WireguardPeer",
    "Zone",
]
