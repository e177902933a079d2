"""hostapd.conf rendering (pure tier): the cookbook's golden files, then one behaviour per test.
hostapd itself needs a Wi-Fi radio (mac80211_hwsim), which only the VM tier has."""

from __future__ import annotations

import json
import tomllib

import msgspec
import pytest

from oxwrtd.core.render_hostapd import (
    BLOCKS_80,
    FILE_MODE,
    Rendered,
    center_index,
    check,
    file_name,
    files,
    render,
)
from schema.config import Config
from schema.errors import ConfigError
from schema.load import load_text
from tests.conftest import COOKBOOK_DIR

GOLDEN_PHY0 = """\
# hostapd.conf for phy0 rendered by oxwrtd from oxwrt.toml ([[radios]] + 1 [[wifi]]).
# Do not edit: every reload rewrites it. It holds passphrases: keep it 0600.
interface=phy0-ap0
driver=nl80211
ctrl_interface=/run/hostapd
ctrl_interface_group=0

# Radio: 2.4 GHz, channel 6
country_code=NL
ieee80211d=1
ieee80211h=0
hw_mode=g
channel=6
ieee80211n=1
ht_capab=[HT40+][SHORT-GI-20][SHORT-GI-40][TX-STBC][RX-STBC1][MAX-AMSDU-7935]
ieee80211ax=1

# phy0-ap0: homelab-2g (network lan)
bridge=br-lan
ssid=homelab-2g
ignore_broadcast_ssid=0
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase=replace-with-a-long-lan-passphrase
ieee80211w=1
auth_algs=1
macaddr_acl=0
ap_isolate=0
disassoc_low_ack=1
"""

GOLDEN_PHY1 = """\
# hostapd.conf for phy1 rendered by oxwrtd from oxwrt.toml ([[radios]] + 2 [[wifi]]).
# Do not edit: every reload rewrites it. It holds passphrases: keep it 0600.
interface=phy1-ap0
driver=nl80211
ctrl_interface=/run/hostapd
ctrl_interface_group=0

# Radio: 5 GHz, channel 36
country_code=NL
ieee80211d=1
ieee80211h=1
hw_mode=a
channel=36
ieee80211n=1
ht_capab=[HT40+][SHORT-GI-40][TX-STBC][RX-STBC1][MAX-AMSDU-7935][DSSS_CCK-40]
ieee80211ac=1
vht_oper_chwidth=1
vht_oper_centr_freq_seg0_idx=42
vht_capab=[SHORT-GI-80][TX-STBC-2BY1][RX-STBC-1][RX-ANTENNA-PATTERN][TX-ANTENNA-PATTERN]
ieee80211ax=1
he_oper_chwidth=1
he_oper_centr_freq_seg0_idx=42
beacon_int=100
dtim_period=2
he_bss_color=17

# phy1-ap0: homelab (network lan)
bridge=br-lan
ssid=homelab
ignore_broadcast_ssid=0
wpa=2
wpa_key_mgmt=WPA-PSK SAE
rsn_pairwise=CCMP
wpa_passphrase=replace-with-a-long-lan-passphrase
ieee80211w=1
sae_require_mfp=1
sae_pwe=2
auth_algs=1
macaddr_acl=0
ap_isolate=0
wmm_enabled=1

# phy1-ap1: homelab-guest (network guest)
bss=phy1-ap1
bridge=guest0
ssid=homelab-guest
ignore_broadcast_ssid=0
wpa=2
wpa_key_mgmt=WPA-PSK SAE
rsn_pairwise=CCMP
wpa_passphrase=welcome-guests-2026
ieee80211w=1
sae_require_mfp=1
auth_algs=1
macaddr_acl=0
ap_isolate=1
max_num_sta=32
"""


def _cookbook() -> Config:
    return load_text(
        (COOKBOOK_DIR / "oxwrt.toml").read_text(),
        (COOKBOOK_DIR / "oxwrt.secrets.toml.example").read_text(),
    ).raise_for_issues()


def test_cookbook_golden() -> None:
    rendered = render(_cookbook())
    assert list(rendered) == ["phy0", "phy1"]
    assert rendered["phy0"].text == GOLDEN_PHY0
    assert rendered["phy1"].text == GOLDEN_PHY1
    assert all(r.warnings == () for r in rendered.values())
    assert render(_cookbook()) == rendered  # same config, same bytes
    assert check(_cookbook()) == []


