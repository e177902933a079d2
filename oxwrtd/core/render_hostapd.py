"""hostapd configs from [[radios]] + [[wifi]]: one `<phy>.conf` per radio that broadcasts.

Owns the text of every hostapd file, which radios get one, and the settings hostapd cannot take.
Invariants:
- a file exists for exactly the radios that are not disabled and carry at least one [[wifi]]; the
  first SSID of a radio is `<phy>-ap0`, the Nth further one a `bss=<phy>-ap<N>` section;
- no value can end a line or open a section: an `extra` line holding a newline, or naming
  `interface`/`bss`, is an issue and nothing renders; an SSID that is not plain printable text
  is written as hex (`ssid2=`);
- the texts carry Wi-Fi passphrases in clear (hostapd reads no other form): the shell writes them
  with FILE_MODE (0600), never readable by other users;
- the same Config always renders the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import msgspec

from oxwrtd.core.render_doc import RenderDoc
from schema.config import Config, Lan, Radio, Simple, Wan, Wifi
from schema.errors import ConfigError, ConfigIssue, Path

# Where the cookbook's hostapd services bind their config from (/run/oxwrt/hostapd/<phy>.conf is
# mounted at /run/hostapd/<phy>.conf inside the sandbox).
HOSTAPD_DIR: Final = "/run/oxwrt/hostapd"
FILE_MODE: Final = 0o600  # passphrases
# Inside the sandbox: the directory holding the bound config, on the service's private /run.
CTRL_INTERFACE: Final = "/run/hostapd"
IFNAMSIZ: Final = 15  # Linux interface names, without the terminating NUL
MAX_NUM_STA: Final = 2007  # hostapd's MAX_STA_COUNT
RADIO_BANDS: Final = ("2g", "5g")

# Reference defaults (1b.2), with the HT40 direction fitted to the channel (see `_ht40`).
HT_CAPAB_2G: Final = "[HT40+][SHORT-GI-20][SHORT-GI-40][TX-STBC][RX-STBC1][MAX-AMSDU-7935]"
HT_CAPAB_5G: Final = "[HT40+][SHORT-GI-40][TX-STBC][RX-STBC1][MAX-AMSDU-7935][DSSS_CCK-40]"
VHT_CAPAB_5G: Final = (
    "[SHORT-GI-80][TX-STBC-2BY1][RX-STBC-1][RX-ANTENNA-PATTERN][TX-ANTENNA-PATTERN]"
)
DEFAULT_CHWIDTH: Final = 1  # 80 MHz, as the reference

# 5 GHz channel blocks (IEEE 802.11-2020 Annex E): (first, last) 20 MHz primary -> centre index.
# hostapd's `vht_oper_chwidth`: 0 = 20/40 MHz (no centre), 1 = 80, 2 = 160, 3 = 80+80.
BLOCKS_80: Final = (
    (36, 48, 42),
    (52, 64, 58),
    (100, 112, 106),
    (116, 128, 122),
    (132, 144, 138),
    (149, 161, 155),
    (165, 177, 171),
)
BLOCKS_160: Final = ((36, 64, 50), (100, 128, 114), (149, 177, 163))
CHWIDTH_BLOCKS: Final = {1: BLOCKS_80, 2: BLOCKS_160, 3: BLOCKS_80}
CHWIDTH_NAMES: Final = {0: "20/40 MHz", 1: "80 MHz", 2: "160 MHz", 3: "80+80 MHz"}

# Security mapping (1b.2): key management and management frame protection per `security`.
KEY_MGMT: Final = {"wpa2": "WPA-PSK", "wpa3-sae": "SAE", "wpa2-wpa3": "WPA-PSK SAE"}
MFP: Final = {"wpa2": 1, "wpa3-sae": 2, "wpa2-wpa3": 1}
# Personal key management only: the schema has no RADIUS settings for the EAP kinds.
PSK_KINDS: Final = frozenset({"WPA-PSK", "WPA-PSK-SHA256", "FT-PSK"})
SAE_KINDS: Final = frozenset({"SAE", "SAE-EXT-KEY", "FT-SAE", "FT-SAE-EXT-KEY"})
CIPHERS: Final = frozenset({"CCMP", "CCMP-256", "GCMP", "GCMP-256", "TKIP"})
# Keys an `extra` line must not set: they start a section or rename the interface.
STRUCTURAL_KEYS: Final = frozenset({"interface", "bss"})

_CAPAB = re.compile(r"^(\[[A-Za-z0-9_+-]+\])*$")
_PHY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_EXTRA_KEY = re.compile(r"^[A-Za-z0-9_]+$")


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    warnings: tuple[ConfigIssue, ...]  # the file works; these say what differs from the config


def file_name(phy: str) -> str:
    return f"{phy}.conf"


def render(config: Config) -> dict[str, Rendered]:
    """{phy: its hostapd.conf} for every radio that broadcasts; ConfigError (every issue) when
    some setting cannot be given to hostapd safely."""
    rendered, errors = _render_all(config)
    if errors:
        raise ConfigError(errors)
    return rendered


def check(config: Config) -> list[ConfigIssue]:
    """The issues `render` would raise, for a caller validating before it applies."""
    return _render_all(config)[1]


def files(rendered: dict[str, Rendered]) -> dict[str, str]:
    """{file name in HOSTAPD_DIR: text}: every file that directory must hold, and no other."""
    return {file_name(phy): r.text for phy, r in rendered.items()}


def ap_interfaces(config: Config) -> list[tuple[Wifi, str]]:
    """Each broadcast [[wifi]] with the interface its radio's file gives it (`<phy>-ap<N>`)."""
    out: list[tuple[Wifi, str]] = []
    for radio in config.radios:
        if radio.disabled:
            continue
        mine = [wifi for wifi in config.wifi if wifi.radio == radio.phy]
        out += [(wifi, f"{radio.phy}-ap{n}") for n, wifi in enumerate(mine)]
    return out


