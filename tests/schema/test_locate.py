"""schema.locate: the line of a config path in realistic, tricky TOML text.

Lines are found through `# @marker` comments so the text can change without recounting.
"""

from __future__ import annotations

import tomllib

import pytest

from schema.errors import Path
from schema.locate import locate

TEXT = '''\
# oxwrt.toml — a router config with the shapes that trip simple scanners
hostname = "gw"            # @hostname  [not = a header]
"quoted key" = 'x = [1'    # @quoted

[[networks]]               # @net0
name = "wan"
type = "wan"
iface = "eth1"             # @net0-iface
mode = "dhcp"

[[networks]]               # @net1
name = "lan"
type = "lan"
bridge = "br-lan"
members = [                # @net1-members
  "lan1",                  # @member0
  # "lan9",  a commented-out member
  "lan2",                  # @member1
]
address = "192.168.1.1"    # @net1-address
prefix = 24
vlan_ports = [
  { iface = "lan1", pvid = 10 },            # @port0
  { iface = "lan2", tagged = [10, 20] },    # @port1
]
router_advertisements.managed = true        # @ra-managed

[firewall.defaults]        # @defaults
drop_invalid = true

[[firewall.zones]]         # @zone0
name = "lan"
networks = ["lan"]

[[firewall.rules]]         # @rule0
name = "a"
action = "accept"

[[firewall.rules]]         # @rule1
name = "b"
log = """multi
line = "not a key"
[not.a.header]
"""
action = "drop"            # @rule1-action
match_set = { name = "bad", negate = true }  # @rule1-match

[[services]]               # @svc0
name = "dns"
entrypoint = ["/dns"]

[[services.binds]]         # @svc0-bind0
source = "/a"
target = "/b"

[[services.binds]]         # @svc0-bind1
source = "/c"
target = "/d"              # @svc0-bind1-target

[services.security]        # @svc0-security
caps = ["NET_RAW"]         # @svc0-caps

[[services]]               # @svc1
name = "ntp"

[[services.binds]]         # @svc1-bind0
source = '/e'
target = '/f'              # @svc1-bind0-target

[control]                  # @control
listen = ["[::1]:51820"]   # @listen
'''


def line_of(marker: str) -> int:
    for n, line in enumerate(TEXT.splitlines(), start=1):
        if line.rstrip().endswith(f"@{marker}") or f"@{marker} " in line:
            return n
    raise AssertionError(marker)


def test_text_is_valid_toml() -> None:
    doc = tomllib.loads(TEXT)
    assert doc["services"][1]["binds"][0]["target"] == "/f"
    assert doc["firewall"]["rules"][1]["action"] == "drop"


CASES: list[tuple[Path, str]] = [
    (("hostname",), "hostname"),
    (("quoted key",), "quoted"),
    (("networks",), "net0"),
    (("networks", 0), "net0"),
    (("networks", 0, "iface"), "net0-iface"),
    (("networks", 1), "net1"),
    (("networks", 1, "members"), "net1-members"),
    (("networks", 1, "members", 0), "member0"),
    (("networks", 1, "members", 1), "member1"),
    (("networks", 1, "address"), "net1-address"),
    (("networks", 1, "vlan_ports", 0, "pvid"), "port0"),
    (("networks", 1, "vlan_ports", 1, "tagged", 1), "port1"),
    (("networks", 1, "router_advertisements", "managed"), "ra-managed"),
    (("networks", 1, "router_advertisements"), "ra-managed"),
    (("firewall", "defaults", "drop_invalid"), "defaults"),  # next line; checked exactly below
    (("firewall", "zones", 0), "zone0"),
    (("firewall", "rules", 1), "rule1"),
    (("firewall", "rules", 1, "action"), "rule1-action"),
    (("firewall", "rules", 1, "match_set", "negate"), "rule1-match"),
    (("services", 0), "svc0"),
    (("services", 0, "binds", 0), "svc0-bind0"),
    (("services", 0, "binds", 1, "target"), "svc0-bind1-target"),
    (("services", 0, "security"), "svc0-security"),
    (("services", 0, "security", "caps", 0), "svc0-caps"),
    (("services", 1), "svc1"),
    (("services", 1, "binds", 0), "svc1-bind0"),
    (("services", 1, "binds", 0, "target"), "svc1-bind0-target"),
    (("control", "listen", 0), "listen"),
]


@pytest.mark.parametrize(("path", "marker"), CASES, ids=[m for _, m in CASES])
def test_locates_written_keys(path: Path, marker: str) -> None:
    expected = line_of(marker)
    if path == ("firewall", "defaults", "drop_invalid"):
        expected += 1
    assert locate(TEXT, path) == expected


def test_missing_key_falls_back_to_its_table_or_entry() -> None:
    assert locate(TEXT, ("services", 1, "rootfs")) == line_of("svc1")
    assert locate(TEXT, ("services", 0, "security", "seccomp")) == line_of("svc0-security")
    assert locate(TEXT, ("control", "authorized_keys")) == line_of("control")
    assert locate(TEXT, ("firewall", "rules", 0, "src")) == line_of("rule0")


def test_keys_inside_multiline_strings_are_not_structure() -> None:
    # `line = ...` and `[not.a.header]` live inside the log string of rule 1
    assert locate(TEXT, ("firewall", "rules", 1, "line")) == line_of("rule1")
    assert locate(TEXT, ("not", "a", "header")) is None


def test_unwritten_top_level_key_has_no_line() -> None:
    assert locate(TEXT, ("dhcp", "network")) is None
    assert locate(TEXT, ()) is None


def test_dotted_header_into_an_array_entry() -> None:
    text = '[[wireguard]]\nname = "wg0"\n[[wireguard]]\nname = "wg1"\n'
    text += '[[wireguard.peers]]\nname = "p"\n'
    assert locate(text, ("wireguard", 1, "peers", 0, "name")) == 6
    assert locate(text, ("wireguard", 1, "peers", 0)) == 5
    assert locate(text, ("wireguard", 0, "peers")) == 1