def test_files_are_the_paths_the_cookbook_services_bind() -> None:
    config = _cookbook()
    binds = {b.source for s in config.services if s.name.startswith("hostapd") for b in s.binds}
    names = files(render(config))
    assert {f"/run/oxwrt/hostapd/{name}" for name in names} == binds
    assert names == {"phy0.conf": GOLDEN_PHY0, "phy1.conf": GOLDEN_PHY1}
    assert file_name("phy3") == "phy3.conf"
    assert FILE_MODE == 0o600  # the files carry passphrases


# ---------------------------------------------------------------- building configs

BASE = """
hostname = "gw"
[control]
listen = ["[::1]:51820"]
[[networks]]
name = "wan"
type = "wan"
iface = "wan0"
mode = "dhcp"
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.1.1"
prefix = 24
[[networks]]
name = "guest"
type = "simple"
iface = "guest0"
address = "10.99.0.1"
prefix = 24
[[radios]]
phy = "phy0"
band = "2g"
channel = 6
country_code = "DE"
[[radios]]
phy = "phy1"
band = "5g"
channel = 36
country_code = "DE"
"""

PASS = "correct-horse-battery"


def _config(extra: str, *, validated: bool = True) -> Config:
    """A config from BASE + extra; unvalidated ones reach what only the renderer guards."""
    if validated:
        return load_text(BASE + extra).raise_for_issues()
    return msgspec.convert(tomllib.loads(BASE + extra), Config)


def _wifi(radio: str = "phy1", /, **keys: object) -> str:
    fields = {"radio": radio, "ssid": "home", "network": "lan", "passphrase": PASS, **keys}
    body = "\n".join(f"{k} = {_toml(v)}" for k, v in fields.items())
    return f"\n[[wifi]]\n{body}\n"


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def _lines(rendered: Rendered) -> list[str]:
    return rendered.text.splitlines()


def _section(rendered: Rendered, start: str) -> list[str]:
    """The lines of one BSS, from its comment header to the next blank line."""
    lines = _lines(rendered)
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    end = next((i for i in range(first, len(lines)) if not lines[i]), len(lines))
    return lines[first + 1 : end]


def _errors(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ConfigError) as info:
        render(config)
    return [(issue.path, issue.message) for issue in info.value.issues]


# ---------------------------------------------------------------- which files


def test_only_enabled_radios_with_wifi_get_a_file() -> None:
    assert render(_config("")) == {}
    assert list(render(_config(_wifi("phy0")))) == ["phy0"]
    disabled = BASE.replace('phy = "phy1"\n', 'phy = "phy1"\ndisabled = true\n')
    config = load_text(disabled + _wifi("phy1") + _wifi("phy0", ssid="two")).raise_for_issues()
    assert list(render(config)) == ["phy0"]


# ---------------------------------------------------------------- security mapping

SECURITY_TABLE = [
    ("open", ["wpa=0"]),
    (
        "wpa2",
        [
            "wpa=2",
            "wpa_key_mgmt=WPA-PSK",
            "rsn_pairwise=CCMP",
            f"wpa_passphrase={PASS}",
            "ieee80211w=1",
        ],
    ),
    (
        "wpa3-sae",
        [
            "wpa=2",
            "wpa_key_mgmt=SAE",
            "rsn_pairwise=CCMP",
            f"wpa_passphrase={PASS}",
            "ieee80211w=2",
            "sae_require_mfp=1",
        ],
    ),
    (
        "wpa2-wpa3",
        [
            "wpa=2",
            "wpa_key_mgmt=WPA-PSK SAE",
            "rsn_pairwise=CCMP",
            f"wpa_passphrase={PASS}",
            "ieee80211w=1",
            "sae_require_mfp=1",
        ],
    ),
]
COMMON_TAIL = ["auth_algs=1", "macaddr_acl=0", "ap_isolate=0"]


@pytest.mark.parametrize(("security", "expected"), SECURITY_TABLE)
def test_security_mapping(security: str, expected: list[str]) -> None:
    keys: dict[str, object] = {"security": security}
    if security == "open":
        keys["passphrase"] = ""
    rendered = render(_config(_wifi(**keys)))["phy1"]
    head = ["bridge=br-lan", "ssid=home", "ignore_broadcast_ssid=0"]
    assert _section(rendered, "# phy1-ap0") == head + expected + COMMON_TAIL
    assert rendered.warnings == ()


def test_default_security_is_wpa3_sae() -> None:
    rendered = render(_config(_wifi()))["phy1"]
    assert "wpa_key_mgmt=SAE" in _lines(rendered)
    assert "ieee80211w=2" in _lines(rendered)