def _render_all(config: Config) -> tuple[dict[str, Rendered], list[ConfigIssue]]:
    errors: list[ConfigIssue] = []
    by_radio: dict[str, list[tuple[int, Wifi]]] = {}
    phys = {r.phy for r in config.radios}
    for i, wifi in enumerate(config.wifi):
        if wifi.radio not in phys:
            errors.append(_issue(("wifi", i, "radio"), f'radio "{wifi.radio}" is not a [[radios]]'))
        by_radio.setdefault(wifi.radio, []).append((i, wifi))
    out: dict[str, Rendered] = {}
    for r, radio in enumerate(config.radios):
        wifis = by_radio.get(radio.phy, [])
        if radio.disabled or not wifis:
            continue
        doc = RenderDoc()
        _radio_file(config, r, radio, wifis, doc)
        errors += doc.errors
        out[radio.phy] = Rendered(text=doc.text(), warnings=tuple(doc.warnings))
    return ({} if errors else out), errors


def _issue(path: Path, message: str) -> ConfigIssue:
    return ConfigIssue(path=path, message=message)


def _radio_file(
    config: Config, r: int, radio: Radio, wifis: list[tuple[int, Wifi]], doc: RenderDoc
) -> None:
    p: Path = ("radios", r)
    _check_phy(p, radio.phy, len(wifis), doc)
    doc.line(
        f"# hostapd.conf for {radio.phy} rendered by oxwrtd from oxwrt.toml"
        f" ([[radios]] + {len(wifis)} [[wifi]])."
    )
    doc.line("# Do not edit: every reload rewrites it. It holds passphrases: keep it 0600.")
    doc.line(f"interface={radio.phy}-ap0")
    doc.line("driver=nl80211")
    doc.line(f"ctrl_interface={CTRL_INTERFACE}")
    doc.line("ctrl_interface_group=0")
    doc.line("")
    _phy_block(p, radio, doc)
    for n, (i, wifi) in enumerate(wifis):
        doc.line("")
        doc.line(f"# {radio.phy}-ap{n}: {_comment_safe(wifi.ssid)} (network {wifi.network})")
        if n:
            doc.line(f"bss={radio.phy}-ap{n}")
        _bss(config, i, wifi, doc)


