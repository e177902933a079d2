"""chrony.conf rendering (pure tier): the cookbook's golden text, then one behaviour per test.
The lab tier (tests/lab/test_chrony_render.py) has chronyd parse these texts and serve clients."""

from __future__ import annotations

import tomllib

import msgspec
import pytest

from oxwrtd.core.render_chrony import CHRONY_CONF, Rendered, check, chronyd_argv, render
from schema.config import Config
from schema.errors import ConfigError
from schema.load import load_text
from tests.conftest import COOKBOOK_DIR

COOKBOOK_GOLDEN = """\
# chrony.conf rendered by oxwrtd from oxwrt.toml ([ntp]).
# Do not edit: every reload rewrites it.

pool 2.debian.pool.ntp.org iburst maxsources 4 minpoll 6 maxpoll 10
server time.cloudflare.com iburst minpoll 6 maxpoll 10

driftfile /var/lib/chrony/chrony.drift
makestep 1 3
rtcsync

# Serve the LAN: these addresses and port, these clients only.
bindaddress 192.168.50.1
port 123
allow 192.168.50.0/24
allow fd7a:5c3e:9b21::/64
allow 10.99.0.0/24
allow 10.8.0.0/24
"""


def _cookbook() -> Config:
    return load_text(
        (COOKBOOK_DIR / "oxwrt.toml").read_text(),
        (COOKBOOK_DIR / "oxwrt.secrets.toml.example").read_text(),
    ).raise_for_issues()


def test_cookbook_golden() -> None:
    rendered = render(_cookbook())
    assert rendered is not None
    assert rendered.text == COOKBOOK_GOLDEN
    assert rendered.warnings == ()
    assert (rendered.bind, rendered.port) == (("192.168.50.1",), 123)
    assert render(_cookbook()) == rendered


def test_path_and_argv_are_the_cookbook_service() -> None:
    service = next(s for s in _cookbook().services if s.name == "chrony")
    assert service.binds[0].source == CHRONY_CONF
    conf_target = service.binds[0].target
    assert chronyd_argv(conf_target) == service.entrypoint
    drift = next(b for b in service.binds if b.target == "/var/lib/chrony")
    assert not drift.readonly  # chronyd writes its drift file there


BASE = """
hostname = "gw"
[control]
listen = ["[::1]:51820"]
[[networks]]
name = "wan"
type = "wan"
iface = "wan0"
mode = "static"
address = "203.0.113.10"
prefix = 29
gateway = "203.0.113.9"
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.1.1"
prefix = 24
ipv6_address = "fd00:1::1"
ipv6_prefix = 64
[[networks]]
name = "iot"
type = "simple"
iface = "eth2"
address = "10.30.0.1"
prefix = 24
"""


def _render(ntp: str, *, validated: bool = True) -> Rendered:
    if validated:
        config = load_text(BASE + ntp).raise_for_issues()
    else:
        config = msgspec.convert(tomllib.loads(BASE + ntp), Config)
    rendered = render(config)
    assert rendered is not None
    return rendered


def _lines(rendered: Rendered, *prefixes: str) -> list[str]:
    return [line for line in rendered.text.splitlines() if line.startswith(prefixes)]


def _errors(ntp: str) -> list[tuple[tuple[str | int, ...], str]]:
    config = msgspec.convert(tomllib.loads(BASE + ntp), Config)
    with pytest.raises(ConfigError) as info:
        render(config)
    assert [i.path for i in check(config)] == [i.path for i in info.value.issues]
    return [(issue.path, issue.message) for issue in info.value.issues]


def test_no_ntp_section_renders_nothing() -> None:
    assert render(load_text(BASE).raise_for_issues()) is None
    assert check(load_text(BASE).raise_for_issues()) == []


def test_pool_server_and_nts_sources() -> None:
    rendered = _render(
        """
[ntp]
poll_min = 4
poll_max = 8
[[ntp.sources]]
mode = "pool"
address = "pool.ntp.org"
count = 8
[[ntp.sources]]
mode = "pool"
address = "0.pool.example"
[[ntp.sources]]
mode = "server"
address = "192.0.2.123"
[[ntp.sources]]
mode = "nts"
address = "time.cloudflare.com"
"""
    )
    assert _lines(rendered, "pool", "server", "nts", "nocert") == [
        "pool pool.ntp.org iburst maxsources 8 minpoll 4 maxpoll 8",
        "pool 0.pool.example iburst maxsources 4 minpoll 4 maxpoll 8",  # chrony's default
        "server 192.0.2.123 iburst minpoll 4 maxpoll 8",
        "server time.cloudflare.com iburst minpoll 4 maxpoll 8 nts",
        "ntsdumpdir /var/lib/chrony",
        "nocerttimecheck 1",
    ]