def test_overrides_and_optional_keys() -> None:
    wifi = _wifi(
        security="wpa2-wpa3",
        wpa_key_mgmt="WPA-PSK SAE FT-PSK FT-SAE",
        rsn_pairwise="CCMP GCMP-256",
        ieee80211w=2,
        sae_pwe=1,
        auth_algs=3,
        macaddr_acl=2,
        hidden=True,
        wmm_enabled=True,
        ft_over_ds=False,
        extra=["mobility_domain=a1b2"],
    )
    lines = _section(render(_config(wifi))["phy1"], "# phy1-ap0")
    assert lines == [
        "bridge=br-lan",
        "ssid=home",
        "ignore_broadcast_ssid=1",
        "wpa=2",
        "wpa_key_mgmt=WPA-PSK SAE FT-PSK FT-SAE",
        "rsn_pairwise=CCMP GCMP-256",
        f"wpa_passphrase={PASS}",
        "ieee80211w=2",
        "sae_require_mfp=1",
        "sae_pwe=1",
        "ft_over_ds=0",  # hostapd's default is 1: false must be written
        "auth_algs=3",
        "macaddr_acl=2",
        "ap_isolate=0",
        "wmm_enabled=1",
        "mobility_domain=a1b2",
    ]


def test_sae_require_mfp_can_be_turned_off_for_transition_mode() -> None:
    rendered = render(_config(_wifi(security="wpa2-wpa3", sae_require_mfp=False)))["phy1"]
    assert not any(line.startswith("sae_require_mfp") for line in _lines(rendered))


def test_hex_psk_is_a_raw_wpa2_key_and_the_sae_password() -> None:
    psk = "0123456789abcdef" * 4
    mixed = render(_config(_wifi(security="wpa2-wpa3", passphrase=psk)))["phy1"]
    assert f"wpa_psk={psk}" in _lines(mixed)
    assert f"sae_password={psk}" in _lines(mixed)
    assert not any(line.startswith("wpa_passphrase") for line in _lines(mixed))
    wpa2 = render(_config(_wifi(security="wpa2", passphrase=psk)))["phy1"]
    assert f"wpa_psk={psk}" in _lines(wpa2)
    assert not any(line.startswith("sae_password") for line in _lines(wpa2))
    sae = render(_config(_wifi(security="wpa3-sae", passphrase=psk)))["phy1"]
    assert f"sae_password={psk}" in _lines(sae)
    assert not any(line.startswith("wpa_psk") for line in _lines(sae))


@pytest.mark.parametrize(
    ("keys", "path", "message"),
    [
        ({"security": "wpa3-sae", "ieee80211w": 1}, "ieee80211w", "requires ieee80211w = 2"),
        ({"security": "wpa2-wpa3", "ieee80211w": 0}, "ieee80211w", "management frame protection"),
        ({"security": "wpa2", "ieee80211w": 3}, "ieee80211w", "must be 0 (off)"),
        ({"security": "wpa2", "sae_pwe": 1}, "sae_pwe", "does nothing without SAE"),
        ({"security": "wpa2", "sae_require_mfp": True}, "sae_require_mfp", "without SAE"),
        ({"security": "wpa2-wpa3", "sae_pwe": 3}, "sae_pwe", "must be 0..2"),
        ({"security": "wpa2", "wpa_key_mgmt": "WPA-EAP"}, "wpa_key_mgmt", "not personal"),
        ({"security": "wpa2", "rsn_pairwise": "CCMP\nwpa=0"}, "rsn_pairwise", "takes CCMP"),
        ({"security": "open", "passphrase": "", "sae_pwe": 1}, "sae_pwe", "does nothing"),
        ({"security": "wpa2", "auth_algs": 4}, "auth_algs", "must be 1..3"),
        ({"security": "wpa2", "max_num_sta": 3000}, "max_num_sta", "must be 1..2007"),
        ({"security": "wpa2", "passphrase": "short"}, "passphrase", "8..63 characters"),
        ({"security": "wpa2", "passphrase": "bad\npassphrase"}, "passphrase", "printable"),
    ],
)
def test_security_settings_hostapd_cannot_take_are_errors(
    keys: dict[str, object], path: str, message: str
) -> None:
    errors = _errors(_config(_wifi(**keys), validated=False))
    assert [p for p, _ in errors] == [("wifi", 0, path)]
    assert message in errors[0][1]