def _check_phy(p: Path, phy: str, bss_count: int, doc: RenderDoc) -> None:
    """The phy names a file and, with `-ap<N>`, every interface: both must be valid."""
    longest = f"{phy}-ap{bss_count - 1}"
    if not _PHY.match(phy):
        doc.err((*p, "phy"), f'phy "{phy}" must be letters, digits, "_", "." or "-"')
    elif len(longest) > IFNAMSIZ:
        doc.err(
            (*p, "phy"),
            f'interface "{longest}" would be longer than {IFNAMSIZ} characters; use a shorter phy',
        )


# ---------------------------------------------------------------- the radio


def _phy_block(p: Path, radio: Radio, doc: RenderDoc) -> None:
    band = radio.band
    if band == "":
        band = "5g"
        doc.warn((*p, "band"), 'band is not set: the radio is treated as 5 GHz; write band = "5g"')
    elif band not in RADIO_BANDS:
        doc.err((*p, "band"), f'band "{band}" is not supported (only "2g" and "5g")')
        return
    is_5g = band == "5g"
    doc.line(f"# Radio: {'5 GHz' if is_5g else '2.4 GHz'}, channel {radio.channel or 'automatic'}")
    _regulatory(p, radio, is_5g, doc)
    doc.line(f"hw_mode={'a' if is_5g else 'g'}")
    doc.line(f"channel={radio.channel}")
    ht = radio.ieee80211n if radio.ieee80211n is not None else True
    doc.line(f"ieee80211n={int(ht)}")
    if ht:
        if radio.ht_capab is not None:
            _capab(doc, (*p, "ht_capab"), "ht_capab", radio.ht_capab)
        else:
            doc.line(f"ht_capab={_ht40(HT_CAPAB_5G if is_5g else HT_CAPAB_2G, radio.channel)}")
    elif radio.ht_capab is not None:
        doc.err((*p, "ht_capab"), "ht_capab does nothing with ieee80211n = false")
    if is_5g:
        _vht_he(p, radio, doc)
    else:
        _no_5g_keys(p, radio, doc)
        if radio.ieee80211ax is not False:
            doc.line("ieee80211ax=1")
    if radio.beacon_int is not None:
        doc.line(f"beacon_int={radio.beacon_int}")
    if radio.dtim_period is not None:
        doc.line(f"dtim_period={radio.dtim_period}")
    _extra(doc, (*p, "extra"), radio.extra)


def _regulatory(p: Path, radio: Radio, is_5g: bool, doc: RenderDoc) -> None:
    """802.11d (country IE) needs a country; 802.11h (DFS/TPC) needs 802.11d. Without a country
    hostapd keeps the world regulatory domain rather than the reference's silent "US"."""
    d = radio.ieee80211d if radio.ieee80211d is not None else True
    h = radio.ieee80211h if radio.ieee80211h is not None else is_5g
    if radio.country_code is None:
        if radio.ieee80211d:
            doc.err((*p, "ieee80211d"), "ieee80211d needs country_code (the country it announces)")
        if radio.ieee80211h:
            doc.err((*p, "ieee80211h"), "ieee80211h needs country_code (DFS rules are per country)")
        doc.warn(
            (*p, "country_code"),
            "no country_code: the radio keeps the world regulatory domain (fewest channels,"
            " lowest power, no DFS channels)",
        )
        return
    if radio.ieee80211h and radio.ieee80211d is False:
        doc.err((*p, "ieee80211h"), "ieee80211h needs ieee80211d (hostapd refuses h without d)")
    doc.line(f"country_code={radio.country_code}")
    doc.line(f"ieee80211d={int(d)}")
    doc.line(f"ieee80211h={int(h and d)}")