def test_without_listen_chrony_is_client_only() -> None:
    rendered = _render('[ntp]\n[[ntp.sources]]\nmode = "server"\naddress = "192.0.2.1"\n')
    assert _lines(rendered, "port", "allow", "bindaddress") == ["port 0"]
    assert (rendered.bind, rendered.port) == ((), 0)
    assert "nts" not in rendered.text


def test_listen_maps_to_bindaddress_port_and_lan_allows() -> None:
    rendered = _render('[ntp]\nlisten = ["10.30.0.1:1123", "[fd00:1::1]:1123"]\n')
    assert _lines(rendered, "port", "allow", "bindaddress") == [
        "bindaddress 10.30.0.1",
        "bindaddress fd00:1::1",
        "port 1123",
        "allow 192.168.1.0/24",
        "allow fd00:1::/64",
        "allow 10.30.0.0/24",
    ]
    assert rendered.bind == ("10.30.0.1", "fd00:1::1")
    assert "203.0.113" not in rendered.text  # the WAN subnet is never allowed
    assert [w.path for w in rendered.warnings] == [("ntp", "sources")]  # no sources


def test_wildcard_listen_binds_all_but_allows_only_the_lan() -> None:
    rendered = _render('[ntp]\nlisten = ["0.0.0.0:123"]\n')
    assert _lines(rendered, "bindaddress") == []
    assert "port 123" in rendered.text.splitlines()
    assert "allow 192.168.1.0/24" in rendered.text.splitlines()


def test_two_ipv4_listen_addresses_bind_all_with_a_warning() -> None:
    rendered = _render('[ntp]\nlisten = ["192.168.1.1:123", "10.30.0.1:123"]\n')
    assert _lines(rendered, "bindaddress") == []
    assert ("ntp", "listen", 1) in [w.path for w in rendered.warnings]


def test_listen_on_an_address_that_is_not_the_lans_warns() -> None:
    rendered = _render('[ntp]\nlisten = ["203.0.113.10:123"]\n')
    assert _lines(rendered, "bindaddress") == ["bindaddress 203.0.113.10"]
    assert ("ntp", "listen", 0) in [w.path for w in rendered.warnings]


@pytest.mark.parametrize(
    ("ntp", "path", "message"),
    [
        ('listen = ["192.168.1.1:123", "[fd00:1::1]:124"]', ("ntp", "listen"), "one port"),
        ("poll_min = 30\npoll_max = 31", ("ntp", "poll_min"), "-6..24"),
        ("poll_min = 9\npoll_max = 4", ("ntp", "poll_min"), "above poll_max"),
        (
            '[[ntp.sources]]\nmode = "pool"\naddress = "p.example"\ncount = 17',
            ("ntp", "sources", 0, "count"),
            "1..16",
        ),
        (
            '[[ntp.sources]]\nmode = "server"\naddress = "a.example\\nallow all"',
            ("ntp", "sources", 0, "address"),
            "not a host name",
        ),
        (
            '[[ntp.sources]]\nmode = "server"\naddress = "a.example iburst"',
            ("ntp", "sources", 0, "address"),
            "not a host name",
        ),
        (
            '[[ntp.sources]]\nmode = "server"\naddress = "-x"',
            ("ntp", "sources", 0, "address"),
            "not a host name",
        ),
        (
            '[[ntp.sources]]\nmode = "peer"\naddress = "a.example"',
            ("ntp", "sources", 0, "mode"),
            "pool, server or nts",
        ),
        (
            '[[ntp.sources]]\nmode = "server"\naddress = "a.example"\ncount = 2',
            ("ntp", "sources", 0, "count"),
            'only used with mode "pool"',
        ),
        ('listen = ["192.168.1.1"]', ("ntp", "listen", 0), "ip:port"),
    ],
)
def test_what_chrony_cannot_be_given_is_an_error(
    ntp: str, path: tuple[str | int, ...], message: str
) -> None:
    head, _, sources = ntp.partition("[[ntp.sources]]")
    text = f"[ntp]\n{head}" + (f"[[ntp.sources]]{sources}" if sources else "")
    errors = _errors(text)
    assert path in [p for p, _ in errors]
    assert any(message in m for p, m in errors if p == path)