def test_tkip_and_ft_without_ft_key_management_warn() -> None:
    rendered = render(_config(_wifi(security="wpa2", rsn_pairwise="TKIP", ft_over_ds=True)))
    warnings = {w.path: w.message for w in rendered["phy1"].warnings}
    assert "TKIP is broken" in warnings[("wifi", 0, "rsn_pairwise")]
    assert "FT-PSK/FT-SAE" in warnings[("wifi", 0, "ft_over_ds")]


def test_disabling_wmm_warns_that_it_turns_ht_off() -> None:
    rendered = render(_config(_wifi(wmm_enabled=False)))["phy1"]
    assert "wmm_enabled=0" in _lines(rendered)
    assert [w.path for w in rendered.warnings] == [("wifi", 0, "wmm_enabled")]


# ---------------------------------------------------------------- the radio


@pytest.mark.parametrize(("first", "last", "centre"), BLOCKS_80)
def test_vht_80_mhz_centre_for_every_channel_of_a_block(first: int, last: int, centre: int) -> None:
    for channel in range(first, last + 1, 4):
        assert center_index(channel, 1) == centre


@pytest.mark.parametrize(
    ("channel", "chwidth", "centre"),
    [
        (36, 2, 50),
        (64, 2, 50),
        (100, 2, 114),
        (128, 2, 114),
        (149, 2, 163),
        (177, 2, 163),
        (132, 2, None),  # 132-144 has no 160 MHz block
        (36, 0, None),  # 20/40 MHz has no centre index
        (38, 1, None),  # not a 20 MHz primary channel
        (32, 1, None),
        (40, 3, 42),  # 80+80: the first segment is an 80 MHz block
    ],
)
def test_centre_index_table(channel: int, chwidth: int, centre: int | None) -> None:
    assert center_index(channel, chwidth) == centre


@pytest.mark.parametrize(
    ("channel", "ht40", "seg0"),
    [(36, "[HT40+]", 42), (40, "[HT40-]", 42), (44, "[HT40+]", 42), (48, "[HT40-]", 42),
     (100, "[HT40+]", 106), (104, "[HT40-]", 106), (149, "[HT40+]", 155), (153, "[HT40-]", 155),
     (161, "[HT40-]", 155), (165, "[HT40+]", 171)],
)  # fmt: skip
def test_5ghz_defaults_follow_the_channel(channel: int, ht40: str, seg0: int) -> None:
    text = BASE.replace("channel = 36", f"channel = {channel}")
    rendered = render(load_text(text + _wifi()).raise_for_issues())["phy1"]
    lines = _lines(rendered)
    assert f"ht_capab={ht40}[SHORT-GI-40][TX-STBC][RX-STBC1][MAX-AMSDU-7935][DSSS_CCK-40]" in lines
    assert f"vht_oper_centr_freq_seg0_idx={seg0}" in lines
    assert f"he_oper_centr_freq_seg0_idx={seg0}" in lines


@pytest.mark.parametrize(("channel", "flag"), [(1, "[HT40+]"), (7, "[HT40+]"), (8, "[HT40-]"),
                                              (13, "[HT40-]"), (14, "")])  # fmt: skip
def test_2ghz_ht40_direction(channel: int, flag: str) -> None:
    text = BASE.replace("channel = 6", f"channel = {channel}")
    lines = _lines(render(load_text(text + _wifi("phy0")).raise_for_issues())["phy0"])
    assert f"ht_capab={flag}[SHORT-GI-20][SHORT-GI-40][TX-STBC][RX-STBC1][MAX-AMSDU-7935]" in lines
    assert not any(line.startswith(("vht_", "he_oper", "ieee80211ac")) for line in lines)


def test_160_mhz_and_acs() -> None:
    wide = BASE.replace('band = "5g"', 'band = "5g"\nvht_oper_chwidth = 2')
    lines = _lines(render(load_text(wide + _wifi()).raise_for_issues())["phy1"])
    assert "vht_oper_centr_freq_seg0_idx=50" in lines
    assert "he_oper_chwidth=2" in lines
    assert "he_oper_centr_freq_seg0_idx=50" in lines
    acs = BASE.replace("channel = 36", "channel = 0")
    lines = _lines(render(load_text(acs + _wifi()).raise_for_issues())["phy1"])
    assert "channel=0" in lines  # hostapd picks the channel, and with it the centre
    assert not any("centr_freq_seg0_idx" in line for line in lines)


