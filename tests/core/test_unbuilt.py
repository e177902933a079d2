"""Settings accepted but not acted on are named, so status never implies they work."""

from __future__ import annotations

import tomllib

from oxwrtd.core.unbuilt import SECTIONS, unbuilt
from tests.conftest import COOKBOOK_DIR


def test_the_cookbook_names_every_section_it_uses_that_is_not_built() -> None:
    doc = tomllib.loads((COOKBOOK_DIR / "oxwrt.toml").read_text())
    lines = unbuilt(doc)
    for key in SECTIONS:
        assert any(line.startswith(f"[{key}]") for line in lines) == bool(doc.get(key)), key


def test_a_config_using_only_built_features_reports_nothing() -> None:
    doc = {"hostname": "r", "networks": [{"name": "wan", "type": "wan", "mode": "dhcp"}]}
    assert unbuilt(doc) == []


def test_wan_and_wifi_settings_are_named_with_their_entry() -> None:
    doc = {
        "networks": [{"name": "dsl", "type": "wan", "mode": "pppoe", "sqm": {"x": 1}}],
        "firewall": {"zones": [{"name": "iot", "wan": "dsl"}]},
        "wifi": [{"ssid": "guest", "rotate_hours": 24}],
    }
    text = "\n".join(unbuilt(doc))
    for part in ('"dsl": PPPoE', '"dsl".sqm', '"iot".wan', '"guest".rotate_hours'):
        assert part in text