def _ht40(capab: str, channel: int) -> str:
    """Point the HT40 flag at the channel's 40 MHz partner: hostapd refuses HT40+ on a channel
    whose pair lies below it (5 GHz 40/48/..., 2.4 GHz above 7). Channel 0 (ACS) keeps HT40+."""
    if channel == 0:
        return capab
    if channel <= 14:
        flag = "[HT40+]" if channel <= 7 else "[HT40-]" if channel <= 13 else ""
    else:
        first = 149 if channel >= 149 else 36
        flag = "[HT40+]" if ((channel - first) // 4) % 2 == 0 else "[HT40-]"
    return capab.replace("[HT40+]", flag)


def center_index(channel: int, chwidth: int) -> int | None:
    """The centre channel index of the `chwidth` block holding `channel` (None: no such block,
    or 20/40 MHz where hostapd needs none)."""
    for first, last, centre in CHWIDTH_BLOCKS.get(chwidth, ()):
        if first <= channel <= last and (channel - first) % 4 == 0:
            return centre
    return None


def _vht_he(p: Path, radio: Radio, doc: RenderDoc) -> None:
    vht = radio.ieee80211ac if radio.ieee80211ac is not None else True
    vht_width = radio.vht_oper_chwidth if radio.vht_oper_chwidth is not None else DEFAULT_CHWIDTH
    if vht:
        doc.line("ieee80211ac=1")
        vht_seg0 = _width_and_centre(
            doc, p, radio, ("vht", vht_width, radio.vht_oper_centr_freq_seg0_idx)
        )
        vht_capab = radio.vht_capab if radio.vht_capab is not None else VHT_CAPAB_5G
        _capab(doc, (*p, "vht_capab"), "vht_capab", vht_capab)
    else:
        for key in ("vht_capab", "vht_oper_chwidth", "vht_oper_centr_freq_seg0_idx"):
            if getattr(radio, key) is not None:
                doc.err((*p, key), f"{key} does nothing with ieee80211ac = false")
        vht_seg0 = radio.vht_oper_centr_freq_seg0_idx
    if radio.ieee80211ax is not False:
        doc.line("ieee80211ax=1")
        if vht and radio.he_oper_chwidth is None and radio.he_oper_centr_freq_seg0_idx is None:
            # The reference's default: HE follows VHT, whose values were checked just above.
            if vht_width in CHWIDTH_NAMES:
                doc.line(f"he_oper_chwidth={vht_width}")
                _second_segment(doc, p, radio, kind="he", width=vht_width, blame="vht_oper_chwidth")
            if vht_seg0 is not None:
                doc.line(f"he_oper_centr_freq_seg0_idx={vht_seg0}")
        else:
            he_width = radio.he_oper_chwidth if radio.he_oper_chwidth is not None else vht_width
            he_seg0 = radio.he_oper_centr_freq_seg0_idx
            if he_seg0 is None and he_width == vht_width:
                he_seg0 = vht_seg0
            _width_and_centre(doc, p, radio, ("he", he_width, he_seg0))
    else:
        for key in ("he_oper_chwidth", "he_oper_centr_freq_seg0_idx"):
            if getattr(radio, key) is not None:
                doc.err((*p, key), f"{key} does nothing with ieee80211ax = false")


def _width_and_centre(
    doc: RenderDoc, p: Path, radio: Radio, spec: tuple[str, int, int | None]
) -> int | None:
    """Emit `<kind>_oper_chwidth` and its centre index; return the centre emitted."""
    kind, width, given = spec
    width_key, seg0_key = f"{kind}_oper_chwidth", f"{kind}_oper_centr_freq_seg0_idx"
    if width not in CHWIDTH_NAMES:
        doc.err((*p, width_key), f"{width_key} must be 0 (20/40), 1 (80), 2 (160) or 3 (80+80)")
        return None
    doc.line(f"{width_key}={width}")
    derived = center_index(radio.channel, width)
    _second_segment(doc, p, radio, kind=kind, width=width, blame=width_key)
    if given is not None:
        if width and radio.channel and derived != given:
            doc.warn(
                (*p, seg0_key),
                f"{given} is not the centre of the {CHWIDTH_NAMES[width]} block of channel"
                f" {radio.channel} ({derived if derived is not None else 'none'})",
            )
        doc.line(f"{seg0_key}={given}")
        return given
    if width == 0 or radio.channel == 0:
        return None  # 20/40 MHz has no centre index; with ACS hostapd picks it
    if derived is None:
        doc.err(
            (*p, "channel"),
            f"channel {radio.channel} lies in no {CHWIDTH_NAMES[width]} block; choose another"
            f" channel, a narrower {width_key} or set {seg0_key}",
        )
        return None
    doc.line(f"{seg0_key}={derived}")
    return derived


def _second_segment(
    doc: RenderDoc, p: Path, radio: Radio, *, kind: str, width: int, blame: str
) -> None:
    """80+80 MHz needs a second centre, which the schema has no key for: `extra` must carry it."""
    key = f"{kind}_oper_centr_freq_seg1_idx"
    if width == 3 and not any(line.startswith(f"{key}=") for line in radio.extra):
        doc.err((*p, blame), f"80+80 MHz needs the second segment: add {key}=N to extra")


def _no_5g_keys(p: Path, radio: Radio, doc: RenderDoc) -> None:
    if radio.ieee80211ac:
        doc.err((*p, "ieee80211ac"), "802.11ac (VHT) is 5 GHz only; this radio is 2.4 GHz")
    for key in (
        "vht_capab",
        "vht_oper_chwidth",
        "vht_oper_centr_freq_seg0_idx",
        "he_oper_chwidth",
        "he_oper_centr_freq_seg0_idx",
    ):
        if getattr(radio, key) is not None:
            doc.err((*p, key), f"{key} is for 5 GHz radios; this radio is 2.4 GHz")


def _capab(doc: RenderDoc, path: Path, key: str, value: str) -> None:
    if not _CAPAB.match(value):
        doc.err(path, f'{key} must be flags like "[HT40+][SHORT-GI-20]"')
        return
    doc.line(f"{key}={value}")


def _extra(doc: RenderDoc, path: Path, lines: Sequence[str]) -> None:
    """Raw lines, appended verbatim once proven to be one `key=value` line each."""
    for j, line in enumerate(lines):
        key, eq, _ = line.partition("=")
        if "\n" in line or "\r" in line or not line.isprintable():
            doc.err((*path, j), "an extra line must be one line (no newline or control character)")
        elif not eq or not _EXTRA_KEY.match(key):
            doc.err((*path, j), f'"{line}" is not a hostapd key=value line')
        elif key in STRUCTURAL_KEYS:
            doc.err((*path, j), f"{key}= would open another interface; oxwrtd names them itself")
        else:
            doc.line(line)


# ---------------------------------------------------------------- one SSID


def _bss(config: Config, i: int, wifi: Wifi, doc: RenderDoc) -> None:
    p: Path = ("wifi", i)
    bridge = _bridge(config, p, wifi, doc)
    if bridge is not None:
        doc.line(f"bridge={bridge}")
    doc.line(_ssid_line(wifi.ssid))
    doc.line(f"ignore_broadcast_ssid={int(wifi.hidden)}")
    _security(p, wifi, doc)
    doc.line(f"auth_algs={_ranged(doc, (*p, 'auth_algs'), wifi.auth_algs, 1, (1, 3))}")
    doc.line(f"macaddr_acl={_ranged(doc, (*p, 'macaddr_acl'), wifi.macaddr_acl, 0, (0, 2))}")
    doc.line(f"ap_isolate={int(bool(wifi.ap_isolate))}")
    if wifi.max_num_sta is not None:
        limit = _ranged(doc, (*p, "max_num_sta"), wifi.max_num_sta, 1, (1, MAX_NUM_STA))
        doc.line(f"max_num_sta={limit}")
    if wifi.wmm_enabled is not None:
        doc.line(f"wmm_enabled={int(wifi.wmm_enabled)}")
        if not wifi.wmm_enabled:
            doc.warn(
                (*p, "wmm_enabled"),
                "without WMM hostapd turns 802.11n/ac/ax off for the whole radio (54 Mbit/s)",
            )
    _extra(doc, (*p, "extra"), wifi.extra)


def _bridge(config: Config, p: Path, wifi: Wifi, doc: RenderDoc) -> str | None:
    """`bridge` when set, else the bridge (LAN) or interface (simple) of `network`: an SSID
    joins the network it names, not br-lan as in the reference (§5 item 4)."""
    net = config.network(wifi.network)
    if net is None:
        doc.err((*p, "network"), f'network "{wifi.network}" does not exist in [[networks]]')
        return wifi.bridge
    if wifi.bridge is not None:
        if isinstance(net, Lan | Simple) and wifi.bridge != net.device:
            doc.warn(
                (*p, "bridge"),
                f"{wifi.ssid} joins {wifi.bridge}, not {net.name}'s {net.device}: its clients"
                f" are not on network {net.name}",
            )
        return wifi.bridge
    if isinstance(net, Wan):
        doc.err(
            (*p, "network"),
            f'"{net.name}" is a WAN: Wi-Fi clients belong on a LAN or simple network',
        )
        return None
    return net.device


def _ssid_line(ssid: str) -> str:
    """hostapd takes `ssid=` up to the end of the line, bytes as they are; anything that is not
    plain printable text (control characters, edge spaces) goes as hex in `ssid2=`."""
    if ssid.isprintable() and ssid == ssid.strip():
        return f"ssid={ssid}"
    return f"ssid2={ssid.encode().hex()}"


def _comment_safe(text: str) -> str:
    return text if text.isprintable() else repr(text)


def _ranged(
    doc: RenderDoc, path: Path, value: int | None, default: int, span: tuple[int, int]
) -> int:
    low, high = span
    if value is None:
        return default
    if not low <= value <= high:
        doc.err(path, f"{path[-1]} must be {low}..{high} (is {value})")
    return value


def _security(p: Path, wifi: Wifi, doc: RenderDoc) -> None:
    if wifi.security == "open":
        doc.line("wpa=0")
        for key in ("passphrase", "wpa_key_mgmt", "rsn_pairwise", "ieee80211w", "sae_pwe"):
            if getattr(wifi, key) not in (None, ""):
                doc.err((*p, key), f'{key} does nothing with security "open"')
        if wifi.sae_require_mfp is not None:
            doc.err((*p, "sae_require_mfp"), 'sae_require_mfp does nothing with security "open"')
        _fast_transition(p, wifi, set(), doc)
        return
    kinds = _key_mgmt(p, wifi, doc)
    sae = bool(kinds & SAE_KINDS)
    psk = bool(kinds & PSK_KINDS)
    doc.line("wpa=2")
    doc.line(f"wpa_key_mgmt={wifi.wpa_key_mgmt or KEY_MGMT[wifi.security]}")
    pairwise = wifi.rsn_pairwise if wifi.rsn_pairwise is not None else "CCMP"
    if not set(pairwise.split(" ")) <= CIPHERS:
        doc.err((*p, "rsn_pairwise"), f"rsn_pairwise takes {', '.join(sorted(CIPHERS))}")
    elif "TKIP" in pairwise.split():
        doc.warn((*p, "rsn_pairwise"), "TKIP is broken and limits the link to 54 Mbit/s")
    doc.line(f"rsn_pairwise={pairwise}")
    _passphrase(p, wifi.passphrase, sae=sae, psk=psk, doc=doc)
    mfp = wifi.ieee80211w if wifi.ieee80211w is not None else MFP[wifi.security]
    if mfp > 2:
        doc.err((*p, "ieee80211w"), "ieee80211w must be 0 (off), 1 (optional) or 2 (required)")
    elif sae and mfp == 0:
        doc.err((*p, "ieee80211w"), "WPA3 (SAE) requires management frame protection (1 or 2)")
    elif wifi.security == "wpa3-sae" and mfp < 2:
        doc.err((*p, "ieee80211w"), 'security "wpa3-sae" requires ieee80211w = 2 (WPA3-Personal)')
    doc.line(f"ieee80211w={mfp}")
    if sae:
        # WPA3-Personal transition mode: SAE clients must negotiate MFP even where it is
        # optional for WPA2 ones (hostapd's sae_require_mfp); on by default here, unlike the
        # reference, which left it off for wpa2-wpa3.
        if wifi.sae_require_mfp is not False:
            doc.line("sae_require_mfp=1")
        if wifi.sae_pwe is not None:
            doc.line(f"sae_pwe={_ranged(doc, (*p, 'sae_pwe'), wifi.sae_pwe, 0, (0, 2))}")
    else:
        for key in ("sae_require_mfp", "sae_pwe"):
            if getattr(wifi, key) is not None:
                doc.err((*p, key), f"{key} does nothing without SAE (WPA3) key management")
    _fast_transition(p, wifi, kinds, doc)


def _key_mgmt(p: Path, wifi: Wifi, doc: RenderDoc) -> set[str]:
    kinds = set((wifi.wpa_key_mgmt or KEY_MGMT[wifi.security]).split(" "))
    unknown = kinds - PSK_KINDS - SAE_KINDS
    if unknown:
        doc.err(
            (*p, "wpa_key_mgmt"),
            f"wpa_key_mgmt {' '.join(sorted(unknown))} is not personal (PSK/SAE) key management;"
            f" choose from {', '.join(sorted(PSK_KINDS | SAE_KINDS))}",
        )
    return kinds


def _passphrase(p: Path, phrase: str, *, sae: bool, psk: bool, doc: RenderDoc) -> None:
    """8..63 characters: `wpa_passphrase` (hostapd's SAE uses it too). 64 hex digits are a raw
    WPA2 PSK (`wpa_psk`); SAE has no raw key, so it gets the same 64 characters as its password
    (`sae_password`), which is what a WPA3 client types."""
    path = (*p, "passphrase")
    if not phrase:
        doc.err(path, "needs a passphrase (keep it in oxwrt.secrets.toml)")
    elif not (phrase.isascii() and phrase.isprintable()):
        doc.err(path, "passphrase must be printable ASCII (one line)")
    elif _HEX64.match(phrase):
        if psk:
            doc.line(f"wpa_psk={phrase}")
        if sae:
            doc.line(f"sae_password={phrase}")
    elif 8 <= len(phrase) <= 63:
        doc.line(f"wpa_passphrase={phrase}")
    else:
        doc.err(path, f"passphrase must be 8..63 characters or 64 hex digits (is {len(phrase)})")


def _fast_transition(p: Path, wifi: Wifi, kinds: set[str], doc: RenderDoc) -> None:
    """hostapd's own default is ft_over_ds=1, so false is written too (the reference dropped it)."""
    if wifi.ft_over_ds is None:
        return
    doc.line(f"ft_over_ds={int(wifi.ft_over_ds)}")
    if not any(kind.startswith("FT-") for kind in kinds):
        doc.warn(
            (*p, "ft_over_ds"),
            "ft_over_ds only matters with FT-PSK/FT-SAE in wpa_key_mgmt (and mobility_domain in"
            " extra)",
        )


__all__ = [
    "BLOCKS_80",
    "BLOCKS_160",
    "FILE_MODE",
    "HOSTAPD_DIR",
    "Rendered",
    "ap_interfaces",
    "center_index",
    "check",
    "file_name",
    "files",
    "render",
]