def test_explicit_centre_that_does_not_match_the_channel_warns() -> None:
    text = BASE.replace('band = "5g"', 'band = "5g"\nvht_oper_centr_freq_seg0_idx = 58')
    rendered = render(load_text(text + _wifi()).raise_for_issues())["phy1"]
    assert "vht_oper_centr_freq_seg0_idx=58" in _lines(rendered)
    assert "he_oper_centr_freq_seg0_idx=58" in _lines(rendered)  # HE follows VHT
    assert [w.path for w in rendered.warnings] == [("radios", 1, "vht_oper_centr_freq_seg0_idx")]


def test_ax_and_ac_off_drop_their_lines() -> None:
    text = BASE.replace('band = "5g"', 'band = "5g"\nieee80211ac = false\nieee80211ax = false')
    lines = _lines(render(load_text(text + _wifi()).raise_for_issues())["phy1"])
    assert not any(line.startswith(("vht_", "he_", "ieee80211ac", "ieee80211ax")) for line in lines)
    assert "ieee80211n=1" in lines


@pytest.mark.parametrize(
    ("radio_keys", "path", "message"),
    [
        ('band = "6g"', ("radios", 1, "band"), 'only "2g" and "5g"'),
        ("vht_oper_chwidth = 5", ("radios", 1, "vht_oper_chwidth"), "must be 0 (20/40)"),
        ("vht_oper_chwidth = 3", ("radios", 1, "vht_oper_chwidth"), "seg1_idx"),
        ('ht_capab = "[HT40+]\\nwpa=0"', ("radios", 1, "ht_capab"), "must be flags"),
        ('ieee80211ac = false\nvht_capab = "[X]"', ("radios", 1, "vht_capab"), "does nothing"),
        ('ieee80211n = false\nht_capab = "[HT40+]"', ("radios", 1, "ht_capab"), "does nothing"),
    ],
)
def test_5ghz_radio_errors(radio_keys: str, path: tuple[str | int, ...], message: str) -> None:
    text = BASE.replace('band = "5g"\n', "").replace('phy = "phy1"', f'phy = "phy1"\n{radio_keys}')
    errors = _errors(msgspec.convert(tomllib.loads(text + _wifi()), Config))
    assert {p for p, _ in errors} == {path}
    assert message in errors[0][1]


def test_5ghz_channel_outside_every_80_mhz_block_is_an_error() -> None:
    text = BASE.replace("channel = 36", "channel = 32")
    errors = _errors(load_text(text + _wifi()).raise_for_issues())
    assert [p for p, _ in errors] == [("radios", 1, "channel")]  # once, not again for HE
    assert "no 80 MHz block" in errors[0][1]


def test_2ghz_radio_rejects_5ghz_settings() -> None:
    text = BASE.replace('band = "2g"', 'band = "2g"\nieee80211ac = true\nvht_oper_chwidth = 1')
    errors = _errors(msgspec.convert(tomllib.loads(text + _wifi("phy0")), Config))
    assert [p for p, _ in errors] == [
        ("radios", 0, "ieee80211ac"),
        ("radios", 0, "vht_oper_chwidth"),
    ]


def test_missing_band_is_5ghz_with_a_warning() -> None:
    text = BASE.replace('band = "5g"\n', "")
    rendered = render(load_text(text + _wifi()).raise_for_issues())["phy1"]
    assert "hw_mode=a" in _lines(rendered)
    assert [w.path for w in rendered.warnings] == [("radios", 1, "band")]


def test_no_country_keeps_the_world_domain_and_cannot_ask_for_80211d() -> None:
    text = BASE.replace('country_code = "DE"\n', "")
    rendered = render(load_text(text + _wifi()).raise_for_issues())["phy1"]
    lines = _lines(rendered)
    assert not any(line.startswith(("country_code", "ieee80211d", "ieee80211h")) for line in lines)
    assert ("radios", 1, "country_code") in [w.path for w in rendered.warnings]
    asked = text.replace('band = "5g"', 'band = "5g"\nieee80211d = true')
    errors = _errors(load_text(asked + _wifi()).raise_for_issues())
    assert [p for p, _ in errors] == [("radios", 1, "ieee80211d")]


def test_long_or_odd_phy_names_are_errors() -> None:
    text = BASE.replace('phy = "phy1"', 'phy = "phy-with-long"')
    errors = _errors(load_text(text + _wifi("phy-with-long")).raise_for_issues())
    assert errors == [
        (
            ("radios", 1, "phy"),
            'interface "phy-with-long-ap0" would be longer than 15 characters; use a shorter phy',
        )
    ]
    text = BASE.replace('phy = "phy1"', 'phy = "../etc"')
    errors = _errors(load_text(text + _wifi("../etc")).raise_for_issues())
    assert errors[0][0] == ("radios", 1, "phy")


