"""schema.secrets: identity merge, orphans, environment overlay, split and redaction (pure tier)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from schema.secrets import (
    REDACTED,
    SECRET_FIELDS,
    apply_env_overlay,
    is_secret_path,
    merge,
    mode_issue,
    redact,
    split,
    unmatched,
    without,
)

# ---------------------------------------------------------------- merge


def test_merge_pairs_entries_by_identity_not_position() -> None:
    base = {
        "wifi": [
            {"ssid": "home", "radio": "phy0", "network": "lan"},
            {"ssid": "guest", "radio": "phy0", "network": "guest"},
        ]
    }
    overlay = {
        "wifi": [{"ssid": "guest", "passphrase": "g-pass"}, {"ssid": "home", "hidden": True}]
    }
    merged = merge(base, overlay)
    assert merged["wifi"] == [
        {"ssid": "home", "radio": "phy0", "network": "lan", "hidden": True},
        {"ssid": "guest", "radio": "phy0", "network": "guest", "passphrase": "g-pass"},
    ]


@pytest.mark.parametrize(
    ("section", "id_key"),
    [
        ("networks", "name"),
        ("radios", "phy"),
        ("wifi", "ssid"),
        ("services", "name"),
        ("port_forwards", "name"),
        ("wireguard", "name"),
        ("ddns", "name"),
        ("vpn_client", "name"),
    ],
)
def test_merge_identity_of_each_top_level_array(section: str, id_key: str) -> None:
    base = {section: [{id_key: "a", "x": 1}, {id_key: "b", "x": 2}]}
    merged = merge(base, {section: [{id_key: "b", "x": 20}, {id_key: "c", "x": 3}]})
    assert merged[section] == [{id_key: "a", "x": 1}, {id_key: "b", "x": 20}, {id_key: "c", "x": 3}]


def test_merge_nested_identity_arrays_and_tables() -> None:
    base = {
        "firewall": {
            "zones": [{"name": "lan", "networks": ["lan"]}, {"name": "wan", "masquerade": True}],
            "rules": [{"name": "r1", "action": "accept"}, {"name": "r2", "action": "drop"}],
        },
        "wireguard": [
            {"name": "wg0", "listen_port": 51820, "peers": [{"name": "p1"}, {"name": "p2"}]}
        ],
        "dns": {"listen_port": 53, "upstreams": [{"ip": "1.1.1.1", "protocol": "udp"}]},
    }
    overlay = {
        "firewall": {
            "zones": [{"name": "wan", "mtu_fix": True}],
            "rules": [{"name": "only", "action": "reject"}],
        },
        "wireguard": [{"name": "wg0", "peers": [{"name": "p2", "preshared_key": "psk"}]}],
        "dns": {"listen_port": 5353},
    }
    merged = merge(base, overlay)
    assert merged["firewall"]["zones"][1] == {"name": "wan", "masquerade": True, "mtu_fix": True}
    # firewall.rules has no identity: the overlay's array replaces the base one whole
    assert merged["firewall"]["rules"] == [{"name": "only", "action": "reject"}]
    assert merged["wireguard"][0]["peers"] == [
        {"name": "p1"},
        {"name": "p2", "preshared_key": "psk"},
    ]
    assert merged["wireguard"][0]["listen_port"] == 51820
    assert merged["dns"] == {
        "listen_port": 5353,
        "upstreams": [{"ip": "1.1.1.1", "protocol": "udp"}],
    }


def test_merge_replaces_plain_arrays_and_scalars_and_never_mutates_inputs() -> None:
    base = {"routes": [{"dest": "10.0.0.0"}], "hostname": "a", "dns": {"listen_v4": ["0.0.0.0"]}}
    overlay = {"routes": [], "hostname": "b", "dns": {"listen_v4": ["127.0.0.1"]}}
    frozen = copy.deepcopy((base, overlay))
    assert merge(base, overlay) == {
        "routes": [],
        "hostname": "b",
        "dns": {"listen_v4": ["127.0.0.1"]},
    }
    assert (base, overlay) == frozen


# ---------------------------------------------------------------- orphans


def test_unmatched_overlay_entry_is_reported_with_a_suggestion() -> None:
    base = {"wifi": [{"ssid": "home"}], "ddns": [{"name": "duck"}]}
    overlay = {
        "wifi": [{"ssid": "hom", "passphrase": "x"}],
        "ddns": [{"name": "duck", "token": "t"}],
    }
    [issue] = unmatched(base, overlay)
    assert issue.path == ("wifi", 0)
    assert 'no [[wifi]] with ssid "hom"' in issue.message
    assert 'did you mean "home"' in issue.message


def test_unmatched_reports_entries_without_identity_and_nested_peers() -> None:
    base = {"wireguard": [{"name": "wg0", "peers": [{"name": "laptop"}]}]}
    overlay = {
        "wireguard": [{"name": "wg0", "peers": [{"name": "phone", "preshared_key": "p"}]}],
        "networks": [{"password": "pw"}],
    }
    issues = {i.path: i.message for i in unmatched(base, overlay)}
    assert set(issues) == {("wireguard", 0, "peers", 0), ("networks", 0)}
    assert 'no [[wireguard.peers]] with name "phone"' in issues[("wireguard", 0, "peers", 0)]
    assert "has no `name`" in issues[("networks", 0)]


def test_a_second_overlay_entry_for_the_same_identity_is_reported() -> None:
    base = {"ddns": [{"name": "duck"}]}
    overlay = {"ddns": [{"name": "duck", "token": "a"}, {"name": "duck", "token": "b"}]}
    [issue] = unmatched(base, overlay)
    assert issue.path == ("ddns", 1)
    assert "the first is ddns[0]" in issue.message


def test_without_removes_the_listed_entries_only() -> None:
    doc = {"wifi": [{"ssid": "a"}, {"ssid": "b"}, {"ssid": "c"}], "x": 1}
    assert without(doc, [("wifi", 0), ("wifi", 2)]) == {"wifi": [{"ssid": "b"}], "x": 1}
    assert len(doc["wifi"]) == 3


# ---------------------------------------------------------------- environment overlay

DOC: dict[str, Any] = {
    "networks": [
        {"name": "wan", "type": "wan", "iface": "eth1", "mode": "pppoe", "username": "u"},
        {"name": "odd"},
    ],
    "radios": [{"phy": "phy0", "channel": 6}],
    "wifi": [{"ssid": "home", "radio": "phy0", "network": "lan"}],
    "wireguard": [{"name": "wg0", "listen_port": 51820, "peers": [{"name": "laptop"}]}],
    "ddns": [{"name": "duck", "provider": "duckdns", "domain": "x"}],
    "hostname": "r",
}


def test_env_overlay_sets_strings_and_coerces_ints_and_bools() -> None:
    env = {
        "OXWRT_SECRET__wifi__home__passphrase": "from-env-pass",
        "OXWRT_SECRET__radios__phy0__channel": "36",
        "OXWRT_SECRET__wifi__home__hidden": "true",
        "OXWRT_SECRET__networks__wan__password": "pppoe-pw",
        "OXWRT_SECRET__ddns__duck__token": "tok",
        "PATH": "/usr/bin",
    }
    result = apply_env_overlay(DOC, env)
    assert result.issues == []
    assert result.doc["wifi"][0]["passphrase"] == "from-env-pass"
    assert result.doc["wifi"][0]["hidden"] is True
    assert result.doc["radios"][0]["channel"] == 36
    assert result.doc["networks"][0]["password"] == "pppoe-pw"
    assert result.doc["ddns"][0]["token"] == "tok"
    assert result.applied[("radios", 0, "channel")] == "OXWRT_SECRET__radios__phy0__channel"
    assert "passphrase" not in DOC["wifi"][0]  # input untouched


def test_env_overlay_wireguard_peer_form() -> None:
    env = {
        "OXWRT_SECRET__wireguard__wg0__peers__laptop__preshared_key": "psk",
        "OXWRT_SECRET__wireguard__wg0__peers__laptop__persistent_keepalive": "25",
        "OXWRT_SECRET__wireguard__wg0__listen_port": "51821",
    }
    result = apply_env_overlay(DOC, env)
    assert result.issues == []
    assert result.doc["wireguard"][0]["peers"][0] == {
        "name": "laptop",
        "preshared_key": "psk",
        "persistent_keepalive": 25,
    }
    assert result.doc["wireguard"][0]["listen_port"] == 51821


def test_env_overlay_takes_toml_values_for_lists() -> None:
    env = {"OXWRT_SECRET__networks__wan__dns": '["1.1.1.1", "9.9.9.9"]'}
    result = apply_env_overlay(DOC, env)
    assert result.doc["networks"][0]["dns"] == ["1.1.1.1", "9.9.9.9"]


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("OXWRT_SECRET__radios__phy0__channel", "six", "`channel` takes an integer, got 'six'"),
        ("OXWRT_SECRET__wifi__home__hidden", "yes", "`hidden` takes true or false, got 'yes'"),
        ("OXWRT_SECRET__wifi__nope__passphrase", "x", 'no [[wifi]] with ssid "nope"'),
        ("OXWRT_SECRET__wifi__home__passphrse", "x", "did you mean 'passphrase'"),
        ("OXWRT_SECRET__wiif__home__passphrase", "x", "unknown section 'wiif'"),
        ("OXWRT_SECRET__wifi__home", "x", "malformed variable name"),
        ("OXWRT_SECRET__wifi____passphrase", "x", "an empty part"),
        ("OXWRT_SECRET__wireguard__wg0__peers__tablet__preshared_key", "x", "[[wireguard.peers]]"),
        ("OXWRT_SECRET__networks__odd__password", "x", "no valid `type`"),
        ("OXWRT_SECRET__networks__wan__dns", "[unclosed", "takes a TOML inline value"),
        ("OXWRT_SECRET__wifi__home__ssid", "renamed", "cannot be overridden"),
    ],
)
def test_env_overlay_reports_every_bad_variable(name: str, value: str, expected: str) -> None:
    result = apply_env_overlay(DOC, {name: value})
    [issue] = result.issues
    assert issue.path == (name,)
    assert issue.file == "environment"
    assert expected in issue.message
    assert result.doc == DOC
    assert result.applied == {}


# ---------------------------------------------------------------- split and redact


def test_secret_fields_are_the_reference_list() -> None:
    table = {(".".join(sf.section), sf.identities, sf.field, sf.variant) for sf in SECRET_FIELDS}
    assert table == {
        ("wifi", ("ssid",), "passphrase", None),
        ("wireguard.peers", ("name", "name"), "preshared_key", None),
        ("ddns", ("name",), "token", ("provider", "duckdns")),
        ("ddns", ("name",), "api_token", ("provider", "cloudflare")),
        ("ddns", ("name",), "password", ("provider", "namecheap")),
        ("ddns", ("name",), "token", ("provider", "dynv6")),
        ("ddns", ("name",), "key", ("provider", "he")),
        ("networks", ("name",), "password", ("mode", "pppoe")),
    }


def _entry_for(field_index: int) -> tuple[dict[str, Any], tuple[str | int, ...], str]:
    """A document holding exactly the secret leaf SECRET_FIELDS[field_index], its path and value."""
    sf = SECRET_FIELDS[field_index]
    value = f"secret-{field_index}-value"
    entry: dict[str, Any] = {"name": "e", "ssid": "s", sf.field: value, "other": 1}
    if sf.variant:
        entry[sf.variant[0]] = sf.variant[1]
    if sf.section == ("wireguard", "peers"):
        return (
            {"wireguard": [{"name": "wg0", "peers": [entry]}]},
            (
                "wireguard",
                0,
                "peers",
                0,
                sf.field,
            ),
            value,
        )
    return {sf.section[0]: [entry]}, (sf.section[0], 0, sf.field), value


@pytest.mark.parametrize("index", range(len(SECRET_FIELDS)))
def test_split_moves_each_secret_field_and_merge_restores_it(index: int) -> None:
    doc, path, value = _entry_for(index)
    sf = SECRET_FIELDS[index]
    public, secrets = split(doc)
    assert value not in repr(public)
    if sf.section == ("wireguard", "peers"):
        assert secrets == {
            "wireguard": [{"name": "wg0", "peers": [{"name": "e", sf.field: value}]}]
        }
    else:
        id_key = "ssid" if sf.section == ("wifi",) else "name"
        id_value = "s" if id_key == "ssid" else "e"
        assert secrets == {sf.section[0]: [{id_key: id_value, sf.field: value}]}
    assert merge(public, secrets) == doc
    assert is_secret_path(doc, path)


@pytest.mark.parametrize("index", range(len(SECRET_FIELDS)))
def test_redact_replaces_each_secret_field(index: int) -> None:
    doc, path, value = _entry_for(index)
    redacted, count = redact(doc)
    assert count == 1
    assert value not in repr(redacted)
    node: Any = redacted
    for seg in path:
        node = node[seg]
    assert node == REDACTED


def test_split_honours_the_variant_filter_but_redact_never_leaks() -> None:
    doc = {
        "networks": [{"name": "wan", "type": "wan", "mode": "dhcp", "password": "stale-pw"}],
        "ddns": [{"name": "cf", "provider": "cloudflare", "token": "misplaced-tok"}],
    }
    public, secrets = split(doc)
    assert secrets == {}
    assert public == doc
    assert not is_secret_path(doc, ("networks", 0, "password"))
    redacted, count = redact(doc)
    assert count == 2
    assert "stale-pw" not in repr(redacted)
    assert "misplaced-tok" not in repr(redacted)


def test_split_leaves_entries_without_identity_and_redact_does_not_invent_leaves() -> None:
    doc = {"wifi": [{"radio": "phy0", "passphrase": "p"}, {"ssid": "open-net"}]}
    public, secrets = split(doc)
    assert public == doc
    assert secrets == {}
    redacted, count = redact(doc)
    assert count == 1
    assert redacted["wifi"][1] == {"ssid": "open-net"}


def test_split_groups_peers_under_their_wireguard() -> None:
    doc = {
        "wireguard": [
            {"name": "wg0", "peers": [{"name": "a", "preshared_key": "1"}, {"name": "b"}]},
            {"name": "wg1", "peers": [{"name": "a", "preshared_key": "2"}]},
        ]
    }
    public, secrets = split(doc)
    assert secrets == {
        "wireguard": [
            {"name": "wg0", "peers": [{"name": "a", "preshared_key": "1"}]},
            {"name": "wg1", "peers": [{"name": "a", "preshared_key": "2"}]},
        ]
    }
    assert merge(public, secrets) == doc


# ---------------------------------------------------------------- file mode


@pytest.mark.parametrize(
    ("mode", "reported"),
    [(0o600, False), (0o400, False), (0o640, True), (0o644, True), (0o602, True)],
)
def test_mode_issue_for_group_or_other_access(mode: int, reported: bool) -> None:
    issue = mode_issue("/etc/oxwrt/oxwrt.secrets.toml", 0o100000 | mode)
    assert (issue is not None) == reported
    if issue is not None:
        assert issue.file == "/etc/oxwrt/oxwrt.secrets.toml"
        assert f"{mode:04o}" in issue.message
        assert "chmod 600" in issue.message