# ---------------------------------------------------------------- BSS sections and bridges


def test_further_ssids_become_bss_sections_numbered_by_position() -> None:
    config = _config(
        _wifi(ssid="a")
        + _wifi("phy0", ssid="other-radio")
        + _wifi(ssid="b", network="guest", security="open", passphrase="")
        + _wifi(ssid="c", security="wpa2")
    )
    rendered = render(config)["phy1"]
    lines = _lines(rendered)
    assert [line for line in lines if line.startswith("bss=")] == ["bss=phy1-ap1", "bss=phy1-ap2"]
    assert lines.index("interface=phy1-ap0") < lines.index("ssid=a") < lines.index("bss=phy1-ap1")
    assert _section(rendered, "# phy1-ap1")[:4] == [
        "bss=phy1-ap1",
        "bridge=guest0",
        "ssid=b",
        "ignore_broadcast_ssid=0",
    ]
    assert _section(rendered, "# phy1-ap2")[:3] == ["bss=phy1-ap2", "bridge=br-lan", "ssid=c"]
    # radio keys all come before the first bss= (hostapd reads them per interface)
    assert lines.index("channel=36") < lines.index("bss=phy1-ap1")
    assert "ssid=other-radio" in _lines(render(config)["phy0"])


def test_bridge_comes_from_the_network_when_unset() -> None:
    rendered = render(_config(_wifi(ssid="l") + _wifi(ssid="g", network="guest")))["phy1"]
    assert _section(rendered, "# phy1-ap0")[0] == "bridge=br-lan"  # the LAN's bridge
    assert _section(rendered, "# phy1-ap1")[1] == "bridge=guest0"  # the simple network's iface
    assert rendered.warnings == ()


def test_explicit_bridge_wins_but_warns_when_it_is_not_the_networks() -> None:
    rendered = render(_config(_wifi(network="guest", bridge="br-lan")))["phy1"]
    assert _section(rendered, "# phy1-ap0")[0] == "bridge=br-lan"
    assert [w.path for w in rendered.warnings] == [("wifi", 0, "bridge")]
    assert "not on network guest" in rendered.warnings[0].message


def test_wifi_on_a_wan_without_bridge_is_an_error() -> None:
    errors = _errors(_config(_wifi(network="wan")))
    assert errors == [
        (("wifi", 0, "network"), '"wan" is a WAN: Wi-Fi clients belong on a LAN or simple network')
    ]


def test_wifi_on_an_unknown_radio_or_network_is_an_error() -> None:
    errors = _errors(_config(_wifi("phy9") + _wifi(ssid="x", network="nope"), validated=False))
    assert [p for p, _ in errors] == [("wifi", 0, "radio"), ("wifi", 1, "network")]


# ---------------------------------------------------------------- line injection


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("he_bss_color=17\nwpa=0", "must be one line"),
        ("wpa=0\r", "must be one line"),
        ("no equals sign", "not a hostapd key=value line"),
        ("bss=phy1-ap9", "would open another interface"),
        ("interface=wlan0", "would open another interface"),
    ],
)
def test_extra_lines_that_could_inject_are_rejected(line: str, message: str) -> None:
    for where in ("radio", "wifi"):
        if where == "radio":
            text = BASE.replace('band = "5g"', f'band = "5g"\nextra = [{_toml(line)}]')
            config = load_text(text + _wifi()).raise_for_issues()
            path: tuple[str | int, ...] = ("radios", 1, "extra", 0)
        else:
            config = _config(_wifi(extra=["ok=1", line]))
            path = ("wifi", 0, "extra", 1)
        errors = _errors(config)
        assert [p for p, _ in errors] == [path]
        assert message in errors[0][1]
        assert [issue.path for issue in check(config)] == [path]


def test_ssid_with_control_characters_or_edge_spaces_goes_as_hex() -> None:
    config = _config(_wifi(ssid="evil\nwpa=0") + _wifi(ssid=" spaced ") + _wifi(ssid="café"))
    lines = _lines(render(config)["phy1"])
    assert "ssid2=" + b"evil\nwpa=0".hex() in lines
    assert "ssid2=" + b" spaced ".hex() in lines
    assert "ssid=café" in lines  # printable UTF-8 goes as it is
    assert "wpa=0" not in lines
    assert "# phy1-ap0: 'evil\\nwpa=0' (network lan)" in lines
